#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| flotilla_dns::fuzz::kept_answers(data));
