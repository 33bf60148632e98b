//! cargo fuzz target `twilio_webhook`: see `parley_server::fuzzing::twilio_webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| parley_server::fuzzing::twilio_webhook(data));
