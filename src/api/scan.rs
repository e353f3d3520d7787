//! From request parameters to DataFusion scans: time bounds, patterns, keyset cursors,
//! and the partitions of the store a request can touch.
//!
//! Filters are DataFusion expressions built with `col(..).eq(lit(..))` / `like`, never
//! SQL text, so user input is a literal and cannot change the query. They are pushed
//! into the Parquet scan: equality on `actor`/`resource_path` uses the bloom filters,
//! `time` ranges and LIKE prefixes the min/max statistics. Before that, a time range and
//! a source filter pick the partition directories (`events/source=…/date=…/hour=…`,
//! `alerts/date=…`), so files outside the range are not even opened.

use std::path::{Path, PathBuf};

use base64::Engine;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{Expr, col, lit};

use super::error::{ApiError, ApiResult};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// A time parameter: RFC 3339 (`2026-11-02T10:00:00Z`), a date (`2026-11-02`, midnight
/// UTC), `now`, or relative to now (`-24h`, `-7d`, `-1h30m`).
pub fn parse_time(name: &str, s: &str, now: DateTime<Utc>) -> ApiResult<i64> {
    let s = s.trim();
    let bad = || {
        ApiError::bad_request(format!(
            "{name}={s:?}: expected RFC 3339 (2026-11-02T10:00:00Z), a date, `now` or a relative time like -24h"
        ))
    };
    if s == "now" {
        return Ok(now.timestamp_micros());
    }
    if let Some(rest) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rest).map_err(|_| bad())?;
        let d = chrono::Duration::from_std(d).map_err(|_| bad())?;
        return Ok((now - d).timestamp_micros());
    }
    // a `+` offset arrives as a space when the client did not percent-encode it
    for cand in [s.to_string(), s.replace(' ', "+")] {
        if let Ok(t) = DateTime::parse_from_rfc3339(&cand) {
            return Ok(t.timestamp_micros());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .ok_or_else(bad)?
            .and_utc()
            .timestamp_micros());
    }
    Err(bad())
}

/// `[from, to)` in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub from: Option<i64>,
    pub to: Option<i64>,
}

impl TimeRange {
    pub fn parse(from: Option<&str>, to: Option<&str>) -> ApiResult<TimeRange> {
        let now = Utc::now();
        let r = TimeRange {
            from: from.map(|s| parse_time("from", s, now)).transpose()?,
            to: to.map(|s| parse_time("to", s, now)).transpose()?,
        };
        if let (Some(f), Some(t)) = (r.from, r.to)
            && f > t
        {
            return Err(ApiError::bad_request("`from` is after `to`"));
        }
        Ok(r)
    }

    /// Whether `[start, end)` overlaps the range.
    fn overlaps(&self, start: i64, end: i64) -> bool {
        self.from.is_none_or(|f| end > f) && self.to.is_none_or(|t| start < t)
    }

    fn covers(&self, start: i64, end: i64) -> bool {
        self.from.is_none_or(|f| start >= f) && self.to.is_none_or(|t| end <= t)
    }

    /// The predicate on a timestamp column.
    pub fn expr(&self, column: &str) -> Option<Expr> {
        let a = self.from.map(|f| col(column).gt_eq(ts(f)));
        let b = self.to.map(|t| col(column).lt(ts(t)));
        and_all(a.into_iter().chain(b))
    }
}

/// A timestamp literal of the store's type (µs, UTC).
pub fn ts(us: i64) -> Expr {
    lit(ScalarValue::TimestampMicrosecond(
        Some(us),
        Some(crate::normalize::schema::TZ.into()),
    ))
}

pub fn and_all(exprs: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    exprs.into_iter().reduce(|a, b| a.and(b))
}

/// `column = value`, or `column LIKE …` when the value is a glob (`*` any run, `?` one
/// character; `path/*` is a prefix). LIKE's own `%`, `_` and `\` are escaped, and the
/// constant prefix of the pattern still prunes by the min/max statistics.
pub fn pattern(column: &str, value: &str) -> Expr {
    if value.contains(['*', '?']) {
        col(column).like(lit(glob_to_like(value)))
    } else {
        col(column).eq(lit(value.to_string()))
    }
}

