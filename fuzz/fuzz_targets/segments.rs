//! cargo fuzz target `segments`: see `parley_server::fuzzing::segment_counting`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::segment_counting(data));
