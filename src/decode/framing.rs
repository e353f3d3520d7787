//! Splits a byte stream into JSON records: JSON lines, pretty-printed objects spanning
//! lines, and objects concatenated on one line all work. Anything else becomes a
//! [`Frame`] marked as garbage or truncated so the caller can quarantine it.
//!
//! Resynchronization: JSON strings cannot contain a raw newline, so a newline inside a
//! string ends a truncated record; outside strings, a line that starts with `{` at column
//! 0 while a record is still open also starts a new record (pretty printers indent nested
//! objects). One bad line therefore never swallows the rest of the input.
//!
//! Memory is bounded by `max_frame_bytes`: a longer record is cut there (marked
//! `truncated_at_cap`) and the rest of it is skipped without being buffered.

use std::io::{self, Read};

/// Why a frame is not a plain complete JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameIssue {
    /// Complete JSON value (syntax still checked by the decoder).
    None,
    /// Did not start with `{` or `[`.
    NotJson,
    /// The record ended (newline in a string, new record, end of input) before closing.
    Truncated,
}

#[derive(Debug)]
pub struct Frame<'a> {
    pub bytes: &'a [u8],
    /// Byte offset of the frame in the stream.
    pub offset: u64,
    /// Full length of the record, which exceeds `bytes.len()` when it was cut at the cap.
    pub len: u64,
    pub issue: FrameIssue,
}

impl Frame<'_> {
    pub fn truncated_at_cap(&self) -> bool {
        self.len > self.bytes.len() as u64
    }
}

