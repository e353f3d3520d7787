//! The lenient scrubber runs on quarantined bytes of any shape: it must never panic and
//! must keep the input length-bounded.
#![no_main]

use auditwatch::normalize::redact::scrub_lenient;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (out, _) = scrub_lenient(data);
    assert!(out.len() <= data.len() * 11 + 2);
});
