//! Liveness and readiness, neither needing a token. `GET /api/v1/health`: 204 while the
//! process serves (Svix's). `GET /api/v1/health/ready` (Herald extension): 204 when this
//! node can accept publishes now (its store reachable, writable and not full, and the node
//! not shutting down), else the error a publish would get, so a load balancer sends
//! publishes elsewhere.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, HttpErrorOut};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}

/// Health check.
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", security(()),
    responses((status = 204, description = "Herald is up")))]
async fn health() -> impl IntoResponse {
    StatusCode::NO_CONTENT
}

/// Herald extension: whether this node can accept publishes now.
#[utoipa::path(get, path = "/api/v1/health/ready", tag = "Health", security(()),
    responses((status = 204, description = "Ready for publishes"),
        (status = 503, body = HttpErrorOut, description = "Shutting down, or the store cannot be reached"),
        (status = 507, body = HttpErrorOut, description = "The store is full")))]
async fn ready(State(state): State<AppState>) -> Response {
    if state.config.draining.load(Ordering::Relaxed) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HttpErrorOut {
                code: "shutting_down".to_owned(),
                detail: "This node is shutting down; send publishes to another.".to_owned(),
            }),
        )
            .into_response();
    }
    match state.store.ready().await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(err) => ApiError::from(err).into_response(),
    }
}