pub struct Framer<R> {
    reader: R,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`.
    start: usize,
    eof: bool,
    /// Stream offset of `buf[0]`.
    base: u64,
    max_frame_bytes: usize,
    read_size: usize,
    /// Head of the last record that was cut at `max_frame_bytes`.
    cut: Vec<u8>,
}

enum Scan {
    /// Frame ends at this index (exclusive) with this issue.
    Done { end: usize, issue: FrameIssue },
    /// Need more input.
    More,
}

impl<R: Read> Framer<R> {
    pub fn new(reader: R, max_frame_bytes: usize) -> Self {
        Framer {
            reader,
            buf: Vec::new(),
            start: 0,
            eof: false,
            base: 0,
            max_frame_bytes: max_frame_bytes.max(1024),
            read_size: 1 << 20,
            cut: Vec::new(),
        }
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn position(&self) -> u64 {
        self.base + self.start as u64
    }

    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + self.read_size, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// Returns the next frame, or `None` at the end of input.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        // skip whitespace, a UTF-8 BOM and stray separators between records
        loop {
            while self.start < self.buf.len() {
                let c = self.buf[self.start];
                if c.is_ascii_whitespace() || c == b',' {
                    self.start += 1;
                } else if self.buf[self.start..].starts_with(b"\xEF\xBB\xBF") {
                    self.start += 3;
                } else {
                    break;
                }
            }
            if self.start < self.buf.len() {
                break;
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
        let first = self.buf[self.start];
        let offset = self.base + self.start as u64;
        if first != b'{' && first != b'[' {
            return self.take_garbage_line(offset);
        }
        self.take_value(offset)
    }

    fn take_garbage_line(&mut self, offset: u64) -> io::Result<Option<Frame<'_>>> {
        let mut from = self.start;
        let mut total: u64 = 0;
        let mut kept: Option<Vec<u8>> = None;
        loop {
            if let Some(p) = memchr::memchr(b'\n', &self.buf[from..]) {
                let end = from + p;
                return Ok(Some(self.emit(
                    offset,
                    end,
                    end + 1,
                    total,
                    kept,
                    FrameIssue::NotJson,
                )));
            }
            from = self.buf.len();
            if self.eof {
                let end = self.buf.len();
                return Ok(Some(self.emit(
                    offset,
                    end,
                    end,
                    total,
                    kept,
                    FrameIssue::NotJson,
                )));
            }
            self.spill_if_over_cap(&mut from, &mut total, &mut kept);
            self.fill_keep(&mut from)?;
        }
    }

    /// When the open frame exceeds the cap, keep its first `max_frame_bytes` aside and
    /// drop the rest from the buffer as it is scanned.
    fn spill_if_over_cap(&mut self, from: &mut usize, total: &mut u64, kept: &mut Option<Vec<u8>>) {
        let open = *from - self.start;
        if open > self.max_frame_bytes {
            if kept.is_none() {
                *kept = Some(self.buf[self.start..self.start + self.max_frame_bytes].to_vec());
            }
            *total += open as u64;
            self.start = *from;
        }
    }

    fn fill_keep(&mut self, from: &mut usize) -> io::Result<()> {
        let before = self.start;
        self.fill()?;
        // fill() may have shifted the buffer left by `before`
        if self.start != before {
            *from -= before - self.start;
        }
        Ok(())
    }

    fn emit(
        &mut self,
        offset: u64,
        end: usize,
        consume_to: usize,
        spilled: u64,
        kept: Option<Vec<u8>>,
        issue: FrameIssue,
    ) -> Frame<'_> {
        let s = self.start;
        self.start = consume_to.min(self.buf.len());
        match kept {
            None => Frame {
                bytes: &self.buf[s..end],
                offset,
                len: (end - s) as u64,
                issue,
            },
            Some(k) => {
                // the cut record's head was copied aside when it passed the cap
                let len = spilled + (end - s) as u64;
                self.cut = k;
                Frame {
                    bytes: &self.cut,
                    offset,
                    len,
                    issue,
                }
            }
        }
    }

    fn take_value(&mut self, offset: u64) -> io::Result<Option<Frame<'_>>> {
        let mut st = ValueScan::default();
        let mut from = self.start;
        let mut total: u64 = 0;
        let mut kept: Option<Vec<u8>> = None;
        loop {
            match st.scan(&self.buf, &mut from, self.start, self.eof) {
                Scan::Done { end, issue } => {
                    let consume = end;
                    return Ok(Some(self.emit(offset, end, consume, total, kept, issue)));
                }
                Scan::More => {
                    self.spill_if_over_cap(&mut from, &mut total, &mut kept);
                    self.fill_keep(&mut from)?;
                }
            }
        }
    }
}

#[derive(Default)]
struct ValueScan {
    depth: usize,
    in_str: bool,
    escaped: bool,
    at_line_start: bool,
}

impl ValueScan {
    fn scan(&mut self, buf: &[u8], from: &mut usize, frame_start: usize, eof: bool) -> Scan {
        let mut i = *from;
        while i < buf.len() {
            if self.in_str {
                // jump to the next quote, backslash or newline
                match memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]) {
                    None => {
                        i = buf.len();
                        break;
                    }
                    Some(p) => i += p,
                }
                if self.escaped {
                    self.escaped = false;
                    i += 1;
                    continue;
                }
                match buf[i] {
                    b'\\' => {
                        // skip the escaped character (may be at the buffer end)
                        if i + 1 < buf.len() {
                            i += 2;
                        } else {
                            self.escaped = true;
                            i += 1;
                        }
                    }
                    b'"' => {
                        self.in_str = false;
                        i += 1;
                    }
                    _ => {
                        // raw newline inside a string: the record was cut off
                        *from = i;
                        return Scan::Done {
                            end: i,
                            issue: FrameIssue::Truncated,
                        };
                    }
                }
                continue;
            }
            let c = buf[i];
            if self.at_line_start {
                self.at_line_start = false;
                if c == b'{' && self.depth > 0 && i > frame_start {
                    *from = i;
                    return Scan::Done {
                        end: i,
                        issue: FrameIssue::Truncated,
                    };
                }
            }
            match c {
                b'"' => self.in_str = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        *from = i + 1;
                        return Scan::Done {
                            end: i + 1,
                            issue: FrameIssue::None,
                        };
                    }
                }
                b'\n' => self.at_line_start = true,
                _ => {}
            }
            i += 1;
        }
        *from = i;
        if eof {
            Scan::Done {
                end: buf.len(),
                issue: FrameIssue::Truncated,
            }
        } else {
            Scan::More
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], cap: usize) -> Vec<(String, u64, FrameIssue, u64)> {
        let mut f = Framer::new(input, cap);
        f.read_size = 7; // exercise refills in the middle of records
        let mut out = vec![];
        while let Some(fr) = f.next_frame().unwrap() {
            out.push((
                String::from_utf8_lossy(fr.bytes).into_owned(),
                fr.offset,
                fr.issue,
                fr.len,
            ));
        }
        out
    }

    #[test]
    fn json_lines_pretty_and_concatenated() {
        let input = b"{\"a\":1}\n{\"b\":\"x}\\\"y\"}{\"c\":[1,{\"d\":2}]}\n{\n  \"e\": {\n    \"f\": 1\n  }\n}\n";
        let f = frames(input, 1 << 20);
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].0, "{\"a\":1}");
        assert_eq!(f[1].0, "{\"b\":\"x}\\\"y\"}");
        assert_eq!(f[2].0, "{\"c\":[1,{\"d\":2}]}");
        assert!(f[3].0.starts_with("{\n  \"e\""));
        assert!(f.iter().all(|x| x.2 == FrameIssue::None));
        assert_eq!(f[1].1, 8);
    }

    #[test]
    fn truncated_line_does_not_swallow_the_next() {
        let input =
            b"{\"kind\":\"Event\",\"user\":\"tru\n{\"ok\":1}\n{\"open\":{\"x\":1,\n{\"ok\":2}\n";
        let f = frames(input, 1 << 20);
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f[0].2, FrameIssue::Truncated);
        assert_eq!(f[1].0, "{\"ok\":1}");
        assert_eq!(f[2].2, FrameIssue::Truncated);
        assert_eq!(f[3].0, "{\"ok\":2}");
    }

    #[test]
    fn garbage_lines_are_frames() {
        let f = frames(b"\x00\xffbinary\n{\"ok\":1}\nplain text", 1 << 20);
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].2, FrameIssue::NotJson);
        assert_eq!(f[1].0, "{\"ok\":1}");
        assert_eq!(f[2].0, "plain text");
        assert_eq!(f[2].2, FrameIssue::NotJson);
    }

    #[test]
    fn oversize_record_is_cut_at_cap_and_skipped() {
        let mut input = b"{\"big\":\"".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\"}\n{\"ok\":1}\n");
        let f = frames(&input, 1024);
        assert_eq!(
            f.len(),
            2,
            "{:?}",
            f.iter().map(|x| (x.1, x.2, x.3)).collect::<Vec<_>>()
        );
        assert_eq!(f[0].0.len(), 1024);
        assert_eq!(f[0].3, 5000 + 10);
        assert_eq!(f[1].0, "{\"ok\":1}");
    }

    #[test]
    fn eof_inside_value_is_truncated() {
        let f = frames(b"{\"a\":[1,2", 1 << 20);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].2, FrameIssue::Truncated);
    }
}
