//! Source: where audit bytes come from. Files and stdin today ([`file`]); Kafka topics
//! plug in here with the same decode → batch → store path.

pub mod file;
