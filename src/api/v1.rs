//! The investigation endpoints under `/api/v1` (see [`super::openapi`] for the contract).
//!
//! Listings are keyset-paginated on (time, row_key): a page asks for `limit + 1` rows
//! sorted on that key, and the cursor of the next page is the key of the page's last
//! row, so a walk returns every row exactly once even while rows are appended behind it.
//! The `raw` column (the redacted original event) is only returned on request.
//!
//! Every query runs on the API's query runtime under its time and memory limits
//! ([`ApiState::run`]).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{SchemaRef, TimestampMicrosecondType, UInt64Type};
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::{JsonArray, LineDelimited};
use datafusion::logical_expr::{Expr, ExprFunctionExt, SortExpr, col, lit};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ApiState;
use super::access::{RowCount, SqlText};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::scan::{self, Cursor, Order, TimeRange, and_all, pattern};
use crate::normalize::schema;
use crate::query;

/// Default and largest `limit` of a listing.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;
/// Evidence rows are searched within the alert's window widened by this much.
pub const EVIDENCE_MARGIN_US: i64 = 15 * 60 * 1_000_000;
/// Most evidence rows one alert answer carries.
pub const MAX_EVIDENCE: usize = 1_000;
/// Most values in each list of an accessor (actions, IPs, paths, …).
const MAX_LIST: usize = 100;
/// How times are written in JSON answers (the same as alerts and the CLI).
const TS_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

fn bad_params(e: QueryRejection) -> ApiError {
    ApiError::bad_request(format!("invalid query parameters: {}", e.body_text()))
}

/// Answer shape: JSON document or newline-delimited JSON rows.
fn wants_ndjson(format: Option<&str>, headers: &HeaderMap) -> ApiResult<bool> {
    match format {
        Some("ndjson") => Ok(true),
        Some("json") => Ok(false),
        Some(f) => Err(ApiError::bad_request(format!(
            "format={f:?}: expected json or ndjson"
        ))),
        None => Ok(headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("application/x-ndjson"))),
    }
}

/// Rows as a JSON array, or one JSON object per line.
fn rows_json(batch: &RecordBatch, ndjson: bool) -> std::result::Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let b = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_timestamp_tz_format(TS_FORMAT.into());
    let res = if ndjson {
        let mut w = b.build::<_, LineDelimited>(&mut buf);
        w.write(batch).and_then(|_| w.finish())
    } else {
        let mut w = b.build::<_, JsonArray>(&mut buf);
        w.write(batch).and_then(|_| w.finish())
    };
    res.map_err(|e| e.to_string())?;
    if !ndjson && buf.is_empty() {
        buf.extend_from_slice(b"[]");
    }
    Ok(buf)
}

fn json_response(body: Vec<u8>, ndjson: bool, rows: usize) -> Response {
    let ct = if ndjson {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    let mut resp = ([(header::CONTENT_TYPE, ct)], body).into_response();
    resp.extensions_mut().insert(RowCount(rows));
    resp
}

fn one_batch(schema: SchemaRef, batches: &[RecordBatch]) -> ApiResult<RecordBatch> {
    concat_batches(&schema, batches).map_err(|e| ApiError::internal(e.to_string()))
}

fn key_at(b: &RecordBatch, row: usize) -> Option<Cursor> {
    let time = b
        .column_by_name("time")?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    let key = b
        .column_by_name("row_key")?
        .as_primitive_opt::<UInt64Type>()?;
    Some(Cursor {
        time: time.value(row),
        row_key: key.value(row),
    })
}

/// Cuts a `limit + 1` result to `limit` rows and the cursor of the next page.
fn page(batch: RecordBatch, limit: usize) -> (RecordBatch, Option<Cursor>) {
    if batch.num_rows() <= limit {
        return (batch, None);
    }
    let page = batch.slice(0, limit);
    let next = key_at(&page, limit - 1);
    (page, next)
}

fn sort_keys(order: Order) -> Vec<SortExpr> {
    let asc = order == Order::Asc;
    vec![
        col("time").sort(asc, false),
        col("row_key").sort(asc, false),
    ]
}

/// Wraps rows of a page into `{"<key>": [...], "next_cursor": …}` or NDJSON with the
/// cursor in `X-Next-Cursor`.
fn page_response(
    key: &str,
    rows: Vec<u8>,
    n: usize,
    next: Option<Cursor>,
    ndjson: bool,
) -> Response {
    let next = next.map(|c| c.encode());
    let body = if ndjson {
        rows
    } else {
        let mut body = Vec::with_capacity(rows.len() + 64);
        body.extend_from_slice(format!("{{\"{key}\":").as_bytes());
        body.extend_from_slice(&rows);
        body.extend_from_slice(b",\"next_cursor\":");
        body.extend_from_slice(json!(next).to_string().as_bytes());
        body.push(b'}');
        body
    };
    let mut resp = json_response(body, ndjson, n);
    if let Some(c) = next.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert("x-next-cursor", c);
    }
    resp
}

