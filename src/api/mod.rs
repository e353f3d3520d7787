//! HTTP surface: the operational endpoints `/metrics` (Prometheus), `/healthz` (the
//! process is up) and `/readyz`, and the investigation API under `/api/v1`:
//!
//! | route | role | |
//! |---|---|---|
//! | `GET /api/v1/events` | reader | filtered events, keyset pages, JSON or NDJSON |
//! | `GET /api/v1/actors/{actor}/timeline` | reader | one actor's events |
//! | `GET /api/v1/resources/accessors?path=` | reader | who touched a resource |
//! | `GET /api/v1/alerts`, `GET /api/v1/alerts/{id}` | reader | alerts; one with its evidence |
//! | `POST /api/v1/query` | admin | read-only SQL |
//! | `GET /api/v1/openapi.json` | none | the OpenAPI 3.1 description |
//!
//! The same router is served by `auditwatch serve` (over an existing store), `run` and
//! `demo`. Invariants: every `/api/v1` call except the OpenAPI document is authenticated
//! ([`auth`]) and written to the access log ([`access`]) before its answer leaves;
//! queries run on their own runtime, off the ingest path, under memory, time and row
//! limits ([`ApiState::run`]); user input reaches DataFusion only as literals ([`scan`]).

pub mod access;
pub mod auth;
pub mod error;
pub mod openapi;
pub mod scan;
pub mod v1;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::query::{QueryEngine, QueryLimits};

use self::auth::{Auth, Gate, Role};
use self::error::{ApiError, ApiResult};

/// Something that can say whether the service is ready to do its job.
pub trait Readiness: Send + Sync + 'static {
    fn is_ready(&self) -> bool;
}

impl Readiness for crate::source::kafka::Shared {
    fn is_ready(&self) -> bool {
        crate::source::kafka::Shared::is_ready(self)
    }
}

/// `serve`'s readiness: the store directory is there.
pub struct StoreReady(pub PathBuf);

impl Readiness for StoreReady {
    fn is_ready(&self) -> bool {
        self.0.is_dir()
    }
}

/// The operational endpoints alone.
pub fn router(ready: Arc<dyn Readiness>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    crate::metrics::render(),
                )
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = ready.clone();
                async move {
                    if ready.is_ready() {
                        (StatusCode::OK, "ready").into_response()
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
                    }
                }
            }),
        )
}

/// Default largest request body (the SQL of `POST /query`).
pub const DEFAULT_MAX_BODY_BYTES: usize = 64 << 10;

/// How an [`ApiState`] is built.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    pub auth: Auth,
    pub limits: QueryLimits,
    pub max_body_bytes: usize,
    /// Append the access log to `<data-dir>/access-log/` (else `tracing` only).
    pub access_log_file: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            auth: Auth::tokens(vec![]),
            limits: QueryLimits::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            access_log_file: true,
        }
    }
}

/// Everything the handlers share: the store, the query engine and its runtime, auth
/// and the access log. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    engine: QueryEngine,
    opts: ApiOptions,
    access_log: Arc<access::AccessLog>,
    ready: Arc<dyn Readiness>,
    runtime: QueryRuntime,
}

