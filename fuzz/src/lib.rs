//! Shared body of the decoder fuzz targets: frames and decodes arbitrary bytes with one
//! format. Must never panic; every row has an event id and every reject a reason.

use auditwatch::decode::framing::Framer;
use auditwatch::decode::{DecodeOptions, Decoder, Format, Output, Rejected};
use auditwatch::normalize::{AccessEvent, Provenance};

struct Check;

impl Output for Check {
    fn event(&mut self, e: AccessEvent<'_>, _: &Provenance<'_>) {
        assert!(!e.event_id.is_empty());
    }
    fn reject(&mut self, _: &[u8], r: Rejected, _: &Provenance<'_>) {
        assert!(!r.reason.is_empty());
    }
}

pub fn decode_all(format: Format, data: &[u8]) {
    let opts = DecodeOptions { max_event_bytes: 64 << 10, vault_max_pending: 4, ..Default::default() };
    let mut decoder = Decoder::new(format, opts);
    let mut framer = Framer::new(data, 64 << 10);
    while let Ok(Some(frame)) = framer.next_frame() {
        decoder.decode_frame(&frame, &Provenance::default(), &mut Check);
    }
    decoder.flush(&mut Check);
    // the same bytes as one Kafka message
    decoder.decode_record(data, &Provenance::default(), &mut Check);
    decoder.flush(&mut Check);
}
