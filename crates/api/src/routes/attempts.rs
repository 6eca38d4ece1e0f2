//! Attempts and deliveries: what happened to a message at each endpoint, and resend.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use model::{Attempt, AttemptId, Delivery, Endpoint, Message, Status, Trigger};
use serde::{Deserialize, Serialize};
use store::{AttemptFilter, DeliveryFilter, Order};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::messages::{self, MessageOut};
use super::{applications, endpoints};
use crate::AppState;
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidPath, ValidQuery, Validate};
use crate::list::{ListResponse, paging};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_attempts_by_msg))
        .routes(routes!(list_attempts_by_endpoint))
        .routes(routes!(get_attempt))
        .routes(routes!(resend_webhook))
        .routes(routes!(list_attempted_destinations))
        .routes(routes!(list_attempted_messages))
}

fn status_text(status: Status) -> &'static str {
    match status {
        Status::Success => "success",
        Status::Pending => "pending",
        Status::Fail => "fail",
        Status::Sending => "sending",
    }
}

fn parse_status(code: Option<i64>) -> Result<Option<Status>, ApiError> {
    match code {
        None => Ok(None),
        Some(code) => Status::from_code(code)
            .map(Some)
            .ok_or_else(|| ApiError::invalid(&["query", "status"], "must be 0, 1, 2 or 3")),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MessageAttemptOut {
    id: String,
    msg_id: String,
    endpoint_id: String,
    url: String,
    /// The response body (truncated to 20 KiB), or what went wrong without a response.
    response: String,
    /// 0 when no HTTP response arrived (and for AMQP endpoints, which have no status).
    response_status_code: i32,
    response_duration_ms: i64,
    /// 0 success, 1 pending, 2 fail, 3 sending.
    status: i64,
    status_text: &'static str,
    /// 0 scheduled, 1 manual (resend, recover).
    trigger_type: i64,
    /// Herald extension: `status` (non-2xx), `timeout`, `connection_refused`, `dns`, `tls`,
    /// `connection`, `refused`, `broker` (an AMQP broker refused the message); null on success.
    error_kind: Option<&'static str>,
    #[serde(serialize_with = "crate::time::serialize")]
    timestamp: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg: Option<MessageOut>,
}

impl MessageAttemptOut {
    pub(crate) fn new(attempt: Attempt, msg: Option<MessageOut>) -> Self {
        Self {
            id: attempt.id.into_string(),
            msg_id: attempt.msg_id.into_string(),
            endpoint_id: attempt.endpoint_id.into_string(),
            url: attempt.url,
            response: attempt.response,
            response_status_code: attempt.response_status_code,
            response_duration_ms: attempt.response_duration_ms,
            status: attempt.status.code(),
            status_text: status_text(attempt.status),
            trigger_type: attempt.trigger.code(),
            error_kind: attempt.error.map(|e| e.as_str()),
            timestamp: attempt.created_at,
            msg,
        }
    }
}

/// An endpoint a message went to, with the delivery's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MessageEndpointOut {
    id: String,
    uid: Option<String>,
    url: String,
    description: String,
    version: i32,
    throttle_rate: Option<u32>,
    disabled: bool,
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    status: i64,
    status_text: &'static str,
    #[serde(serialize_with = "crate::time::serialize_opt")]
    next_attempt: Option<DateTime<Utc>>,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    updated_at: DateTime<Utc>,
}

impl MessageEndpointOut {
    fn new(delivery: &Delivery, endpoint: &Endpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            uid: endpoint.uid.clone(),
            url: model::destination::masked_url(&endpoint.url).into_owned(),
            description: endpoint.description.clone(),
            version: endpoint.version,
            throttle_rate: endpoint.rate_limit,
            disabled: endpoint.disabled,
            event_types: endpoint.filter_types.clone(),
            channels: endpoint.channels.clone(),
            status: delivery.status.code(),
            status_text: status_text(delivery.status),
            next_attempt: next_attempt(delivery),
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

/// A message sent to an endpoint, with the delivery's state.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointMessageOut {
    #[serde(flatten)]
    message: MessageOut,
    status: i64,
    status_text: &'static str,
    #[serde(serialize_with = "crate::time::serialize_opt")]
    next_attempt: Option<DateTime<Utc>>,
}

fn next_attempt(delivery: &Delivery) -> Option<DateTime<Utc>> {
    (delivery.status == Status::Pending)
        .then_some(delivery.next_attempt_at)
        .flatten()
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttemptListQuery {
    /// How many items to return (1 to 250, default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// The `iterator` of the previous page; prefix `-` to page backwards.
    iterator: Option<String>,
    /// Only attempts with this status (0 success, 2 fail).
    status: Option<i64>,
    /// Only attempts to this endpoint (list by message).
    endpoint_id: Option<String>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    after: Option<DateTime<Utc>>,
    /// Include each attempt's message (list by endpoint).
    #[serde(default)]
    with_msg: bool,
    /// With `with_msg`, include the message payloads.
    #[serde(default = "super::default_true")]
    with_content: bool,
}

impl Validate for AttemptListQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        paging(self.limit, &self.iterator).problems()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveryListQuery {
    /// How many items to return (1 to 250, default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// The `iterator` of the previous page; prefix `-` to page backwards.
    iterator: Option<String>,
    /// Only deliveries with this status.
    status: Option<i64>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    before: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    after: Option<DateTime<Utc>>,
    /// Include message payloads (default true).
    #[serde(default = "super::default_true")]
    with_content: bool,
}

impl Validate for DeliveryListQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        paging(self.limit, &self.iterator).problems()
    }
}

/// List a message's attempts, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), AttemptListQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_attempts_by_msg(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<AttemptListQuery>,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let app = applications::load(&state, &app_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    let endpoint_id = match &query.endpoint_id {
        Some(ep) => Some(endpoints::load(&state, &app_id, ep).await?.1.id),
        None => None,
    };
    let filter = AttemptFilter {
        msg_id: Some(message.id),
        endpoint_id,
        status: parse_status(query.status)?,
        before: query.before,
        after: query.after,
    };
    let (page, back) = paging(query.limit, &query.iterator).page(Order::Descending);
    let rows = state.store.list_attempts(&app.id, &filter, &page).await?;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |a| a.id.to_string(),
        |a| MessageAttemptOut::new(a, None),
    )))
}