// ---- events and timelines -------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventParams {
    actor: Option<String>,
    resource: Option<String>,
    namespace: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    source: Option<String>,
    secret_access: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    order: Option<String>,
    format: Option<String>,
    include_raw: Option<String>,
}

/// A validated events request.
struct EventQuery {
    filters: Vec<Expr>,
    sources: Vec<String>,
    range: TimeRange,
    limit: usize,
    order: Order,
    include_raw: bool,
    ndjson: bool,
}

impl EventQuery {
    fn from_params(p: &EventParams, headers: &HeaderMap) -> ApiResult<EventQuery> {
        let range = TimeRange::parse(p.from.as_deref(), p.to.as_deref())?;
        let order = Order::parse(p.order.as_deref())?;
        let mut filters = Vec::new();
        if let Some(a) = &p.actor {
            filters.push(pattern("actor", a));
        }
        if let Some(r) = &p.resource {
            filters.push(pattern("resource_path", r));
        }
        if let Some(n) = &p.namespace {
            filters.push(pattern("resource_namespace", n));
        }
        for (column, v) in [("action", &p.action), ("outcome", &p.outcome)] {
            if let Some(e) = v.as_deref().and_then(|v| scan::one_of(column, v)) {
                filters.push(e);
            }
        }
        let sources = scan::csv_list(p.source.as_deref());
        if let Some(e) = p.source.as_deref().and_then(|v| scan::one_of("source", v)) {
            filters.push(e);
        }
        if let Some(b) = scan::parse_bool("secret_access", p.secret_access.as_deref())? {
            filters.push(col("secret_access").eq(lit(b)));
        }
        filters.extend(range.expr("time"));
        if let Some(c) = &p.cursor {
            filters.push(Cursor::decode(c)?.after(order));
        }
        Ok(EventQuery {
            filters,
            sources,
            range,
            limit: scan::parse_limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?,
            order,
            include_raw: scan::parse_bool("include_raw", p.include_raw.as_deref())?
                .unwrap_or(false),
            ndjson: wants_ndjson(p.format.as_deref(), headers)?,
        })
    }
}

impl ApiState {
    /// Event rows matching `filters` in the partitions of `sources` × `range`, sorted on
    /// the page key, at most `limit` rows, without `raw` unless asked.
    async fn event_rows(
        &self,
        filters: Vec<Expr>,
        sources: Vec<String>,
        range: TimeRange,
        sort: Vec<SortExpr>,
        limit: usize,
        include_raw: bool,
    ) -> ApiResult<RecordBatch> {
        let st = self.clone();
        self.run(async move {
            let mut schema = schema::access_events();
            if !include_raw {
                let keep: Vec<_> = schema
                    .fields()
                    .iter()
                    .filter(|f| f.name() != "raw")
                    .map(|f| f.as_ref().clone())
                    .collect();
                schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(keep));
            }
            let paths = scan::event_partitions(st.root(), &sources, range);
            if paths.is_empty() {
                return Ok(RecordBatch::new_empty(schema));
            }
            let ctx = st.engine().context();
            let table = query::listing_table(ctx, &paths, schema::access_events())?;
            let mut df = ctx.read_table(table)?;
            if let Some(f) = and_all(filters) {
                df = df.filter(f)?;
            }
            df = df.sort(sort)?.limit(0, Some(limit))?;
            if !include_raw {
                df = df.drop_columns(&["raw"])?;
            }
            let batches = df.collect().await?;
            one_batch(schema, &batches)
        })
        .await
    }

    async fn events_page(&self, q: EventQuery) -> ApiResult<Response> {
        let batch = self
            .event_rows(
                q.filters,
                q.sources,
                q.range,
                sort_keys(q.order),
                q.limit + 1,
                q.include_raw,
            )
            .await?;
        let (batch, next) = page(batch, q.limit);
        let rows = rows_json(&batch, q.ndjson).map_err(ApiError::internal)?;
        Ok(page_response(
            "events",
            rows,
            batch.num_rows(),
            next,
            q.ndjson,
        ))
    }
}