pub fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// `column IN (values)` (or `=` for one value); values come comma-separated.
pub fn one_of(column: &str, csv: &str) -> Option<Expr> {
    let vals: Vec<Expr> = csv
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| lit(v.to_string()))
        .collect();
    match vals.len() {
        0 => None,
        1 => Some(col(column).eq(vals.into_iter().next()?)),
        _ => Some(col(column).in_list(vals, false)),
    }
}

pub fn csv_list(csv: Option<&str>) -> Vec<String> {
    csv.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

/// Sort direction of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn parse(s: Option<&str>) -> ApiResult<Order> {
        match s {
            None | Some("asc") => Ok(Order::Asc),
            Some("desc") => Ok(Order::Desc),
            Some(o) => Err(ApiError::bad_request(format!(
                "order={o:?}: expected asc or desc"
            ))),
        }
    }
}

/// Keyset position: the (time, row_key) of the last row of a page. Opaque to clients:
/// URL-safe base64 of both, big-endian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub row_key: u64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.time.to_be_bytes());
        b[8..].copy_from_slice(&self.row_key.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }

    pub fn decode(s: &str) -> ApiResult<Cursor> {
        let bad = || {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_cursor",
                "cursor is not one this API returned",
            )
        };
        let b = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| bad())?;
        let b: [u8; 16] = b.try_into().map_err(|_| bad())?;
        Ok(Cursor {
            time: i64::from_be_bytes(b[..8].try_into().map_err(|_| bad())?),
            row_key: u64::from_be_bytes(b[8..].try_into().map_err(|_| bad())?),
        })
    }

    /// Rows strictly after the cursor in `order`. The extra `time >=` / `time <=`
    /// conjunct is implied by the rest; it is there because a plain range prunes.
    pub fn after(&self, order: Order) -> Expr {
        let t = || ts(self.time);
        let k = || lit(self.row_key);
        match order {
            Order::Asc => col("time").gt_eq(t()).and(
                col("time")
                    .gt(t())
                    .or(col("time").eq(t()).and(col("row_key").gt(k()))),
            ),
            Order::Desc => col("time").lt_eq(t()).and(
                col("time")
                    .lt(t())
                    .or(col("time").eq(t()).and(col("row_key").lt(k()))),
            ),
        }
    }
}

/// `limit`: default 100, between 1 and `max`.
pub fn parse_limit(s: Option<&str>, default: usize, max: usize) -> ApiResult<usize> {
    let Some(s) = s else {
        return Ok(default);
    };
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit={s:?}: expected a number between 1 and {max}"
        ))),
    }
}

pub fn parse_bool(name: &str, s: Option<&str>) -> ApiResult<Option<bool>> {
    match s {
        None => Ok(None),
        Some("true" | "1") => Ok(Some(true)),
        Some("false" | "0") => Ok(Some(false)),
        Some(v) => Err(ApiError::bad_request(format!(
            "{name}={v:?}: expected true or false"
        ))),
    }
}

/// The directories (or stray files) of `events/` that can hold rows of `sources` (all
/// when empty) within `range`. A date directory wholly inside the range is taken whole;
/// one partly inside contributes its matching hour directories. Anything that does not
/// follow the layout is kept, so an unexpected file is scanned rather than missed.
pub fn event_partitions(root: &Path, sources: &[String], range: TimeRange) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for s in entries(&root.join(crate::store::EVENTS_DIR)) {
        let name = file_name(&s);
        match name.strip_prefix("source=") {
            Some(src) if s.is_dir() => {
                if !sources.is_empty() && !sources.iter().any(|x| x == src) {
                    continue;
                }
                dated(&s, range, true, &mut out);
            }
            _ => keep(&s, &mut out),
        }
    }
    out
}

/// The partitions of `alerts/` within `range` (alerts are partitioned by day).
pub fn alert_partitions(root: &Path, range: TimeRange) -> Vec<PathBuf> {
    let mut out = Vec::new();
    dated(&root.join(crate::store::ALERTS_DIR), range, false, &mut out);
    out
}

