//! Herald extension: the health of several endpoints of an application in one call, for
//! a page of webhooks (the console and the portal): deliveries by status since a time,
//! the median duration of the latest attempts, and the last failure with its reason.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Duration, Utc};
use model::{EndpointId, Status};
use serde::{Deserialize, Serialize};
use store::{AttemptFilter, Order, Page};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::applications;
use super::attempts::MessageAttemptOut;
use crate::AppState;
use crate::error::{ApiResult, ValidationErrorItem};
use crate::extract::{ValidPath, ValidQuery, Validate};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(endpoints_health))
}

/// At most this many endpoints a call (a page of the webhooks list is 50).
const MAX_ENDPOINTS: usize = 100;
/// The median duration is taken over at most this many latest attempts.
const RECENT: usize = 50;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HealthQuery {
    /// The endpoints (ids or uids), repeated: 1 to 100.
    #[serde(default)]
    endpoint_id: Vec<String>,
    /// Count from this time on (default: 24 hours ago).
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<DateTime<Utc>>,
}

impl Validate for HealthQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        if (1..=MAX_ENDPOINTS).contains(&self.endpoint_id.len()) {
            Vec::new()
        } else {
            vec![ValidationErrorItem::new(
                &["query", "endpoint_id"],
                format!("give 1 to {MAX_ENDPOINTS} endpoint ids"),
            )]
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointHealthOut {
    endpoint_id: String,
    success: u64,
    pending: u64,
    sending: u64,
    fail: u64,
    /// The median duration of the latest attempts since `since` (up to 50), if any.
    median_duration_ms: Option<i64>,
    /// The latest failed attempt since `since`.
    last_failure: Option<MessageAttemptOut>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EndpointsHealthOut {
    /// One entry per endpoint found, in the order asked; unknown ids are left out.
    data: Vec<EndpointHealthOut>,
}

/// Herald extension: the health of up to 100 endpoints of an application.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint-health", tag = "Endpoint",
    params(("app_id" = String, Path), HealthQuery),
    responses((status = 200, body = EndpointsHealthOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn endpoints_health(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<HealthQuery>,
) -> ApiResult<Json<EndpointsHealthOut>> {
    let app = applications::load(&state, &app_id).await?;
    let since = query
        .since
        .unwrap_or_else(|| state.clock.now() - Duration::hours(24));
    let mut data = Vec::with_capacity(query.endpoint_id.len());
    for id in &query.endpoint_id {
        let Some(endpoint) = state.store.get_endpoint(&app.id, id).await? else {
            continue;
        };
        data.push(health(&state, &app.id, endpoint.id, since).await?);
    }
    Ok(Json(EndpointsHealthOut { data }))
}

async fn health(
    state: &AppState,
    app: &model::AppId,
    endpoint: EndpointId,
    since: DateTime<Utc>,
) -> ApiResult<EndpointHealthOut> {
    let counts = state
        .store
        .endpoint_stats(app, &endpoint, Some(since), None)
        .await?;
    let latest = |limit, status| {
        let filter = AttemptFilter {
            endpoint_id: Some(endpoint.clone()),
            status,
            after: Some(since),
            ..AttemptFilter::default()
        };
        let page = Page {
            limit,
            cursor: None,
            order: Order::Descending,
        };
        async move { state.store.list_attempts(app, &filter, &page).await }
    };
    let recent = latest(RECENT, None).await?;
    let durations: Vec<i64> = recent.iter().map(|a| a.response_duration_ms).collect();
    // The latest failure is often among the latest attempts: asked for only if not.
    let last_failure = match recent.iter().find(|a| a.status == Status::Fail) {
        Some(failed) => Some(failed.clone()),
        None if counts.fail > 0 => latest(1, Some(Status::Fail)).await?.into_iter().next(),
        None => None,
    };
    Ok(EndpointHealthOut {
        endpoint_id: endpoint.into_string(),
        success: counts.success,
        pending: counts.pending,
        sending: counts.sending,
        fail: counts.fail,
        median_duration_ms: median(durations),
        last_failure: last_failure.map(|a| MessageAttemptOut::new(a, None)),
    })
}

/// The median of `values` (the upper one of an even count), if there are any.
fn median(mut values: Vec<i64>) -> Option<i64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value() {
        let table: [(&[i64], Option<i64>); 5] = [
            (&[], None),
            (&[7], Some(7)),
            (&[9, 1], Some(9)),
            (&[30, 10, 20], Some(20)),
            (&[4, 1, 3, 2], Some(3)),
        ];
        for (values, want) in table {
            assert_eq!(median(values.to_vec()), want, "{values:?}");
        }
    }
}