/// `GET /api/v1/events`
pub async fn events(
    State(st): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = q.map_err(bad_params)?;
    st.events_page(EventQuery::from_params(&p, &headers)?).await
}

/// `GET /api/v1/actors/{actor}/timeline`: the events of one actor (exact name).
pub async fn timeline(
    State(st): State<ApiState>,
    Path(actor): Path<String>,
    headers: HeaderMap,
    q: Result<Query<EventParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = q.map_err(bad_params)?;
    if p.actor.is_some() {
        return Err(ApiError::bad_request(
            "the actor is in the path; `actor` is not a parameter here",
        ));
    }
    let mut q = EventQuery::from_params(&p, &headers)?;
    q.filters.insert(0, col("actor").eq(lit(actor)));
    st.events_page(q).await
}

// ---- who touched a resource ---------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessorParams {
    path: Option<String>,
    from: Option<String>,
    to: Option<String>,
    source: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/resources/accessors?path=…`: per actor, what it did to the resource.
pub async fn accessors(
    State(st): State<ApiState>,
    q: Result<Query<AccessorParams>, QueryRejection>,
) -> ApiResult<Response> {
    use datafusion::functions_aggregate::expr_fn::{array_agg, count, max, min};
    let Query(p) = q.map_err(bad_params)?;
    let Some(path) = p.path.clone().filter(|s| !s.is_empty()) else {
        return Err(ApiError::bad_request(
            "`path` is required (exact, `prefix/*`, or a glob with * and ?)",
        ));
    };
    let range = TimeRange::parse(p.from.as_deref(), p.to.as_deref())?;
    let limit = scan::parse_limit(p.limit.as_deref(), 1_000, MAX_LIMIT)?;
    let sources = scan::csv_list(p.source.as_deref());
    let mut filters = vec![pattern("resource_path", &path)];
    filters.extend(range.expr("time"));
    filters.extend(p.source.as_deref().and_then(|v| scan::one_of("source", v)));
    let st2 = st.clone();
    let (batch, truncated) = st
        .run(async move {
            let paths = scan::event_partitions(st2.root(), &sources, range);
            if paths.is_empty() {
                return Ok((None, false));
            }
            let ctx = st2.engine().context();
            let table = query::listing_table(ctx, &paths, schema::access_events())?;
            let distinct = |c: &str| -> datafusion::error::Result<Expr> {
                array_agg(col(c))
                    .distinct()
                    .filter(col(c).is_not_null())
                    .build()
                    .map(|e| e.alias(format!("{c}s")))
            };
            let df = ctx
                .read_table(table)?
                .filter(and_all(filters).expect("at least the path"))?
                .aggregate(
                    vec![col("actor")],
                    vec![
                        count(lit(1)).alias("count"),
                        count(lit(1))
                            .filter(col("outcome").eq(lit("denied")))
                            .build()?
                            .alias("denied"),
                        min(col("time")).alias("first_seen"),
                        max(col("time")).alias("last_seen"),
                        distinct("actor_type")?,
                        distinct("action")?,
                        distinct("outcome")?,
                        distinct("src_ip")?,
                        distinct("user_agent")?,
                        distinct("source")?,
                        distinct("resource_path")?,
                    ],
                )?
                .sort(vec![
                    col("count").sort(false, false),
                    col("actor").sort(true, false),
                ])?
                .limit(0, Some(limit + 1))?;
            let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            let b = one_batch(schema, &batches)?;
            let truncated = b.num_rows() > limit;
            Ok((Some(b.slice(0, b.num_rows().min(limit))), truncated))
        })
        .await?;
    let mut accessors: Vec<Value> = match &batch {
        Some(b) if b.num_rows() > 0 => {
            serde_json::from_slice(&rows_json(b, false).map_err(ApiError::internal)?)
                .map_err(|e| ApiError::internal(e.to_string()))?
        }
        _ => vec![],
    };
    for a in &mut accessors {
        if let Some(obj) = a.as_object_mut() {
            for (k, v) in obj.iter_mut() {
                if let Value::Array(items) = v {
                    items.sort_by_key(|x| x.to_string());
                    if items.len() > MAX_LIST {
                        items.truncate(MAX_LIST);
                        tracing::debug!(field = k.as_str(), "accessor list cut");
                    }
                }
            }
        }
    }
    let n = accessors.len();
    let body = json!({
        "path": path,
        "from": range.from.map(crate::normalize::format_time_us),
        "to": range.to.map(crate::normalize::format_time_us),
        "accessors": accessors,
        "truncated": truncated,
    });
    Ok(json_response(body.to_string().into_bytes(), false, n))
}

// ---- alerts -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertParams {
    from: Option<String>,
    to: Option<String>,
    severity: Option<String>,
    min_severity: Option<String>,
    rule_id: Option<String>,
    actor: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
    order: Option<String>,
    format: Option<String>,
}

const LEVELS: [&str; 5] = ["informational", "low", "medium", "high", "critical"];

/// `GET /api/v1/alerts`
pub async fn alerts(
    State(st): State<ApiState>,
    headers: HeaderMap,
    q: Result<Query<AlertParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = q.map_err(bad_params)?;
    let range = TimeRange::parse(p.from.as_deref(), p.to.as_deref())?;
    let order = Order::parse(p.order.as_deref())?;
    let limit = scan::parse_limit(p.limit.as_deref(), DEFAULT_LIMIT, MAX_LIMIT)?;
    let ndjson = wants_ndjson(p.format.as_deref(), &headers)?;
    let mut filters: Vec<Expr> = range.expr("time").into_iter().collect();
    for s in scan::csv_list(p.severity.as_deref()) {
        if !LEVELS.contains(&s.as_str()) {
            return Err(ApiError::bad_request(format!(
                "severity={s:?}: expected one of {}",
                LEVELS.join(", ")
            )));
        }
    }
    filters.extend(
        p.severity
            .as_deref()
            .and_then(|v| scan::one_of("severity", v)),
    );
    if let Some(m) = &p.min_severity {
        let Some(i) = LEVELS.iter().position(|l| l == m) else {
            return Err(ApiError::bad_request(format!(
                "min_severity={m:?}: expected one of {}",
                LEVELS.join(", ")
            )));
        };
        filters.extend(scan::one_of("severity", &LEVELS[i..].join(",")));
    }
    filters.extend(
        p.rule_id
            .as_deref()
            .and_then(|v| scan::one_of("rule_id", v)),
    );
    if let Some(a) = &p.actor {
        filters.push(pattern("actor", a));
    }
    if let Some(c) = &p.cursor {
        filters.push(Cursor::decode(c)?.after(order));
    }
    let batch = st
        .alert_rows(filters, range, sort_keys(order), limit + 1)
        .await?;
    let (batch, next) = page(batch, limit);
    let alerts = crate::siem::alerts_from_batch(&batch);
    let mut rows = Vec::new();
    if ndjson {
        for a in &alerts {
            serde_json::to_writer(&mut rows, a).map_err(|e| ApiError::internal(e.to_string()))?;
            rows.push(b'\n');
        }
    } else {
        serde_json::to_writer(&mut rows, &alerts).map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(page_response("alerts", rows, alerts.len(), next, ndjson))
}

impl ApiState {
    async fn alert_rows(
        &self,
        filters: Vec<Expr>,
        range: TimeRange,
        sort: Vec<SortExpr>,
        limit: usize,
    ) -> ApiResult<RecordBatch> {
        let st = self.clone();
        self.run(async move {
            let paths = scan::alert_partitions(st.root(), range);
            if paths.is_empty() {
                return Ok(RecordBatch::new_empty(schema::alerts()));
            }
            let ctx = st.engine().context();
            let table = query::listing_table(ctx, &paths, schema::alerts())?;
            let mut df = ctx.read_table(table)?;
            if let Some(f) = and_all(filters) {
                df = df.filter(f)?;
            }
            let batches = df.sort(sort)?.limit(0, Some(limit))?.collect().await?;
            one_batch(schema::alerts(), &batches)
        })
        .await
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertDetailParams {
    include_raw: Option<String>,
}

/// `GET /api/v1/alerts/{id}`: the alert and its evidence events.
pub async fn alert(
    State(st): State<ApiState>,
    Path(id): Path<String>,
    q: Result<Query<AlertDetailParams>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(p) = q.map_err(bad_params)?;
    let include_raw = scan::parse_bool("include_raw", p.include_raw.as_deref())?.unwrap_or(false);
    let found = st
        .alert_rows(
            vec![col("id").eq(lit(id.clone()))],
            TimeRange::default(),
            sort_keys(Order::Asc),
            1,
        )
        .await?;
    let Some(a) = crate::siem::alerts_from_batch(&found).into_iter().next() else {
        return Err(ApiError::not_found(format!("no alert {id:?}")));
    };
    let (evidence, truncated) = if a.event_ids.is_empty() {
        (RecordBatch::new_empty(schema::access_events()), false)
    } else {
        let range = TimeRange {
            from: Some(a.window_start.min(a.time) - EVIDENCE_MARGIN_US),
            to: Some(a.window_end.max(a.time) + EVIDENCE_MARGIN_US + 1),
        };
        let ids: Vec<Expr> = a.event_ids.iter().map(|e| lit(e.clone())).collect();
        let mut filters = vec![col("event_id").in_list(ids, false)];
        filters.extend(range.expr("time"));
        let b = st
            .event_rows(
                filters,
                vec![],
                range,
                sort_keys(Order::Asc),
                MAX_EVIDENCE + 1,
                include_raw,
            )
            .await?;
        let truncated = b.num_rows() > MAX_EVIDENCE;
        (b.slice(0, b.num_rows().min(MAX_EVIDENCE)), truncated)
    };
    let rows: Value =
        serde_json::from_slice(&rows_json(&evidence, false).map_err(ApiError::internal)?)
            .map_err(|e| ApiError::internal(e.to_string()))?;
    let seen: std::collections::HashSet<String> = rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("event_id").and_then(Value::as_str).map(String::from))
        .collect();
    let missing: Vec<&String> = a.event_ids.iter().filter(|e| !seen.contains(*e)).collect();
    let n = evidence.num_rows();
    let body = json!({
        "alert": a,
        "evidence": rows,
        "evidence_truncated": truncated,
        "missing_event_ids": if truncated { json!(null) } else { json!(missing) },
    });
    Ok(json_response(body.to_string().into_bytes(), false, n + 1))
}

// ---- read-only SQL ------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
    limit: Option<usize>,
}

/// `POST /api/v1/query` (admin): one read-only SQL statement over `events`, `alerts` and
/// `quarantine`, under the memory, time and row limits.
pub async fn sql(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than {} bytes",
                    st.max_body_bytes()
                ),
            )
            .into_response();
        }
        Err(e) => return ApiError::bad_request(e.body_text()).into_response(),
    };
    let req: SqlRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::bad_request(format!(
                "expected {{\"sql\": \"…\", \"limit\": N}}: {e}"
            ))
            .into_response();
        }
    };
    let sql_text = req.sql.clone();
    tracing::debug!(who = caller.name, "sql query");
    let mut resp = match run_sql(&st, req, &headers).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    resp.extensions_mut().insert(SqlText(sql_text));
    resp
}

async fn run_sql(st: &ApiState, req: SqlRequest, headers: &HeaderMap) -> ApiResult<Response> {
    let ndjson = wants_ndjson(None, headers)?;
    let max = st.limits().max_rows;
    let cap = match req.limit {
        Some(0) => return Err(ApiError::bad_request("limit must be at least 1")),
        Some(n) => n.min(max),
        None => max,
    };
    let st2 = st.clone();
    let sql = req.sql;
    let started = std::time::Instant::now();
    let (schema, batches, truncated) = st
        .run(async move {
            let df = st2.engine().plan_read_only(&sql, query::SQL_TABLES).await?;
            let schema: SchemaRef = std::sync::Arc::new(df.schema().as_arrow().clone());
            let (batches, truncated) = query::collect_capped(df, cap).await?;
            Ok((schema, batches, truncated))
        })
        .await?;
    let out_schema = batches.first().map(|b| b.schema()).unwrap_or(schema);
    let batch = one_batch(out_schema.clone(), &batches)?;
    let rows = rows_json(&batch, ndjson).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "query_failed",
            format!("a result column cannot be written as JSON: {e}"),
        )
    })?;
    let n = batch.num_rows();
    if ndjson {
        let mut resp = json_response(rows, true, n);
        resp.headers_mut().insert(
            "x-truncated",
            HeaderValue::from_static(if truncated { "true" } else { "false" }),
        );
        return Ok(resp);
    }
    let columns: Vec<Value> = out_schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut body = Vec::with_capacity(rows.len() + 256);
    body.extend_from_slice(b"{\"columns\":");
    body.extend_from_slice(json!(columns).to_string().as_bytes());
    body.extend_from_slice(b",\"rows\":");
    body.extend_from_slice(&rows);
    body.extend_from_slice(
        format!(
            ",\"row_count\":{n},\"truncated\":{truncated},\"limit\":{cap},\"elapsed_ms\":{}}}",
            started.elapsed().as_millis()
        )
        .as_bytes(),
    );
    Ok(json_response(body, false, n))
}
