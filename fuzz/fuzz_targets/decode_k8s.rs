//! Arbitrary bytes through framing and the `Kubernetes` decoder (see src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    auditwatch_fuzz::decode_all(auditwatch::decode::Format::Kubernetes, data);
});
