//! cargo fuzz target `snapshot`: see `parley_server::fuzzing::snapshot`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::snapshot(data));
