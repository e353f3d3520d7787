//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use auditwatch::batch::{BatchLimits, Batcher};
use auditwatch::decode::framing::Framer;
use auditwatch::decode::{DecodeOptions, Decoder, Format};
use auditwatch::normalize::Provenance;
use datafusion::arrow::array::RecordBatch;
use serde_json::Value;

/// The conformance data folder, or `None` (and a printed notice) when it is absent.
pub fn conformance_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("AUDITWATCH_CONFORMANCE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(
                std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()),
            )
            .join("../shared/data")
        });
    if dir.join("SOURCES.md").exists() {
        Some(dir)
    } else {
        println!(
            "SKIPPED {test}: conformance data not found at {} (set AUDITWATCH_CONFORMANCE_DATA)",
            dir.display()
        );
        None
    }
}

/// Rows as JSON objects (one per row), exactly as `auditwatch query --format json` shows them.
pub fn batch_rows(batch: &RecordBatch) -> Vec<Value> {
    let mut buf = Vec::new();
    let mut w = datafusion::arrow::json::LineDelimitedWriter::new(&mut buf);
    w.write(batch).unwrap();
    w.finish().unwrap();
    String::from_utf8(buf)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Result of decoding one input in memory.
pub struct Decoded {
    pub rows: Vec<Value>,
    pub quarantine: Vec<Value>,
    pub skipped: u64,
}

/// Frames and decodes bytes in memory with the given format and options.
pub fn decode_bytes(bytes: &[u8], format: Format, opts: DecodeOptions) -> Decoded {
    let mut batcher = Batcher::new(BatchLimits::default());
    let mut decoder = Decoder::new(format, opts);
    let mut framer = Framer::new(bytes, 16 << 20);
    while let Some(frame) = framer.next_frame().unwrap() {
        let prov = Provenance {
            input: Some("test"),
            input_offset: Some(frame.offset as i64),
            ..Default::default()
        };
        decoder.decode_frame(&frame, &prov, &mut batcher);
    }
    decoder.flush(&mut batcher);
    let skipped = batcher.counts.skipped;
    let closed = batcher.take().unwrap();
    Decoded {
        rows: closed.events.as_ref().map(batch_rows).unwrap_or_default(),
        quarantine: closed
            .quarantine
            .as_ref()
            .map(batch_rows)
            .unwrap_or_default(),
        skipped,
    }
}

pub fn decode_file(path: &std::path::Path, format: Format, opts: DecodeOptions) -> Decoded {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    decode_bytes(&bytes, format, opts)
}

/// Runs the built binary with arguments and optional stdin; returns (status, stdout, stderr).
pub fn run_cli(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> (i32, String, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_auditwatch"));
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn auditwatch");
    {
        let mut si = child.stdin.take().unwrap();
        if let Some(b) = stdin {
            si.write_all(b).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Writes the TOML file `auditwatch run --config` reads for one topic of Kubernetes
/// events (`properties` go under `[kafka.properties]`; the API on a free port) and returns
/// its path, `dir/aw.toml`.
pub fn write_run_config(
    dir: &std::path::Path,
    data: &std::path::Path,
    bootstrap: &str,
    group: &str,
    topic: &str,
    properties: &[(&str, &str)],
    linger: &str,
    batch_rows: usize,
) -> PathBuf {
    let mut toml = format!(
        "[store]\ndata_dir = {:?}\n[kafka]\nbootstrap_servers = {bootstrap:?}\ngroup_id = {group:?}\ntopics = [{{ name = {topic:?}, format = \"k8s\" }}]\n",
        data.display().to_string(),
    );
    if !properties.is_empty() {
        toml.push_str("[kafka.properties]\n");
        for (k, v) in properties {
            toml.push_str(&format!("{k:?} = {v:?}\n"));
        }
    }
    toml.push_str(&format!(
        "[pipeline]\nlinger = {linger:?}\nbatch_rows = {batch_rows}\n[api]\nlisten = \"127.0.0.1:0\"\n"
    ));
    let path = dir.join("aw.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

/// Sends signal `sig` (2 SIGINT, 15 SIGTERM, 19 SIGSTOP, 18 SIGCONT on Linux) to `pid`.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours
    unsafe { libc_kill(pid as i32, sig) };
}