fn dated(dir: &Path, range: TimeRange, hours: bool, out: &mut Vec<PathBuf>) {
    for d in entries(dir) {
        let day = file_name(&d)
            .strip_prefix("date=")
            .and_then(|x| NaiveDate::parse_from_str(x, "%Y-%m-%d").ok())
            .and_then(|x| x.and_hms_opt(0, 0, 0))
            .map(|x| x.and_utc().timestamp_micros());
        let Some(day) = day.filter(|_| d.is_dir()) else {
            keep(&d, out);
            continue;
        };
        // alerts of a day may point at events a little before it: no hour split there
        if !range.overlaps(day, day + DAY_US) {
            continue;
        }
        if !hours || range.covers(day, day + DAY_US) {
            out.push(d);
            continue;
        }
        for h in entries(&d) {
            let hour = file_name(&h)
                .strip_prefix("hour=")
                .and_then(|x| x.parse::<i64>().ok())
                .filter(|x| (0..24).contains(x));
            match hour.filter(|_| h.is_dir()) {
                Some(hr) => {
                    let start = day + hr * HOUR_US;
                    if range.overlaps(start, start + HOUR_US) {
                        out.push(h);
                    }
                }
                None => keep(&h, out),
            }
        }
    }
}

/// Keeps a directory or a Parquet file that is outside the layout.
fn keep(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() || p.extension().is_some_and(|e| e == "parquet") {
        out.push(p.to_path_buf());
    }
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_absolute_relative_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-02T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let us = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        assert_eq!(
            parse_time("from", "-24h", now).unwrap(),
            us("2026-11-01T12:00:00Z")
        );
        assert_eq!(
            parse_time("from", "2026-11-02T13:00:00 01:00", now).unwrap(),
            us("2026-11-02T12:00:00Z")
        );
        assert_eq!(
            parse_time("from", "2026-11-01", now).unwrap(),
            us("2026-11-01T00:00:00Z")
        );
        assert_eq!(
            parse_time("to", "now", now).unwrap(),
            now.timestamp_micros()
        );
        assert!(parse_time("from", "yesterday", now).is_err());
        assert!(TimeRange::parse(Some("-1h"), Some("-2h")).is_err());
    }

    #[test]
    fn globs_escape_like_metacharacters() {
        assert_eq!(glob_to_like("secret/data/*"), "secret/data/%");
        assert_eq!(glob_to_like("a_b%c\\?*"), "a\\_b\\%c\\\\_%");
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            time: 1_793_000_000_000_000,
            row_key: u64::MAX - 3,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not a cursor").is_err());
        assert!(Cursor::decode("AAAA").is_err());
    }

    #[test]
    fn partitions_follow_the_time_range() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for p in [
            "events/source=kubernetes/date=2026-11-01/hour=23",
            "events/source=kubernetes/date=2026-11-02/hour=00",
            "events/source=kubernetes/date=2026-11-02/hour=05",
            "events/source=vault/date=2026-11-02/hour=05",
            "alerts/date=2026-11-01",
            "alerts/date=2026-11-02",
        ] {
            std::fs::create_dir_all(r.join(p)).unwrap();
        }
        let rel = |v: Vec<PathBuf>| -> Vec<String> {
            v.into_iter()
                .map(|p| p.strip_prefix(r).unwrap().display().to_string())
                .collect()
        };
        let now = Utc::now();
        let range = TimeRange {
            from: Some(parse_time("from", "2026-11-02T00:30:00Z", now).unwrap()),
            to: Some(parse_time("to", "2026-11-02T06:00:00Z", now).unwrap()),
        };
        assert_eq!(
            rel(event_partitions(r, &["kubernetes".into()], range)),
            [
                "events/source=kubernetes/date=2026-11-02/hour=00",
                "events/source=kubernetes/date=2026-11-02/hour=05"
            ]
        );
        assert_eq!(rel(event_partitions(r, &[], TimeRange::default())).len(), 3);
        assert_eq!(rel(alert_partitions(r, range)), ["alerts/date=2026-11-02"]);
    }
}
