//! Normalize: the common `access_events` row, its Arrow schema and builders, redaction.
//!
//! Decoders produce [`AccessEvent`]s (already redacted); [`EventBuilder`] turns them into
//! Arrow `RecordBatch`es with the [`schema::access_events`] schema.

pub mod builder;
pub mod event;
pub mod redact;
pub mod schema;

pub use builder::{EventBuilder, Provenance, QuarantineBuilder, QuarantineRecord};
pub use event::{AccessEvent, Outcome, Source};

/// Parses an RFC 3339 timestamp into microseconds since the epoch (UTC).
///
/// The shape every audit log uses (`2026-11-20T10:00:00.123456Z`, up to nanoseconds) takes
/// a fast path; anything else (offsets, lowercase) goes through chrono.
pub fn parse_time_us(s: &str) -> Option<i64> {
    fast_utc_us(s.as_bytes()).or_else(|| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_micros())
    })
}

fn fast_utc_us(b: &[u8]) -> Option<i64> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || *b.last()? != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as i64)
        })
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let micros = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if !digits.is_empty() && digits.len() <= 9 => {
            let mut v = 0i64;
            for (i, &c) in digits.iter().enumerate() {
                if !c.is_ascii_digit() {
                    return None;
                }
                if i < 6 {
                    v = v * 10 + (c - b'0') as i64;
                }
            }
            v * 10i64.pow(6u32.saturating_sub(digits.len() as u32))
        }
        _ => return None,
    };
    // days from civil (proleptic Gregorian), after H. Hinnant
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec) * 1_000_000 + micros)
}

/// Formats microseconds since the epoch as RFC 3339 with microseconds, UTC.
pub fn format_time_us(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_default()
}

/// Strips a port from `host:port`, `[v6]:port`; leaves bare IPv4/IPv6 addresses alone.
pub fn strip_port(addr: &str) -> &str {
    if let Some(rest) = addr.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match addr.matches(':').count() {
        1 => addr.split(':').next().unwrap_or(addr),
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped() {
        assert_eq!(strip_port("10.0.0.1:8200"), "10.0.0.1");
        assert_eq!(strip_port("[2001:db8::10]:36778"), "2001:db8::10");
        assert_eq!(strip_port("2001:db8::10"), "2001:db8::10");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("67.43.156.13"), "67.43.156.13");
    }

    #[test]
    fn fast_time_path_agrees_with_chrono() {
        for t in [
            "2026-11-20T10:00:00Z",
            "2026-11-20T10:00:00.1Z",
            "2020-02-29T23:59:59.999999Z",
            "2021-07-19T17:19:00.673829123Z",
            "1970-01-01T00:00:00.000001Z",
            "1999-12-31T23:59:59.5Z",
            "2400-03-01T00:00:00Z",
        ] {
            let chrono = chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_micros();
            assert_eq!(fast_utc_us(t.as_bytes()), Some(chrono), "{t}");
        }
        assert_eq!(fast_utc_us(b"2026-11-20T10:00:00+01:00"), None);
        assert_eq!(fast_utc_us(b"2026-13-20T10:00:00Z"), None);
    }

    #[test]
    fn times_parse() {
        assert_eq!(parse_time_us("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(
            parse_time_us("2020-05-28T13:40:18-05:00"),
            Some(1_590_691_218_000_000)
        );
        assert_eq!(parse_time_us("nope"), None);
        assert_eq!(format_time_us(1_500_000), "1970-01-01T00:00:01.500000Z");
    }
}
