//! Extractors that answer bad input in Svix's error shapes: `ValidJson` (body, with
//! the path of the bad field), `ValidQuery` (query string, repeated keys allowed) and
//! `ValidPath` (path parameters).

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::StatusCode;
use http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ValidationErrorItem};

/// Room for the message envelope around a payload of the maximum size.
pub(crate) const ENVELOPE_SLACK: usize = 64 * 1024;

/// Checks that need more than types: patterns, lengths, ranges. Returns every problem.
pub(crate) trait Validate {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        Vec::new()
    }
}

/// A JSON body, deserialized and validated.
pub(crate) struct ValidJson<T>(pub(crate) T);

impl<S, T> FromRequest<S> for ValidJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge(
                        "The request body is larger than the configured limit.".to_owned(),
                    )
                } else {
                    ApiError::BadRequest {
                        code: "generic_error",
                        detail: rejection.body_text(),
                    }
                }
            })?;
        let value = parse_json::<T>(&bytes)?;
        let problems = value.validate();
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        Ok(Self(value))
    }
}

/// Deserializes JSON. On failure, parses again tracking the path, to name the bad field
/// in the error (the fast path pays nothing for that).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut de);
    let value = result.map_err(|err| {
        let inner = err.inner();
        let mut loc = vec!["body".to_owned()];
        let path = err.path().to_string();
        if path != "." {
            loc.extend(path.split('.').map(str::to_owned));
        }
        let kind = if inner.is_syntax() || inner.is_eof() {
            "value_error.jsondecode"
        } else {
            "type_error"
        };
        ApiError::Validation(vec![ValidationErrorItem {
            loc,
            msg: inner.to_string(),
            kind: kind.to_owned(),
        }])
    })?;
    de.end().map_err(|err| {
        ApiError::Validation(vec![ValidationErrorItem {
            loc: vec!["body".to_owned()],
            msg: err.to_string(),
            kind: "value_error.jsondecode".to_owned(),
        }])
    })?;
    Ok(value)
}

/// A query string, deserialized (repeated keys fill lists).
pub(crate) struct ValidQuery<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ValidQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Validate,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let value: T = serde_html_form::from_str(query)
            .map_err(|err| ApiError::invalid(&["query"], err.to_string()))?;
        let problems = value.validate();
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        Ok(Self(value))
    }
}

/// Path parameters. One that cannot be read (e.g. not UTF-8 once percent-decoded) is a 422
/// at `path`, like any other bad input, rather than axum's plain-text 400.
pub(crate) struct ValidPath<T>(pub(crate) T);

impl<S, T> FromRequestParts<S> for ValidPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::invalid(&["path"], rejection.body_text())),
        }
    }
}
