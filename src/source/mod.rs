//! Source: where audit bytes come from. Files and stdin ([`file`]) and Kafka topics
//! ([`kafka`]) feed the same decode → batch → store path.

pub mod file;
pub mod kafka;
pub mod state;
