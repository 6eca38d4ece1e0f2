//! `ApiError`: every failure a handler returns, rendered in Svix's shapes —
//! `{"code", "detail"}`, and for 422 `{"detail": [{"loc", "msg", "type"}]}`.
//! Server errors carry their cause in a response extension; `log_server_error` logs it.

use std::sync::Arc;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use store::StoreError;
use utoipa::ToSchema;

/// The body of every error but 422.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HttpErrorOut {
    pub(crate) code: String,
    pub(crate) detail: String,
}

/// The body of a 422.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HttpValidationError {
    pub(crate) detail: Vec<ValidationErrorItem>,
}

/// One invalid input: where (`["body", "url"]`), what, and its kind.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub(crate) struct ValidationErrorItem {
    pub(crate) loc: Vec<String>,
    pub(crate) msg: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
}

impl ValidationErrorItem {
    pub(crate) fn new(loc: &[&str], msg: impl Into<String>) -> Self {
        Self {
            loc: loc.iter().map(|s| (*s).to_owned()).collect(),
            msg: msg.into(),
            kind: "value_error".to_owned(),
        }
    }
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest {
        code: &'static str,
        detail: String,
    },
    Unauthorized,
    /// Authenticated, but this token may not do this.
    Forbidden(String),
    NotFound,
    Conflict {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge(String),
    /// The client's `If-Match` names a revision that is no longer current.
    PreconditionFailed,
    Validation(Vec<ValidationErrorItem>),
    /// Herald itself failed; the cause is logged, the client gets a generic detail.
    Server(Arc<dyn std::error::Error + Send + Sync>),
    /// The store has no room: nothing was stored.
    StorageFull(Arc<dyn std::error::Error + Send + Sync>),
    /// The store cannot be reached now: nothing was stored; try again.
    Unavailable(Arc<dyn std::error::Error + Send + Sync>),
}

/// Seconds a client is asked to wait before trying again when the store is unavailable.
const RETRY_AFTER_SECONDS: &str = "5";

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub(crate) fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        Self::Validation(vec![ValidationErrorItem::new(loc, msg)])
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            StoreError::Changed => Self::Conflict {
                code: "conflict",
                detail: "It was changed by another request meanwhile; read it again and retry."
                    .to_owned(),
            },
            StoreError::Conflict(detail) => Self::Conflict {
                code: "conflict",
                detail,
            },
            StoreError::StorageFull(source) => Self::StorageFull(source),
            StoreError::Unavailable(source) => Self::Unavailable(source),
            StoreError::Backend(source) => Self::Server(source),
        }
    }
}

/// A server error's cause, carried from `into_response` to `log_server_errors`.
#[derive(Clone)]
struct ServerErrorCause(Arc<dyn std::error::Error + Send + Sync>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match self {
            Self::Validation(items) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(HttpValidationError { detail: items }),
                )
                    .into_response();
            }
            Self::BadRequest { code, detail } => (StatusCode::BAD_REQUEST, code, detail),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "Incorrect authentication credentials.".to_owned(),
            ),
            Self::Forbidden(detail) => (StatusCode::FORBIDDEN, "forbidden", detail),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not_found",
                "Entity not found".to_owned(),
            ),
            Self::Conflict { code, detail } => (StatusCode::CONFLICT, code, detail),
            Self::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "The endpoint was changed since the revision named in If-Match: read it again \
                 (its ETag) and retry."
                    .to_owned(),
            ),
            Self::PayloadTooLarge(detail) => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", detail)
            }
            Self::Server(cause) => {
                return server_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "Herald could not complete the request: its storage failed. Nothing was \
                     stored.",
                    cause,
                );
            }
            Self::StorageFull(cause) => {
                return server_error(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "storage_full",
                    "Herald could not store the request: its storage is full (the disk, or the \
                     configured max_store_size). Nothing was stored.",
                    cause,
                );
            }
            Self::Unavailable(cause) => {
                let mut response = server_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "Herald could not reach its storage. Nothing was stored; try again shortly.",
                    cause,
                );
                response.headers_mut().insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
                );
                return response;
            }
        };
        (
            status,
            Json(HttpErrorOut {
                code: code.to_owned(),
                detail,
            }),
        )
            .into_response()
    }
}

/// A 5xx in Svix's shape, carrying its cause for `log_server_error`.
fn server_error(
    status: StatusCode,
    code: &str,
    detail: &str,
    cause: Arc<dyn std::error::Error + Send + Sync>,
) -> Response {
    let mut response = (
        status,
        Json(HttpErrorOut {
            code: code.to_owned(),
            detail: detail.to_owned(),
        }),
    )
        .into_response();
    response.extensions_mut().insert(ServerErrorCause(cause));
    response
}

/// Logs the cause of every 5xx this API answers.
pub(crate) fn log_server_error(method: &http::Method, path: &str, response: &Response) {
    if let Some(ServerErrorCause(cause)) = response.extensions().get::<ServerErrorCause>() {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        tracing::error!(%method, path, error = %chain, "request failed");
    }
}

pub(crate) async fn not_found_fallback() -> ApiError {
    ApiError::NotFound
}

pub(crate) async fn method_not_allowed_fallback() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(HttpErrorOut {
            code: "method_not_allowed".to_owned(),
            detail: "This method is not allowed on this path.".to_owned(),
        }),
    )
        .into_response()
}