/// The runtime queries run on, so DataFusion's CPU work never occupies the workers of
/// the ingest pipeline. Shut down in the background when dropped (dropping a runtime
/// from async code would panic otherwise).
struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    fn new() -> Result<QueryRuntime> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(1, 4);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("auditwatch-query")
            .enable_all()
            .build()?;
        Ok(QueryRuntime(Some(rt)))
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until drop").handle()
    }
}

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Aborts a task when the request that started it goes away (timeout, disconnect).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl ApiState {
    /// Opens the store at `data_dir` for the API.
    pub fn new(data_dir: &Path, opts: ApiOptions, ready: Arc<dyn Readiness>) -> Result<ApiState> {
        let engine = QueryEngine::open_limited(data_dir, &opts.limits)?;
        let access_log = if opts.access_log_file {
            access::AccessLog::new(data_dir)
        } else {
            access::AccessLog::tracing_only()
        };
        Ok(ApiState {
            inner: Arc::new(Inner {
                root: data_dir.to_path_buf(),
                engine,
                opts,
                access_log: Arc::new(access_log),
                ready,
                runtime: QueryRuntime::new()?,
            }),
        })
    }

    /// The API of `run`: tokens and limits from the configuration. Without tokens every
    /// `/api/v1` request is refused (401).
    pub fn from_config(cfg: &crate::config::Config, ready: Arc<dyn Readiness>) -> Result<ApiState> {
        if cfg.api_tokens.is_empty() {
            tracing::warn!(
                "no API tokens configured ([[api.tokens]] or api.tokens_file): /api/v1 refuses every request"
            );
        }
        ApiState::new(
            &cfg.data_dir,
            ApiOptions {
                auth: Auth::tokens(cfg.api_tokens.clone()),
                limits: cfg.api_limits,
                max_body_bytes: cfg.api_max_body_bytes,
                access_log_file: true,
            },
            ready,
        )
    }

    /// The API of `demo`: without configured tokens and on a loopback address, no
    /// authentication (it is a local demo); otherwise as [`ApiState::from_config`].
    pub fn for_demo(cfg: &crate::config::Config, ready: Arc<dyn Readiness>) -> Result<ApiState> {
        if cfg.api_tokens.is_empty() && cfg.api_listen.ip().is_loopback() {
            return ApiState::new(
                &cfg.data_dir,
                ApiOptions {
                    auth: Auth::Disabled,
                    limits: cfg.api_limits,
                    max_body_bytes: cfg.api_max_body_bytes,
                    access_log_file: true,
                },
                ready,
            );
        }
        ApiState::from_config(cfg, ready)
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub fn engine(&self) -> &QueryEngine {
        &self.inner.engine
    }

    pub fn limits(&self) -> &QueryLimits {
        &self.inner.opts.limits
    }

    pub fn max_body_bytes(&self) -> usize {
        self.inner.opts.max_body_bytes
    }

    /// Runs query work on the query runtime under the time limit (504 past it; the work
    /// is cancelled). The memory limit is the engine's pool.
    pub async fn run<T, F>(&self, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: std::future::Future<Output = ApiResult<T>> + Send + 'static,
    {
        let task = self.inner.runtime.handle().spawn(work);
        let _abort = AbortOnDrop(task.abort_handle());
        let limit = self.inner.opts.limits.timeout;
        match tokio::time::timeout(limit, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "api query task failed");
                Err(ApiError::internal(
                    "the query failed on the server; see its log",
                ))
            }
            Err(_) => Err(ApiError::timeout(limit)),
        }
    }
}

/// The whole router: operational endpoints and `/api/v1`.
pub fn app(state: ApiState) -> Router {
    access::metrics();
    let gate = |role| Gate {
        auth: state.inner.opts.auth.clone(),
        role,
    };
    let api = Router::new()
        .merge(endpoint(
            "/api/v1/events",
            get(v1::events),
            Some(gate(Role::Reader)),
        ))
        .merge(endpoint(
            "/api/v1/actors/{actor}/timeline",
            get(v1::timeline),
            Some(gate(Role::Reader)),
        ))
        .merge(endpoint(
            "/api/v1/resources/accessors",
            get(v1::accessors),
            Some(gate(Role::Reader)),
        ))
        .merge(endpoint(
            "/api/v1/alerts",
            get(v1::alerts),
            Some(gate(Role::Reader)),
        ))
        .merge(endpoint(
            "/api/v1/alerts/{id}",
            get(v1::alert),
            Some(gate(Role::Reader)),
        ))
        .merge(endpoint(
            "/api/v1/query",
            post(v1::sql),
            Some(gate(Role::Admin)),
        ))
        .merge(endpoint("/api/v1/openapi.json", get(openapi::serve), None))
        .with_state(state.clone());
    router(state.inner.ready.clone())
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such endpoint; see /api/v1/openapi.json") })
        .layer(DefaultBodyLimit::max(state.inner.opts.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.inner.access_log.clone(),
            access::observe,
        ))
}

/// One route, behind the auth gate when given, tagged with its template for the metrics
/// and the access log (outside the gate, so refusals are tagged too).
fn endpoint(
    path: &'static str,
    method: MethodRouter<ApiState>,
    gate: Option<Gate>,
) -> Router<ApiState> {
    let mut r = Router::new().route(path, method);
    if let Some(g) = gate {
        r = r.route_layer(middleware::from_fn_with_state(g, auth::require));
    }
    r.route_layer(middleware::map_response(
        move |mut resp: axum::response::Response| async move {
            resp.extensions_mut().insert(access::Route(path));
            resp
        },
    ))
}

/// Serves the operational endpoints until `shutdown` is cancelled. Returns the bound
/// address through `bound`.
pub async fn serve(
    listen: SocketAddr,
    ready: Arc<dyn Readiness>,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    serve_router(listen, router(ready), shutdown, bound).await
}

