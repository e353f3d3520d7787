//! Frames and decodes arbitrary bytes as `Auto`: must never panic, and every rejected
//! record must carry a reason.
#![no_main]

use auditwatch::decode::framing::Framer;
use auditwatch::decode::{DecodeOptions, Decoder, Format, Output, Rejected};
use auditwatch::normalize::{AccessEvent, Provenance};
use libfuzzer_sys::fuzz_target;

struct Count(usize);

impl Output for Count {
    fn event(&mut self, e: AccessEvent<'_>, _: &Provenance<'_>) {
        assert!(!e.event_id.is_empty());
        self.0 += 1;
    }
    fn reject(&mut self, _: &[u8], r: Rejected, _: &Provenance<'_>) {
        assert!(!r.reason.is_empty());
        self.0 += 1;
    }
}

fuzz_target!(|data: &[u8]| {
    let opts = DecodeOptions { max_event_bytes: 64 << 10, vault_max_pending: 4, ..Default::default() };
    let mut decoder = Decoder::new(Format::Auto, opts);
    let mut out = Count(0);
    let mut framer = Framer::new(data, 64 << 10);
    while let Ok(Some(frame)) = framer.next_frame() {
        decoder.decode_frame(&frame, &Provenance::default(), &mut out);
    }
    decoder.flush(&mut out);
    // the same bytes as one Kafka message
    decoder.decode_record(data, &Provenance::default(), &mut out);
    decoder.flush(&mut out);
});
