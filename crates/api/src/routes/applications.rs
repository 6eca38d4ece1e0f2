//! Applications (tenants): `/api/v1/app`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use model::{AppId, Application};
use serde::{Deserialize, Serialize};
use store::Order;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Patch;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ValidJson, ValidPath, ValidQuery, Validate};
use crate::list::{ListResponse, Ordering, order_of, paging};
use crate::validate::{self, Problems};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_applications, create_application))
        .routes(routes!(
            get_application,
            update_application,
            patch_application,
            delete_application
        ))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationIn {
    #[schema(min_length = 1, max_length = 256, pattern = "\\S")]
    pub(crate) name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    pub(crate) uid: Option<String>,
    /// Messages per second this application may publish (stored; not enforced yet).
    #[serde(default, alias = "rateLimit")]
    #[schema(minimum = 1, maximum = 65535)]
    pub(crate) throttle_rate: Option<u16>,
    #[serde(default)]
    pub(crate) metadata: Option<BTreeMap<String, String>>,
}

impl ApplicationIn {
    pub(crate) fn check(&self, problems: &mut Problems, at: &str) {
        validate::non_empty(problems, &[at, "name"], &self.name, 256);
        if let Some(uid) = &self.uid {
            validate::uid(problems, &[at, "uid"], uid, AppId::PREFIX);
        }
        if self.throttle_rate == Some(0) {
            problems.push(crate::error::ValidationErrorItem::new(
                &[at, "throttleRate"],
                "must be at least 1",
            ));
        }
        if let Some(metadata) = &self.metadata {
            validate::metadata(problems, &[at, "metadata"], metadata);
        }
    }

    /// A new application from this input.
    pub(crate) fn into_application(self, now: DateTime<Utc>) -> Application {
        Application {
            id: AppId::generate(),
            uid: self.uid,
            name: self.name,
            rate_limit: self.throttle_rate.map(u32::from),
            metadata: self.metadata.unwrap_or_default(),
            created_at: now,
            updated_at: now,
        }
    }
}

impl Validate for ApplicationIn {
    fn validate(&self) -> Vec<crate::error::ValidationErrorItem> {
        let mut problems = Vec::new();
        self.check(&mut problems, "body");
        problems
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ApplicationPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    uid: Patch<String>,
    #[serde(default, alias = "rateLimit")]
    #[schema(value_type = Option<u16>)]
    throttle_rate: Patch<u16>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

impl Validate for ApplicationPatch {
    fn validate(&self) -> Vec<crate::error::ValidationErrorItem> {
        let mut problems = Vec::new();
        if let Some(name) = &self.name {
            validate::non_empty(&mut problems, &["body", "name"], name, 256);
        }
        if let Some(uid) = self.uid.value() {
            validate::uid(&mut problems, &["body", "uid"], uid, AppId::PREFIX);
        }
        if let Some(metadata) = &self.metadata {
            validate::metadata(&mut problems, &["body", "metadata"], metadata);
        }
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApplicationOut {
    id: String,
    uid: Option<String>,
    name: String,
    throttle_rate: Option<u32>,
    metadata: BTreeMap<String, String>,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    updated_at: DateTime<Utc>,
}

impl From<Application> for ApplicationOut {
    fn from(app: Application) -> Self {
        Self {
            id: app.id.into_string(),
            uid: app.uid,
            name: app.name,
            throttle_rate: app.rate_limit,
            metadata: app.metadata,
            created_at: app.created_at,
            updated_at: app.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many items to return (1 to 250, default 50).
    #[param(minimum = 1, maximum = 250)]
    limit: Option<usize>,
    /// The `iterator` of the previous page; prefix `-` to page backwards.
    iterator: Option<String>,
    order: Option<Ordering>,
    /// Herald extension: only applications whose name, uid or id contains this (1 to 256
    /// characters; ASCII letters in any case).
    search: Option<String>,
}

impl Validate for ListQuery {
    fn validate(&self) -> Vec<crate::error::ValidationErrorItem> {
        let mut problems = paging(self.limit, &self.iterator).problems();
        if let Some(search) = &self.search
            && !(1..=256).contains(&search.chars().count())
        {
            problems.push(crate::error::ValidationErrorItem::new(
                &["query", "search"],
                "must be 1 to 256 characters",
            ));
        }
        problems
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct CreateQuery {
    /// Return the existing application (200) when one with this uid exists.
    #[serde(default)]
    get_if_exists: bool,
}

impl Validate for CreateQuery {}

/// Loads an application by id or uid, or answers 404.
pub(crate) async fn load(state: &AppState, id_or_uid: &str) -> ApiResult<Application> {
    state
        .store
        .get_app(id_or_uid)
        .await?
        .ok_or(ApiError::NotFound)
}

/// List applications.
#[utoipa::path(get, path = "/api/v1/app", tag = "Application", params(ListQuery),
    responses((status = 200, body = ListResponse<ApplicationOut>)))]
async fn list_applications(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<ApplicationOut>>> {
    let (page, back) =
        paging(query.limit, &query.iterator).page(order_of(query.order, Order::Ascending));
    let rows = state
        .store
        .list_apps(query.search.as_deref(), &page)
        .await?;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |a| a.id.to_string(),
        ApplicationOut::from,
    )))
}

/// Create an application.
#[utoipa::path(post, path = "/api/v1/app", tag = "Application", params(CreateQuery),
    request_body = ApplicationIn,
    responses((status = 201, body = ApplicationOut), (status = 200, body = ApplicationOut, description = "existing application (get_if_exists)"),
        (status = 409, body = crate::error::HttpErrorOut), (status = 422, body = crate::error::HttpValidationError)))]
async fn create_application(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<CreateQuery>,
    ValidJson(body): ValidJson<ApplicationIn>,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    let existing = match &body.uid {
        Some(uid) => state.store.get_app(uid).await?,
        None => None,
    };
    if let Some(existing) = existing {
        if query.get_if_exists {
            return Ok((StatusCode::OK, Json(existing.into())));
        }
        return Err(ApiError::Conflict {
            code: "conflict",
            detail: "An application with that id or uid already exists".to_owned(),
        });
    }
    let app = state
        .store
        .create_app(body.into_application(state.clock.now()))
        .await?;
    Ok((StatusCode::CREATED, Json(app.into())))
}

/// Get an application by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 200, body = ApplicationOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_application(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
) -> ApiResult<Json<ApplicationOut>> {
    Ok(Json(load(&state, &app_id).await?.into()))
}

/// Update an application, creating it if it does not exist (upsert).
#[utoipa::path(put, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationIn,
    responses((status = 200, body = ApplicationOut), (status = 201, body = ApplicationOut)))]
