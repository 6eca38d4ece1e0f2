//! Svix's expunge-content calls: a message sent with something it should not have carried,
//! or a receiver that answered with something it should not have, can have it removed.
//! A message whose payload is expunged is never sent again (its pending deliveries fail,
//! resend answers 409, recover skips it).

use axum::extract::State;
use axum::http::StatusCode;
use model::AttemptId;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{applications, messages};
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::ValidPath;

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(expunge_message_content))
        .routes(routes!(expunge_attempt_content))
}

/// Delete a message's payload (it becomes `{}`); the message can't be sent again.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/content", tag = "Message",
    params(("app_id" = String, Path), ("msg_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::HttpErrorOut)))]
async fn expunge_message_content(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id)): ValidPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = applications::load(&state, &app_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    state
        .store
        .expunge_content(&app.id, &message.id, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Delete the response body recorded with an attempt.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content", tag = "Message Attempt",
    params(("app_id" = String, Path), ("msg_id" = String, Path), ("attempt_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::HttpErrorOut)))]
async fn expunge_attempt_content(
    State(state): State<AppState>,
    ValidPath((app_id, msg_id, attempt_id)): ValidPath<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let app = applications::load(&state, &app_id).await?;
    let message = messages::load(&state, &app, &msg_id).await?;
    state
        .store
        .expunge_response(&app.id, &message.id, &AttemptId::from_string(attempt_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
