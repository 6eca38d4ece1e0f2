//! "Send a test event": `POST /api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example`
//! publishes the event type's example payload to that one endpoint, as Svix does, so a
//! subscriber can see its receiver work before real events flow.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use dispatch::Publish;
use model::EventType;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::endpoints;
use super::messages::{MessageOut, idempotency_key};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidJson, ValidPath, Validate};
use crate::validate;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(send_example))
}

/// The event type Svix's portal sends to check an endpoint; its example is fixed.
const PING: &str = "svix.ping";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventExampleIn {
    /// An event type of the catalogue with an example payload, or `svix.ping`.
    #[schema(max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    event_type: String,
}

impl Validate for EventExampleIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        validate::name(&mut problems, &["body", "eventType"], &self.event_type, 256);
        problems
    }
}

/// The example payload of an event type: its schema's first `examples` entry (Svix keeps
/// schemas by version, `{"1": {...}}`), or `None` if it has none.
fn example_of(event_type: &EventType) -> Option<&Value> {
    let schemas = event_type.schemas.as_ref()?.as_object()?;
    let schema = schemas.get("1").or_else(|| schemas.values().next())?;
    schema.get("examples")?.as_array()?.first()
}

/// Send the example of an event type to this endpoint only, whatever its subscriptions
/// and filter: a message like any other (signed, retried, in the log).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path),
        ("idempotency-key" = Option<String>, Header, description = "Repeat a call safely")),
    request_body = EventExampleIn,
    responses((status = 200, body = MessageOut), (status = 404, body = crate::error::HttpErrorOut),
        (status = 409, body = crate::error::HttpErrorOut), (status = 422, body = crate::error::HttpValidationError)))]
async fn send_example(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<EventExampleIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let idempotency_key = idempotency_key(&headers)?;
    let (app, endpoint) = endpoints::load(&state, &app_id, &endpoint_id).await?;
    if endpoint.disabled {
        return Err(ApiError::Conflict {
            code: "endpoint_disabled",
            detail: "The endpoint is disabled; enable it to send it a test event.".to_owned(),
        });
    }
    let payload = if body.event_type == PING {
        json!({"success": true})
    } else {
        let event_type = state.store.get_event_type(&body.event_type).await?;
        let Some(event_type) = event_type else {
            return Err(ApiError::invalid(
                &["body", "eventType"],
                format!("no event type named {} in the catalogue", body.event_type),
            ));
        };
        let Some(example) = example_of(&event_type) else {
            return Err(ApiError::invalid(
                &["body", "eventType"],
                format!(
                    "the event type {} has no example payload (its schema's \"examples\")",
                    body.event_type
                ),
            ));
        };
        example.clone()
    };
    let ingested = state
        .dispatcher
        .ingest(Publish {
            idempotency_key,
            only: Some(endpoint.id),
            traceparent: super::messages::traceparent(&headers),
            ..Publish::event(app.id, body.event_type, Arc::from(payload.to_string()))
        })
        .await?;
    Ok((
        StatusCode::OK,
        Json(MessageOut::new(&ingested.message, true)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_schemas(schemas: Option<Value>) -> EventType {
        EventType {
            name: "order.created".into(),
            description: String::new(),
            archived: false,
            deprecated: false,
            feature_flag: None,
            group_name: None,
            schemas,
            enforce_schema: false,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn the_example_is_the_first_of_the_schema() {
        let table = [
            (None, None),
            (Some(json!({})), None),
            (Some(json!({"1": {"type": "object"}})), None),
            (Some(json!({"1": {"examples": []}})), None),
            (
                Some(json!({"1": {"examples": [{"a": 1}, {"a": 2}]}})),
                Some(json!({"a": 1})),
            ),
            (
                Some(json!({"2": {"examples": [{"b": 1}]}})),
                Some(json!({"b": 1})),
            ),
            (
                Some(json!({"2": {"examples": [{"b": 1}]}, "1": {"examples": [{"a": 1}]}})),
                Some(json!({"a": 1})),
            ),
            (Some(json!([1, 2])), None),
        ];
        for (schemas, want) in table {
            let et = with_schemas(schemas.clone());
            assert_eq!(example_of(&et), want.as_ref(), "{schemas:?}");
        }
    }
}
