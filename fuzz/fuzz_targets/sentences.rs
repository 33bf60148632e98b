//! cargo fuzz target `sentences`: see `parley_server::fuzzing::sentences`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::sentences(data));
