//! Files, directories and stdin as audit input. `-` is stdin; a directory stands for the
//! regular files under it (recursively, sorted, hidden entries skipped); gzip-compressed
//! files (rotated audit logs) are decompressed on the fly, recognized by their magic bytes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// An opened input: its display name, its size on disk if known, and a reader.
pub struct Input {
    pub name: String,
    pub size: Option<u64>,
    pub reader: Box<dyn Read + Send>,
}

/// Expands directories into the files under them; other paths are kept as given.
pub fn expand(paths: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for p in paths {
        if p != "-" && Path::new(p).is_dir() {
            walk(Path::new(p), &mut out).map_err(|e| Error::Input {
                path: p.clone(),
                source: e,
            })?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if ft.is_file() || (ft.is_symlink() && path.is_file()) {
            out.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(())
}

pub fn open(path: &str) -> Result<Input> {
    let err = |e| Error::Input {
        path: path.into(),
        source: e,
    };
    let (name, size, raw): (String, Option<u64>, Box<dyn Read + Send>) = if path == "-" {
        ("stdin".into(), None, Box::new(io::stdin()))
    } else {
        let f = File::open(path).map_err(err)?;
        let size = f.metadata().ok().map(|m| m.len());
        (path.into(), size, Box::new(f))
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let gz = buffered.fill_buf().map_err(err)?.starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read + Send> = if gz {
        Box::new(flate2::bufread::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    Ok(Input { name, size, reader })
}