/// Serves the whole API ([`app`]) until `shutdown` is cancelled.
pub async fn serve_with(
    listen: SocketAddr,
    state: ApiState,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    serve_router(listen, app(state), shutdown, bound).await
}

async fn serve_router(
    listen: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "http listening");
    if let Some(b) = bound {
        let _ = b.send(addr);
    }
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { shutdown.cancelled().await })
    .await?;
    Ok(())
}

/// Command-line overrides of `auditwatch serve`.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    /// No authentication; only on loopback.
    pub insecure_no_auth: bool,
}

/// `auditwatch serve`: the API over an existing store until `shutdown` completes.
/// Refuses to start without tokens unless `insecure_no_auth`, which binds loopback only.
pub async fn serve_store(
    cfg: crate::config::Config,
    opts: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let data_dir = opts
        .data_dir
        .clone()
        .unwrap_or_else(|| cfg.data_dir.clone());
    if !data_dir.is_dir() {
        return Err(Error::Config(format!(
            "data dir {} does not exist: nothing to serve",
            data_dir.display()
        )));
    }
    let mut listen = opts.listen.unwrap_or(cfg.api_listen);
    let auth = if opts.insecure_no_auth {
        if !listen.ip().is_loopback() {
            eprintln!(
                "auditwatch: --insecure-no-auth listens on loopback only: 127.0.0.1:{} instead of {listen}",
                listen.port()
            );
            listen.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        eprintln!(
            "auditwatch: WARNING: --insecure-no-auth: anyone who can reach {listen} is an admin of /api/v1 (calls are still access-logged as \"anonymous\")"
        );
        Auth::Disabled
    } else {
        if cfg.api_tokens.is_empty() {
            return Err(Error::Config(
                "no API tokens configured: add [[api.tokens]] (name, role, sha256) or api.tokens_file \
                 to the configuration (hash a token with `auditwatch serve --hash-token`), \
                 or pass --insecure-no-auth to serve on loopback without authentication"
                    .into(),
            ));
        }
        Auth::tokens(cfg.api_tokens.clone())
    };
    let state = ApiState::new(
        &data_dir,
        ApiOptions {
            auth,
            limits: cfg.api_limits,
            max_body_bytes: cfg.api_max_body_bytes,
            access_log_file: true,
        },
        Arc::new(StoreReady(data_dir.clone())),
    )?;
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        shutdown.await;
        t.cancel();
    });
    let (tx, rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(serve_with(listen, state, token, Some(tx)));
    if let Ok(addr) = rx.await {
        eprintln!(
            "auditwatch: serving {} on http://{addr}/api/v1 (OpenAPI: http://{addr}/api/v1/openapi.json)",
            data_dir.display()
        );
    }
    server
        .await
        .map_err(|e| Error::Config(format!("http server task failed: {e}")))?
}

/// Parses a byte size: `65536`, `64KiB`, `512MiB`, `1GiB` (also KB/MB/GB as powers of 1024).
pub fn parse_bytes(s: &str) -> Result<usize> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| Error::Config(format!("invalid size {s:?}")))?;
    let mult: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(Error::Config(format!(
                "invalid size {s:?} (use B, KiB, MiB, GiB)"
            )));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| Error::Config(format!("size {s:?} too large")))
}

/// Validates the `[api]` settings beyond `listen`: tokens, query limits, body size.
pub fn validate(raw: &crate::config::RawApi) -> Result<(Vec<auth::ApiToken>, QueryLimits, usize)> {
    let tokens = auth::load_tokens(&raw.tokens, raw.tokens_file.as_deref())?;
    let limits = QueryLimits {
        memory_bytes: parse_bytes(&raw.query_memory_limit)
            .map_err(|e| Error::Config(format!("api.query_memory_limit: {e}")))?,
        timeout: crate::config::parse_duration(&raw.query_timeout)?,
        max_rows: raw.query_max_rows,
    };
    if limits.memory_bytes < (16 << 20) {
        return Err(Error::Config(
            "api.query_memory_limit must be at least 16MiB".into(),
        ));
    }
    if limits.max_rows == 0 || limits.timeout.is_zero() || raw.max_body_bytes < 1024 {
        return Err(Error::Config(
            "api.query_max_rows and api.query_timeout must be positive, api.max_body_bytes at least 1024"
                .into(),
        ));
    }
    Ok((tokens, limits, raw.max_body_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("65536").unwrap(), 65536);
        assert_eq!(parse_bytes("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_bytes("512 MiB").unwrap(), 512 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }
}
