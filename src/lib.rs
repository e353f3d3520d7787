//! auditwatch: reads Kubernetes API-server and Vault/OpenBao audit events, normalizes them
//! into Arrow tables, stores them as Parquet and answers forensic queries; detection of
//! unusual secret access plugs in between batching and storage.
//!
//! # Layout
//! The modules follow the data flow:
//!
//! ```text
//! source ──► decode ──► normalize ──► batch ──┬─► detect ──► alert sinks
//! (files,    (framing,   (redact,     (rows,  │
//!  kafka)     k8s, vault, Arrow        linger) └─► store (Parquet) ◄── query (DataFusion)
//!             wrappers)   builders)
//! ```
//!
//! - [`source`]: where bytes come from (files, stdin, Kafka topics).
//! - [`decode`]: bytes → [`normalize::AccessEvent`]s or quarantine reasons; never panics.
//! - [`normalize`]: the `access_events` schema, redaction, Arrow builders.
//! - [`batch`]: closes batches on rows, bytes or linger time.
//! - [`store`]: append-only, partitioned, deduplicated Parquet through `object_store`.
//! - [`query`]: read-only SQL over `events` and `quarantine`.
//! - [`api`]: HTTP endpoints (`/metrics`, `/healthz`, `/readyz`).
//! - [`config`]: the validated configuration of `run` (file + environment).
//! - [`metrics`]: every Prometheus metric, in one place.
//! - [`app`]: wires the stages together for each command.
//!
//! Invariant across all stages: secret values are removed in [`normalize::redact`] before
//! a row exists, so nothing downstream can store, log or return them.

pub mod api;
pub mod app;
pub mod baseline;
pub mod batch;
pub mod config;
pub mod decode;
pub mod demo;
pub mod detect;
pub mod error;
pub mod generate;
pub mod loadtest;
pub mod metrics;
pub mod normalize;
pub mod query;
pub mod siem;
pub mod sink;
pub mod source;
pub mod store;

pub use error::{Error, Result};
