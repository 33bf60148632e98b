//! cargo fuzz target `compliance`: see `parley_server::fuzzing::compliance_detection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::compliance_detection(data));
