//! Files and stdin as audit input. `-` is stdin.

use std::fs::File;
use std::io::{self, BufReader, Read};

use crate::error::{Error, Result};

/// An opened input: its display name, its size if known, and a reader.
pub struct Input {
    pub name: String,
    pub size: Option<u64>,
    pub reader: Box<dyn Read + Send>,
}

pub fn open(path: &str) -> Result<Input> {
    if path == "-" {
        return Ok(Input {
            name: "stdin".into(),
            size: None,
            reader: Box::new(io::stdin()),
        });
    }
    let f = File::open(path).map_err(|e| Error::Input {
        path: path.into(),
        source: e,
    })?;
    let size = f.metadata().ok().map(|m| m.len());
    Ok(Input {
        name: path.into(),
        size,
        reader: Box::new(BufReader::with_capacity(1 << 16, f)),
    })
}
