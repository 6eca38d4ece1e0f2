//! Messages (events): `/api/v1/app/{app_id}/msg`. Publishing stores the message and its
//! deliveries durably before answering 202.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use dispatch::Publish;
use model::{Application, EntityRef, Message};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use store::{MessageFilter, Order, StoreError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications::{self, ApplicationIn};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidJson, ValidPath, ValidQuery, Validate};
use crate::list::{ListResponse, paging};
use crate::validate;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_messages, create_message))
        .routes(routes!(get_message))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageIn {
    /// The event type, e.g. `order.created`.
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    event_type: String,
    /// The JSON object delivered to endpoints, byte for byte.
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    /// Your id for this event; unique per application.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    event_id: Option<String>,
    /// Channels (1 to 5); endpoints that name channels receive only messages in one of them.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 5)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    #[schema(min_items = 1, max_items = 5)]
    tags: Option<Vec<String>>,
    /// Herald extension: the party that caused the event; endpoints whose `party` is the
    /// same do not receive it.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    origin: Option<String>,
    /// Herald extension: the entity this message is about (e.g. a case's guid). Herald
    /// keeps the last payload per entity as its snapshot; endpoints can filter on
    /// `previous.…`, test `$changed`, and receive diffs.
    #[serde(default)]
    entity_id: Option<String>,
    /// Herald extension: the entity's type; the same `entityId` in two types is two
    /// entities.
    #[serde(default)]
    entity_type: Option<String>,
    /// Herald extension: the entity is gone; its snapshot is dropped after this message.
    #[serde(default)]
    entity_deleted: Option<bool>,
    /// Creates the application when the path names one that does not exist.
    #[serde(default)]
    application: Option<ApplicationIn>,
    /// Days to keep the payload, 5 to 90: after them it is expunged (as by
    /// expunge-content) once no delivery of the message is pending. Herald's retention
    /// (`--retention`) removes the whole message when it comes first.
    #[serde(default)]
    #[schema(minimum = 5, maximum = 90)]
    payload_retention_period: Option<i64>,
}

impl Validate for MessageIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        validate::name(&mut problems, &["body", "eventType"], &self.event_type, 256);
        if !self.payload.get().trim_start().starts_with('{') {
            problems.push(ValidationErrorItem::new(
                &["body", "payload"],
                "must be a JSON object",
            ));
        } else {
            validate::readable_json(&mut problems, &["body", "payload"], self.payload.get());
        }
        if let Some(event_id) = &self.event_id {
            validate::name(&mut problems, &["body", "eventId"], event_id, 256);
        }
        if let Some(channels) = &self.channels {
            validate::name_list(&mut problems, &["body", "channels"], channels, (1, 5), 128);
        }
        if let Some(tags) = &self.tags {
            validate::name_list(&mut problems, &["body", "tags"], tags, (1, 5), 128);
        }
        if let Some(origin) = &self.origin {
            validate::name(&mut problems, &["body", "origin"], origin, 256);
        }
        if let Some(entity_id) = &self.entity_id {
            validate::non_empty(&mut problems, &["body", "entityId"], entity_id, 256);
        }
        if let Some(entity_type) = &self.entity_type {
            validate::name(&mut problems, &["body", "entityType"], entity_type, 256);
        }
        if let Some(days) = self.payload_retention_period
            && !(5..=90).contains(&days)
        {
            problems.push(ValidationErrorItem::new(
                &["body", "payloadRetentionPeriod"],
                format!("must be from 5 to 90 days, not {days}"),
            ));
        }
        if self.entity_id.is_none() {
            for (field, given) in [
                ("entityType", self.entity_type.is_some()),
                ("entityDeleted", self.entity_deleted.is_some()),
            ] {
                if given {
                    problems.push(ValidationErrorItem::new(
                        &["body", field],
                        "applies to a message about an entity: give `entityId` too",
                    ));
                }
            }
        }
        if let Some(app) = &self.application {
            app.check(&mut problems, "application");
        }
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageOut {
    id: String,
    event_type: String,
    #[schema(value_type = Object)]
    payload: Box<RawValue>,
    event_id: Option<String>,
    channels: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entity_type: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    entity_deleted: bool,
    #[serde(serialize_with = "crate::time::serialize")]
    timestamp: DateTime<Utc>,
}

impl MessageOut {
    /// The message, with its payload only when `with_content` (else `{}`, as Svix does).
    pub(crate) fn new(message: &Message, with_content: bool) -> Self {
        let payload = if with_content {
            RawValue::from_string(message.payload.to_string()).ok()
        } else {
            None
        };
        Self {
            id: message.id.to_string(),
            event_type: message.event_type.clone(),
            payload: payload.unwrap_or_else(empty_object),
            event_id: message.event_id.clone(),
            channels: message.channels.clone(),
            tags: message.tags.clone(),
            origin: message.origin.clone(),
            entity_id: message.entity.as_ref().map(|e| e.id.clone()),
            entity_type: message.entity.as_ref().and_then(|e| e.entity_type.clone()),
            entity_deleted: message.entity.as_ref().is_some_and(|e| e.deleted),
            timestamp: message.created_at,
        }
    }
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".to_owned()).expect("`{}` is JSON")
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ContentQuery {
    /// Include the payload in the answer (default true).
    #[serde(default = "super::default_true")]
    with_content: bool,
}

impl Validate for ContentQuery {}

/// `event_types` as the SDKs send it: repeated, or one comma-separated value.
pub(crate) fn split_event_types(values: &[String]) -> Option<Vec<String>> {
    let types: Vec<String> = values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    (!types.is_empty()).then_some(types)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many items to return (1 to 250, default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// The `iterator` of the previous page; prefix `-` to page backwards.
    iterator: Option<String>,
    /// Only messages in this channel.
    channel: Option<String>,
    /// Only messages with this tag.
    tag: Option<String>,
    /// Only these event types (repeat the parameter or separate with commas).
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    after: Option<DateTime<Utc>>,
    /// Include payloads (default true).
    #[serde(default = "super::default_true")]
    with_content: bool,
}

impl Validate for ListQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        paging(self.limit, &self.iterator).problems()
    }
}