async fn update_application(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidJson(body): ValidJson<ApplicationIn>,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    let now = state.clock.now();
    match state.store.get_app(&app_id).await? {
        Some(mut app) => {
            app.name = body.name;
            // An absent uid keeps the current one.
            app.uid = body.uid.or(app.uid);
            app.rate_limit = body.throttle_rate.map(u32::from);
            app.metadata = body.metadata.unwrap_or_default();
            app.updated_at = now;
            Ok((
                StatusCode::OK,
                Json(state.store.update_app(app).await?.into()),
            ))
        }
        None => {
            let mut body = body;
            if body.uid.is_none() && !AppId::looks_like(&app_id) {
                body.uid = Some(app_id);
            }
            let app = state.store.create_app(body.into_application(now)).await?;
            Ok((StatusCode::CREATED, Json(app.into())))
        }
    }
}

/// Change some fields of an application.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    request_body = ApplicationPatch,
    responses((status = 200, body = ApplicationOut)))]
async fn patch_application(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidJson(patch): ValidJson<ApplicationPatch>,
) -> ApiResult<Json<ApplicationOut>> {
    let mut app = load(&state, &app_id).await?;
    if let Some(name) = patch.name {
        app.name = name;
    }
    patch.uid.apply_opt(&mut app.uid);
    let mut rate = app.rate_limit.map(|r| u16::try_from(r).unwrap_or(u16::MAX));
    patch.throttle_rate.apply_opt(&mut rate);
    app.rate_limit = rate.map(u32::from);
    if let Some(metadata) = patch.metadata {
        app.metadata = metadata;
    }
    app.updated_at = state.clock.now();
    Ok(Json(state.store.update_app(app).await?.into()))
}

/// Delete an application with its endpoints, messages and attempts.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}", tag = "Application",
    params(("app_id" = String, Path, description = "The application's id or uid")),
    responses((status = 204)))]
async fn delete_application(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
) -> ApiResult<StatusCode> {
    let app = load(&state, &app_id).await?;
    state.store.delete_app(&app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
