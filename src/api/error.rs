//! The API's error answer: an HTTP status and `{"error": {"code": "...", "message": "..."}}`.
//! Codes are stable identifiers clients can branch on; messages are for people. A
//! message never echoes a token or an Authorization header.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The error code, kept in the response extensions for the access log.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `WWW-Authenticate` value for 401 answers.
    pub challenge: Option<&'static str>,
}

pub type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            challenge: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unauthorized(message: impl Into<String>, challenge: &'static str) -> Self {
        ApiError {
            challenge: Some(challenge),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn timeout(limit: std::time::Duration) -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "query_timeout",
            format!(
                "the query did not finish within {} and was cancelled",
                humantime::format_duration(limit)
            ),
        )
    }
}

impl From<crate::error::Error> for ApiError {
    fn from(e: crate::error::Error) -> Self {
        use crate::error::Error;
        match e {
            Error::QueryRefused(m) => Self::new(StatusCode::BAD_REQUEST, "query_refused", m),
            Error::Query(e) => from_datafusion(e),
            other => {
                tracing::error!(error = %other, "api request failed");
                Self::internal("the request failed on the server; see its log")
            }
        }
    }
}

impl From<datafusion::error::DataFusionError> for ApiError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        from_datafusion(e)
    }
}

/// Classifies a DataFusion error: the user's SQL (400), a resource limit (422), or ours.
fn from_datafusion(e: datafusion::error::DataFusionError) -> ApiError {
    use datafusion::error::DataFusionError as D;
    match e.find_root() {
        D::ResourcesExhausted(m) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "resources_exhausted",
            format!("the query needs more memory than the API allows: {m}"),
        ),
        D::SQL(..) | D::Plan(_) | D::SchemaError(..) | D::NotImplemented(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string())
        }
        D::Execution(_) | D::ArrowError(..) => {
            ApiError::new(StatusCode::BAD_REQUEST, "query_failed", e.to_string())
        }
        _ => {
            tracing::error!(error = %e, "api query failed");
            ApiError::internal("the query failed on the server; see its log")
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(c) = self.challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}