/// The application of a publish: the one named, or a new one from `application`.
pub(crate) async fn app_for_publish(
    state: &AppState,
    app_id: &str,
    inline: Option<ApplicationIn>,
) -> ApiResult<Application> {
    if let Some(app) = state.store.get_app(app_id).await? {
        return Ok(app);
    }
    let Some(mut inline) = inline else {
        return Err(ApiError::NotFound);
    };
    if inline.uid.is_none() && !model::AppId::looks_like(app_id) {
        inline.uid = Some(app_id.to_owned());
    }
    match state
        .store
        .create_app(inline.into_application(state.clock.now()))
        .await
    {
        Ok(app) => Ok(app),
        // Created concurrently by another publish: use that one.
        Err(StoreError::Conflict(_)) => applications::load(state, app_id).await,
        Err(err) => Err(err.into()),
    }
}

/// List messages, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = String, Path), ListQuery),
    responses((status = 200, body = ListResponse<MessageOut>)))]
async fn list_messages(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<MessageOut>>> {
    let app = applications::load(&state, &app_id).await?;
    let (page, back) = paging(query.limit, &query.iterator).page(Order::Descending);
    let filter = MessageFilter {
        event_types: split_event_types(&query.event_types),
        channel: query.channel,
        tag: query.tag,
        before: query.before,
        after: query.after,
    };
    let rows = state.store.list_messages(&app.id, &filter, &page).await?;
    let with_content = query.with_content;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |m| m.id.to_string(),
        |m| MessageOut::new(&m, with_content),
    )))
}

/// Publish a message. A 202 means it is stored durably with one delivery per matching
/// endpoint. An `idempotency-key` header makes retries of the same call return the
/// first message instead of creating another.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg", tag = "Message",
    params(("app_id" = String, Path), ContentQuery,
        ("idempotency-key" = Option<String>, Header, description = "Repeat a call safely"),
        ("traceparent" = Option<String>, Header, description = "W3C trace context: the publish and its attempts continue this trace")),
    request_body = MessageIn,
    responses((status = 202, body = MessageOut), (status = 404, body = crate::error::HttpErrorOut),
        (status = 409, body = crate::error::HttpErrorOut), (status = 413, body = crate::error::HttpErrorOut),
        (status = 422, body = crate::error::HttpValidationError)))]
async fn create_message(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<ContentQuery>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<MessageIn>,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let limit = state.config.max_payload_bytes;
    if body.payload.get().len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "The payload is {} bytes; the limit is {limit} bytes.",
            body.payload.get().len()
        )));
    }
    let idempotency_key = idempotency_key(&headers)?;
    state
        .contracts
        .check(&*state.store, &body.event_type, body.payload.get())
        .await?;
    let app = app_for_publish(&state, &app_id, body.application).await?;
    let ingested = state
        .dispatcher
        .ingest(Publish {
            app_id: app.id,
            event_type: body.event_type,
            payload: Arc::from(body.payload.get()),
            event_id: body.event_id,
            channels: body.channels,
            tags: body.tags,
            origin: body.origin,
            entity: body.entity_id.map(|id| EntityRef {
                entity_type: body.entity_type,
                id,
                deleted: body.entity_deleted.unwrap_or(false),
            }),
            idempotency_key,
            only: None,
            traceparent: traceparent(&headers),
            payload_retention: body
                .payload_retention_period
                .map(|days| std::time::Duration::from_secs(days.unsigned_abs() * 86_400)),
        })
        .await
        .map_err(|err| match err {
            StoreError::Conflict(_) => ApiError::Conflict {
                code: "conflict",
                detail: "A message with this eventId already exists in this application".to_owned(),
            },
            other => other.into(),
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageOut::new(&ingested.message, query.with_content)),
    ))
}

/// The W3C `traceparent` header, if given, for the publish to continue. One that is not
/// valid trace context is ignored, as the W3C recommendation says (`dispatch` parses it).
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    (value.len() <= 128).then(|| value.to_owned())
}

/// The `idempotency-key` header, if given: 1 to 256 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => match value.to_str() {
            Ok(key) if !key.is_empty() && key.len() <= 256 => Ok(Some(key.to_owned())),
            _ => Err(ApiError::invalid(
                &["header", "idempotency-key"],
                "must be 1 to 256 visible ASCII characters",
            )),
        },
    }
}

/// Get a message by id or eventId.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}", tag = "Message",
    params(("app_id" = String, Path), ("msg_id" = String, Path, description = "The message's id or eventId"), ContentQuery),
    responses((status = 200, body = MessageOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_message(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<ContentQuery>,
) -> ApiResult<Json<MessageOut>> {
    let app = applications::load(&state, &app_id).await?;
    let message = load(&state, &app, &msg_id).await?;
    Ok(Json(MessageOut::new(&message, query.with_content)))
}

/// Loads a message of `app` by id or eventId, or answers 404.
pub(crate) async fn load(state: &AppState, app: &Application, msg_id: &str) -> ApiResult<Message> {
    state
        .store
        .get_message(&app.id, msg_id)
        .await?
        .ok_or(ApiError::NotFound)
}
