//! cargo fuzz target `merchant_dir`: see `parley_server::fuzzing::merchant_dir`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::merchant_dir(data));
