//! `GET /api/v1/health`: 204 when Herald can serve. Needs no token.

use axum::response::IntoResponse;
use http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health))
}

/// Health check.
#[utoipa::path(get, path = "/api/v1/health", tag = "Health", security(()),
    responses((status = 204, description = "Herald is up")))]
async fn health() -> impl IntoResponse {
    StatusCode::NO_CONTENT
}
