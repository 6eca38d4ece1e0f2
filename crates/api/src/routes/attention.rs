//! Herald extension: the endpoints an operator should look at, across every application
//! (the console's morning check): those failing now, with their last failure, and the
//! disabled ones.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use model::{Application, Status};
use serde::{Deserialize, Serialize};
use store::{AttemptFilter, Order, Page};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::attempts::MessageAttemptOut;
use super::endpoints::EndpointOut;
use crate::AppState;
use crate::error::{ApiResult, ValidationErrorItem};
use crate::extract::{ValidQuery, Validate};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(endpoints_needing_attention))
}

const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 250;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AttentionQuery {
    /// How many failing and how many disabled endpoints to return at most (1 to 250,
    /// default 100).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
}

impl Validate for AttentionQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        match self.limit {
            Some(n) if !(1..=MAX_LIMIT).contains(&n) => vec![ValidationErrorItem::new(
                &["query", "limit"],
                format!("limit must be 1 to {MAX_LIMIT}"),
            )],
            _ => Vec::new(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttentionEndpointOut {
    app_id: String,
    app_name: String,
    app_uid: Option<String>,
    endpoint: EndpointOut,
    /// When the endpoint's current streak of failures began (failing endpoints only).
    #[serde(serialize_with = "crate::time::serialize_opt")]
    failing_since: Option<DateTime<Utc>>,
    /// Its latest failed attempt (failing endpoints only).
    last_failure: Option<MessageAttemptOut>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct AttentionOut {
    /// Endpoints failing now, the longest-failing first.
    failing: Vec<AttentionEndpointOut>,
    /// Disabled endpoints, the most recently changed first.
    disabled: Vec<AttentionEndpointOut>,
}

/// Herald extension: endpoints failing now and disabled endpoints, across applications.
#[utoipa::path(get, path = "/api/v1/endpoint-health", tag = "Endpoint", params(AttentionQuery),
    responses((status = 200, body = AttentionOut)))]
async fn endpoints_needing_attention(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<AttentionQuery>,
) -> ApiResult<Json<AttentionOut>> {
    let seen = state
        .store
        .endpoints_needing_attention(query.limit.unwrap_or(DEFAULT_LIMIT))
        .await?;
    let mut apps: HashMap<String, Option<Application>> = HashMap::new();
    let mut out = AttentionOut {
        failing: Vec::with_capacity(seen.failing.len()),
        disabled: Vec::with_capacity(seen.disabled.len()),
    };
    for (endpoint, since) in seen.failing {
        let filter = AttemptFilter {
            endpoint_id: Some(endpoint.id.clone()),
            status: Some(Status::Fail),
            ..AttemptFilter::default()
        };
        let last = state
            .store
            .list_attempts(&endpoint.app_id, &filter, &latest())
            .await?
            .into_iter()
            .next()
            .map(|a| MessageAttemptOut::new(a, None));
        if let Some(item) = item(&state, &mut apps, endpoint, Some(since), last).await? {
            out.failing.push(item);
        }
    }
    for endpoint in seen.disabled {
        if let Some(item) = item(&state, &mut apps, endpoint, None, None).await? {
            out.disabled.push(item);
        }
    }
    Ok(Json(out))
}

fn latest() -> Page {
    Page {
        limit: 1,
        cursor: None,
        order: Order::Descending,
    }
}

/// The endpoint with its application's name (`None` if the application went meanwhile).
async fn item(
    state: &AppState,
    apps: &mut HashMap<String, Option<Application>>,
    endpoint: model::Endpoint,
    failing_since: Option<DateTime<Utc>>,
    last_failure: Option<MessageAttemptOut>,
) -> ApiResult<Option<AttentionEndpointOut>> {
    let key = endpoint.app_id.as_str().to_owned();
    if !apps.contains_key(&key) {
        let app = state.store.get_app(&key).await?;
        apps.insert(key.clone(), app);
    }
    let Some(Some(app)) = apps.get(&key) else {
        return Ok(None);
    };
    Ok(Some(AttentionEndpointOut {
        app_id: app.id.as_str().to_owned(),
        app_name: app.name.clone(),
        app_uid: app.uid.clone(),
        endpoint: endpoint.into(),
        failing_since,
        last_failure,
    }))
}
