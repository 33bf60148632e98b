//! cargo fuzz target `upload`: see `parley_server::fuzzing::upload`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::upload(data));
