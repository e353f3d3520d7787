//! The OpenAPI 3.1 description served at `/api/v1/openapi.json`, written by hand: the
//! API is small, and a hand-written document keeps the contract (and its prose) in one
//! reviewable place without a derive-macro dependency. A test checks that every route of
//! the router is described.

use serde_json::{Value, json};

fn param(name: &str, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": desc, "schema": {"type": "string"}})
}

fn common_event_params() -> Vec<Value> {
    vec![
        param(
            "resource",
            "resource_path: exact, `prefix/*`, or a glob with `*` (any run) and `?` (one character)",
        ),
        param("namespace", "resource_namespace (exact or glob)"),
        param("action", "comma-separated actions (read, list, create, …)"),
        param(
            "outcome",
            "comma-separated outcomes (success, denied, failure, unknown)",
        ),
        param(
            "source",
            "comma-separated sources (kubernetes, vault, openbao)",
        ),
        param("secret_access", "true or false"),
        param(
            "from",
            "inclusive start: RFC 3339, a date, `now`, or relative like -24h",
        ),
        param("to", "exclusive end, same forms as `from`"),
        json!({"name": "limit", "in": "query", "description": "rows per page (default 100, at most 10000)", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}}),
        param("cursor", "next_cursor of the previous page"),
        json!({"name": "order", "in": "query", "description": "by (time, row_key)", "schema": {"type": "string", "enum": ["asc", "desc"], "default": "asc"}}),
        json!({"name": "format", "in": "query", "description": "json (default) or ndjson (also chosen by Accept: application/x-ndjson)", "schema": {"type": "string", "enum": ["json", "ndjson"]}}),
        json!({"name": "include_raw", "in": "query", "description": "also return the redacted original event (`raw`)", "schema": {"type": "boolean", "default": false}}),
    ]
}

fn errors(codes: &[&str]) -> Value {
    let mut m = serde_json::Map::new();
    for c in codes {
        let desc = match *c {
            "400" => {
                "invalid parameters or SQL (`bad_request`, `invalid_cursor`, `invalid_query`, `query_refused`, `query_failed`)"
            }
            "401" => {
                "missing or invalid bearer token (`unauthorized`), with WWW-Authenticate: Bearer"
            }
            "403" => "the token's role does not allow this endpoint (`forbidden`)",
            "404" => "not found (`not_found`)",
            "413" => "request body too large (`payload_too_large`)",
            "422" => "the query needs more memory than allowed (`resources_exhausted`)",
            "504" => "the query took longer than the time limit (`query_timeout`)",
            _ => "error",
        };
        m.insert(
            c.to_string(),
            json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
        );
    }
    Value::Object(m)
}

fn with_errors(ok: Value, codes: &[&str]) -> Value {
    let mut r = errors(codes);
    r["200"] = ok;
    r
}

fn page_of(key: &str, item: &str) -> Value {
    json!({
        "description": format!("a page of {key}; `next_cursor` is null on the last page (NDJSON: one object per line, the cursor in X-Next-Cursor)"),
        "headers": {"X-Next-Cursor": {"schema": {"type": "string"}}},
        "content": {
            "application/json": {"schema": {"type": "object", "required": [key, "next_cursor"], "properties": {
                key: {"type": "array", "items": {"$ref": format!("#/components/schemas/{item}")}},
                "next_cursor": {"type": ["string", "null"]}
            }}},
            "application/x-ndjson": {"schema": {"$ref": format!("#/components/schemas/{item}")}}
        }
    })
}

