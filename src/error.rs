//! Crate-wide error type. Each variant says whose fault it is and whether retrying helps.
//!
//! Bad *input* is not an error here: decoders turn it into quarantine records
//! (see [`crate::decode::Rejected`]). These errors are for the machinery around it.

use std::io;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operator gave us something unusable (flag, config value, SQL). Not retryable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Reading an input file or stream failed. Retrying may help.
    #[error("input i/o error on {path}: {source}")]
    Input { path: String, source: io::Error },
    /// The object store refused or failed a request. Retrying may help.
    #[error("store error: {0}")]
    Store(#[from] object_store::Error),
    /// Writing or reading Parquet failed. A bug or a corrupt file; retry will not help.
    #[error("parquet error: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    /// Building Arrow arrays failed: a bug in our builders.
    #[error("arrow error: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A query failed: usually the user's SQL, sometimes a resource limit.
    #[error("query error: {0}")]
    Query(#[from] datafusion::error::DataFusionError),
    /// The user asked for something the query surface refuses (DDL, DML, file access).
    #[error("query refused: {0}")]
    QueryRefused(String),
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),

    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
    /// The Kafka client failed (broker, configuration, protocol). Often retryable.
    #[error("kafka error: {0}")]
    Kafka(String),
}

impl Error {
    /// Whether the same operation may succeed if retried later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Input { .. } | Error::Store(_) | Error::Io(_) | Error::Kafka(_)
        )
    }
}