/// List an endpoint's attempts, newest first.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), AttemptListQuery),
    responses((status = 200, body = ListResponse<MessageAttemptOut>)))]
async fn list_attempts_by_endpoint(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<AttemptListQuery>,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let (app, endpoint) = endpoints::load(&state, &app_id, &endpoint_id).await?;
    let filter = AttemptFilter {
        msg_id: None,
        endpoint_id: Some(endpoint.id),
        status: parse_status(query.status)?,
        before: query.before,
        after: query.after,
    };
    let (page, back) = paging(query.limit, &query.iterator).page(Order::Descending);
    let rows = state.store.list_attempts(&app.id, &filter, &page).await?;
    let mut messages: HashMap<String, Option<Message>> = HashMap::new();
    if query.with_msg {
        for attempt in &rows {
            let id = attempt.msg_id.to_string();
            if let std::collections::hash_map::Entry::Vacant(slot) = messages.entry(id) {
                let message = state.store.get_message(&app.id, slot.key()).await?;
                slot.insert(message);
            }
        }
    }
    let with_content = query.with_content;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |a| a.id.to_string(),
        |a| {
            let msg = messages
                .get(a.msg_id.as_str())
                .and_then(Option::as_ref)
                .map(|m| MessageOut::new(m, with_content));
            MessageAttemptOut::new(a, msg)
        },
    )))
}

/// Get one attempt.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 200, body = MessageAttemptOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_attempt(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id, attempt_id)): ValidPath<(String, String, String)>,
) -> ApiResult<Json<MessageAttemptOut>> {
    let app = applications::load(&state, &app_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    let attempt = state
        .store
        .get_attempt(&app.id, &message.id, &AttemptId::from_string(attempt_id))
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(MessageAttemptOut::new(attempt, None)))
}

#[derive(Debug, Serialize, ToSchema)]
struct EmptyResponse {}

/// Send a message to an endpoint again now (a manual attempt, then the retry schedule).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 202, body = EmptyResponse), (status = 404, body = crate::error::HttpErrorOut)))]
async fn resend_webhook(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id, endpoint_id)): ValidPath<(String, String, String)>,
) -> ApiResult<(StatusCode, Json<EmptyResponse>)> {
    let (app, endpoint) = endpoints::load(&state, &app_id, &endpoint_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    let delivery = state
        .store
        .resend(&app.id, &message.id, &endpoint.id, state.clock.now())
        .await?;
    debug_assert_eq!(delivery.trigger, Trigger::Manual);
    state.dispatcher.wake();
    Ok((StatusCode::ACCEPTED, Json(EmptyResponse {})))
}

/// The endpoints a message went to, with each delivery's state.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), DeliveryListQuery),
    responses((status = 200, body = ListResponse<MessageEndpointOut>)))]
async fn list_attempted_destinations(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<DeliveryListQuery>,
) -> ApiResult<Json<ListResponse<MessageEndpointOut>>> {
    let app = applications::load(&state, &app_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    let (page, back) = paging(query.limit, &query.iterator).page(Order::Ascending);
    let rows = state
        .store
        .list_message_deliveries(&app.id, &message.id, &page)
        .await?;
    let endpoints = state.store.app_endpoints(&app.id).await?;
    let rows: Vec<(Delivery, &Endpoint)> = rows
        .into_iter()
        .filter_map(|d| {
            let ep = endpoints.iter().find(|e| e.id == d.endpoint_id)?;
            Some((d, ep))
        })
        .collect();
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |(d, _)| d.endpoint_id.to_string(),
        |(d, ep)| MessageEndpointOut::new(&d, ep),
    )))
}

/// The messages sent to an endpoint, with each delivery's state.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg", tag = "Message Attempt",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), DeliveryListQuery),
    responses((status = 200, body = ListResponse<EndpointMessageOut>)))]
async fn list_attempted_messages(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<DeliveryListQuery>,
) -> ApiResult<Json<ListResponse<EndpointMessageOut>>> {
    let (app, endpoint) = endpoints::load(&state, &app_id, &endpoint_id).await?;
    let filter = DeliveryFilter {
        status: parse_status(query.status)?,
        before: query.before,
        after: query.after,
    };
    let (page, back) = paging(query.limit, &query.iterator).page(Order::Descending);
    let rows = state
        .store
        .list_endpoint_deliveries(&app.id, &endpoint.id, &filter, &page)
        .await?;
    let with_content = query.with_content;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |(_, m)| m.id.to_string(),
        |(d, m)| EndpointMessageOut {
            message: MessageOut::new(&m, with_content),
            status: d.status.code(),
            status_text: status_text(d.status),
            next_attempt: next_attempt(&d),
        },
    )))
}