/// The document.
pub fn document() -> Value {
    let mut event_params = vec![param("actor", "actor (exact or glob)")];
    event_params.extend(common_event_params());
    let mut timeline_params = vec![json!({"name": "actor", "in": "path", "required": true,
        "description": "the actor, percent-encoded (e.g. system:serviceaccount:prod:api)", "schema": {"type": "string"}})];
    timeline_params.extend(common_event_params());
    let reader = json!([{"bearer": []}]);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "auditwatch API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Investigate Kubernetes and Vault/OpenBao access events and the alerts raised on them. Every /api/v1 endpoint except this document needs a bearer token; POST /api/v1/query needs the admin role. Every call is written to the access log. Secret values are redacted before storage; `raw` is returned only with include_raw=true.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "a token whose SHA-256 is configured in [[api.tokens]] or api.tokens_file, role reader or admin"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Event": {"type": "object", "description": "a row of `access_events` (see schemas/access_events.md); times are RFC 3339 UTC; `raw` only with include_raw=true", "additionalProperties": true, "properties": {
                    "time": {"type": "string", "format": "date-time"}, "source": {"type": "string"}, "event_id": {"type": "string"}, "row_key": {"type": "integer"},
                    "action": {"type": "string"}, "verb": {"type": "string"}, "actor": {"type": "string"}, "actor_type": {"type": "string"},
                    "resource_path": {"type": ["string", "null"]}, "resource_namespace": {"type": ["string", "null"]}, "outcome": {"type": "string"},
                    "src_ip": {"type": ["string", "null"]}, "secret_access": {"type": "boolean"}, "raw": {"type": "string"}}},
                "Alert": {"type": "object", "additionalProperties": true, "properties": {
                    "id": {"type": "string"}, "time": {"type": "string", "format": "date-time"}, "rule_id": {"type": "string"}, "title": {"type": "string"},
                    "severity": {"type": "string", "enum": ["informational", "low", "medium", "high", "critical"]}, "detector": {"type": "string"},
                    "actor": {"type": ["string", "null"]}, "source": {"type": ["string", "null"]}, "resources": {"type": "array", "items": {"type": "string"}},
                    "window_start": {"type": "string", "format": "date-time"}, "window_end": {"type": "string", "format": "date-time"},
                    "event_ids": {"type": "array", "items": {"type": "string"}}, "tags": {"type": "array", "items": {"type": "string"}}, "explanation": {}}},
                "Accessor": {"type": "object", "properties": {
                    "actor": {"type": "string"}, "count": {"type": "integer"}, "denied": {"type": "integer"},
                    "first_seen": {"type": "string", "format": "date-time"}, "last_seen": {"type": "string", "format": "date-time"},
                    "actor_types": {"type": "array", "items": {"type": "string"}}, "actions": {"type": "array", "items": {"type": "string"}},
                    "outcomes": {"type": "array", "items": {"type": "string"}}, "src_ips": {"type": "array", "items": {"type": "string"}},
                    "user_agents": {"type": "array", "items": {"type": "string"}}, "sources": {"type": "array", "items": {"type": "string"}},
                    "resource_paths": {"type": "array", "items": {"type": "string"}, "description": "the paths a glob matched (at most 100 per list)"}}},
            }
        },
        "paths": {
            "/api/v1/events": {"get": {
                "summary": "Access events, filtered, keyset-paginated on (time, row_key)",
                "security": reader, "parameters": event_params,
                "responses": with_errors(page_of("events", "Event"), &["400", "401", "403", "422", "504"]),
            }},
            "/api/v1/actors/{actor}/timeline": {"get": {
                "summary": "Everything one actor did, in time order",
                "security": reader, "parameters": timeline_params,
                "responses": with_errors(page_of("events", "Event"), &["400", "401", "403", "422", "504"]),
            }},
            "/api/v1/resources/accessors": {"get": {
                "summary": "Who touched a resource: per actor count, denials, first/last seen, actions, outcomes, source IPs",
                "security": reader,
                "parameters": [
                    {"name": "path", "in": "query", "required": true, "description": "resource_path: exact, `prefix/*` or glob", "schema": {"type": "string"}},
                    param("from", "inclusive start (RFC 3339, date, now, -24h)"), param("to", "exclusive end"),
                    param("source", "comma-separated sources"),
                    {"name": "limit", "in": "query", "description": "actors (default 1000, at most 10000), most active first", "schema": {"type": "integer", "default": 1000}},
                ],
                "responses": with_errors(json!({"description": "accessors, most active first",
                    "content": {"application/json": {"schema": {"type": "object", "properties": {
                        "path": {"type": "string"}, "from": {"type": ["string", "null"]}, "to": {"type": ["string", "null"]},
                        "accessors": {"type": "array", "items": {"$ref": "#/components/schemas/Accessor"}}, "truncated": {"type": "boolean"}}}}}}),
                    &["400", "401", "403", "422", "504"]),
            }},
            "/api/v1/alerts": {"get": {
                "summary": "Alerts, filtered, keyset-paginated on (time, row_key)",
                "security": reader,
                "parameters": [
                    param("from", "inclusive start of the alert time"), param("to", "exclusive end"),
                    param("severity", "comma-separated severities"), param("min_severity", "this severity and above"),
                    param("rule_id", "comma-separated rule ids"), param("actor", "actor (exact or glob)"),
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100, "maximum": 10000}},
                    param("cursor", "next_cursor of the previous page"),
                    {"name": "order", "in": "query", "schema": {"type": "string", "enum": ["asc", "desc"]}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "ndjson"]}},
                ],
                "responses": with_errors(page_of("alerts", "Alert"), &["400", "401", "403", "422", "504"]),
            }},
            "/api/v1/alerts/{id}": {"get": {
                "summary": "One alert with its evidence events (searched within its window ± 15 min; at most 1000)",
                "security": reader,
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "include_raw", "in": "query", "schema": {"type": "boolean", "default": false}},
                ],
                "responses": with_errors(json!({"description": "the alert and its evidence", "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "alert": {"$ref": "#/components/schemas/Alert"},
                    "evidence": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
                    "evidence_truncated": {"type": "boolean"},
                    "missing_event_ids": {"type": ["array", "null"], "items": {"type": "string"}, "description": "event ids of the alert not found in the store"}}}}}}),
                    &["400", "401", "403", "404", "422", "504"]),
            }},
            "/api/v1/query": {"post": {
                "summary": "Read-only SQL over events, alerts and quarantine (admin)",
                "description": "One SELECT (or EXPLAIN) statement. DDL, DML, COPY, SET, table functions and tables other than events, alerts, quarantine and information_schema are refused. Memory, time and row limits apply; `truncated` says whether rows were cut at the limit.",
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["sql"], "additionalProperties": false, "properties": {
                    "sql": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "description": "rows at most (capped by the server's row limit, default 100000)"}}}}}},
                "responses": with_errors(json!({"description": "the result (NDJSON with Accept: application/x-ndjson, X-Truncated header)", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "columns": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "type": {"type": "string"}}}},
                        "rows": {"type": "array", "items": {"type": "object"}},
                        "row_count": {"type": "integer"}, "truncated": {"type": "boolean"}, "limit": {"type": "integer"}, "elapsed_ms": {"type": "integer"}}}},
                    "application/x-ndjson": {"schema": {"type": "object"}}}}),
                    &["400", "401", "403", "413", "422", "504"]),
            }},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}}},
            "/healthz": {"get": {"summary": "The process is up", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Ready to serve (pipeline connected, or store readable)", "security": [], "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "text exposition format"}}}},
        }
    })
}

/// `GET /api/v1/openapi.json`
pub async fn serve() -> axum::Json<Value> {
    static DOC: std::sync::LazyLock<Value> = std::sync::LazyLock::new(document);
    axum::Json(DOC.clone())
}
