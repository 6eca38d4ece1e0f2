//! Event types: `/api/v1/event-type`. Names follow `^[a-zA-Z0-9\-_.]+$`; JSON schemas are
//! stored as given. Deleting archives unless `expunge=true`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use model::EventType;
use serde::{Deserialize, Serialize};
use store::Order;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Patch;
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidJson, ValidPath, ValidQuery, Validate};
use crate::list::{ListResponse, Ordering, order_of, paging};
use crate::validate;
use crate::{AppState, contracts};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_event_types, create_event_type))
        .routes(routes!(
            get_event_type,
            update_event_type,
            patch_event_type,
            delete_event_type
        ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventTypeIn {
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    name: String,
    description: String,
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    #[serde(default)]
    feature_flag: Option<String>,
    #[serde(default)]
    feature_flags: Option<Vec<String>>,
    #[serde(default)]
    group_name: Option<String>,
    /// Herald extension: refuse a publish of this type whose payload does not satisfy the
    /// latest schema version, with 422 (default false).
    #[serde(default)]
    enforce_schema: Option<bool>,
}

impl Validate for EventTypeIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        validate::name(&mut problems, &["body", "name"], &self.name, 256);
        problems.extend(contracts::check_schemas(
            self.schemas.as_ref(),
            self.enforce_schema.unwrap_or(false),
        ));
        problems
    }
}

/// PUT body: as `EventTypeIn` without the name, which is in the path.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventTypeUpdate {
    description: String,
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    #[serde(default)]
    feature_flag: Option<String>,
    #[serde(default)]
    feature_flags: Option<Vec<String>>,
    #[serde(default)]
    group_name: Option<String>,
    /// Herald extension: see `EventTypeIn`; kept as it was when absent.
    #[serde(default)]
    enforce_schema: Option<bool>,
}

impl Validate for EventTypeUpdate {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        contracts::check_schemas(self.schemas.as_ref(), false)
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventTypePatch {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    archived: Option<bool>,
    #[serde(default)]
    deprecated: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    schemas: Patch<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    feature_flag: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    group_name: Patch<String>,
    /// Herald extension: see `EventTypeIn`.
    #[serde(default)]
    enforce_schema: Option<bool>,
}

impl Validate for EventTypePatch {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        contracts::check_schemas(self.schemas.value(), false)
    }
}

/// An event type that enforces its schema must have one (checked once a PUT or PATCH has
/// been merged with what was stored).
fn has_what_it_enforces(et: &EventType) -> ApiResult<()> {
    let problems = contracts::check_schemas(et.schemas.as_ref(), et.enforce_schema)
        .into_iter()
        .filter(|p| p.loc.last().is_some_and(|l| l == "enforceSchema"))
        .collect::<Vec<_>>();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(problems))
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EventTypeOut {
    name: String,
    description: String,
    archived: bool,
    deprecated: bool,
    #[schema(value_type = Option<Object>)]
    schemas: Option<serde_json::Value>,
    feature_flag: Option<String>,
    feature_flags: Option<Vec<String>>,
    group_name: Option<String>,
    /// Herald extension: publishes must satisfy the latest schema version.
    enforce_schema: bool,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    updated_at: DateTime<Utc>,
}

impl EventTypeOut {
    fn new(et: EventType, with_content: bool) -> Self {
        Self {
            name: et.name,
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            schemas: if with_content { et.schemas } else { None },
            feature_flags: et.feature_flag.clone().map(|f| vec![f]),
            feature_flag: et.feature_flag,
            group_name: et.group_name,
            enforce_schema: et.enforce_schema,
            created_at: et.created_at,
            updated_at: et.updated_at,
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
    #[serde(default)]
    include_archived: bool,
    /// Include the schemas (default true).
    #[serde(default = "super::default_true")]
    with_content: bool,
}

impl Validate for ListQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        paging(self.limit, &self.iterator).problems()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeleteQuery {
    /// Delete for good instead of archiving.
    #[serde(default)]
    expunge: bool,
}

impl Validate for DeleteQuery {}

fn flag(single: Option<String>, many: Option<Vec<String>>) -> Option<String> {
    single.or_else(|| many.and_then(|m| m.into_iter().next()))
}

/// List event types.
#[utoipa::path(get, path = "/api/v1/event-type", tag = "Event Type", params(ListQuery),
    responses((status = 200, body = ListResponse<EventTypeOut>)))]
async fn list_event_types(
    State(state): State<AppState>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<EventTypeOut>>> {
    let (page, back) =
        paging(query.limit, &query.iterator).page(order_of(query.order, Order::Ascending));
    let rows = state
        .store
        .list_event_types(&page, query.include_archived)
        .await?;
    let with_content = query.with_content;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |e| e.name.clone(),
        |e| EventTypeOut::new(e, with_content),
    )))
}

/// Create an event type. Creating a name that exists archived brings it back.
#[utoipa::path(post, path = "/api/v1/event-type", tag = "Event Type", request_body = EventTypeIn,
    responses((status = 201, body = EventTypeOut), (status = 409, body = crate::error::HttpErrorOut)))]
async fn create_event_type(
    State(state): State<AppState>,
    ValidJson(body): ValidJson<EventTypeIn>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let now = state.clock.now();
    let mut et = EventType {
        name: body.name,
        description: body.description,
        archived: body.archived.unwrap_or(false),
        deprecated: body.deprecated.unwrap_or(false),
        feature_flag: flag(body.feature_flag, body.feature_flags),
        group_name: body.group_name,
        schemas: body.schemas,
        enforce_schema: body.enforce_schema.unwrap_or(false),
        created_at: now,
        updated_at: now,
    };
    state.contracts.forget(&et.name);
    let stored = match state.store.get_event_type(&et.name).await? {
        Some(existing) if existing.archived => {
            et.created_at = existing.created_at;
            state.store.update_event_type(et).await?
        }
        Some(_) => {
            return Err(ApiError::Conflict {
                code: "event_type_exists",
                detail: "An event_type with this name already exists".to_owned(),
            });
        }
        None => state
            .store
            .create_event_type(et)
            .await
            .map_err(|e| match e {
                store::StoreError::Conflict(_) => ApiError::Conflict {
                    code: "event_type_exists",
                    detail: "An event_type with this name already exists".to_owned(),
                },
                other => other.into(),
            })?,
    };
    Ok((StatusCode::CREATED, Json(EventTypeOut::new(stored, true))))
}

/// Get an event type.
#[utoipa::path(get, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)),
    responses((status = 200, body = EventTypeOut), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_event_type(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
) -> ApiResult<Json<EventTypeOut>> {
    let et = state
        .store
        .get_event_type(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(EventTypeOut::new(et, true)))
}

/// Update an event type, creating it if missing (upsert).
#[utoipa::path(put, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)), request_body = EventTypeUpdate,
    responses((status = 200, body = EventTypeOut), (status = 201, body = EventTypeOut)))]
async fn update_event_type(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
    ValidJson(body): ValidJson<EventTypeUpdate>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let now = state.clock.now();
    let existing = state.store.get_event_type(&name).await?;
    if existing.is_none() {
        let mut problems = Vec::new();
        validate::name(&mut problems, &["path", "event_type_name"], &name, 256);
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
    }
    let et = EventType {
        name,
        description: body.description,
        archived: body.archived.unwrap_or(false),
        deprecated: body.deprecated.unwrap_or(false),
        feature_flag: flag(body.feature_flag, body.feature_flags),
        group_name: body.group_name,
        schemas: body.schemas,
        enforce_schema: body
            .enforce_schema
            .or(existing.as_ref().map(|e| e.enforce_schema))
            .unwrap_or(false),
        created_at: existing.as_ref().map_or(now, |e| e.created_at),
        updated_at: now,
    };
    has_what_it_enforces(&et)?;
    state.contracts.forget(&et.name);
    if existing.is_some() {
        Ok((
            StatusCode::OK,
            Json(EventTypeOut::new(
                state.store.update_event_type(et).await?,
                true,
            )),
        ))
    } else {
        Ok((
            StatusCode::CREATED,
            Json(EventTypeOut::new(
                state.store.create_event_type(et).await?,
                true,
            )),
        ))
    }
}

/// Change some fields of an event type.
#[utoipa::path(patch, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path)), request_body = EventTypePatch,
    responses((status = 200, body = EventTypeOut)))]
async fn patch_event_type(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
    ValidJson(patch): ValidJson<EventTypePatch>,
) -> ApiResult<Json<EventTypeOut>> {
    let mut et = state
        .store
        .get_event_type(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(d) = patch.description {
        et.description = d;
    }
    if let Some(a) = patch.archived {
        et.archived = a;
    }
    if let Some(d) = patch.deprecated {
        et.deprecated = d;
    }
    patch.schemas.apply_opt(&mut et.schemas);
    patch.feature_flag.apply_opt(&mut et.feature_flag);
    patch.group_name.apply_opt(&mut et.group_name);
    if let Some(enforce) = patch.enforce_schema {
        et.enforce_schema = enforce;
    }
    has_what_it_enforces(&et)?;
    et.updated_at = state.clock.now();
    state.contracts.forget(&et.name);
    Ok(Json(EventTypeOut::new(
        state.store.update_event_type(et).await?,
        true,
    )))
}

/// Archive an event type, or delete it for good with `expunge=true`.
#[utoipa::path(delete, path = "/api/v1/event-type/{event_type_name}", tag = "Event Type",
    params(("event_type_name" = String, Path), DeleteQuery), responses((status = 204)))]
async fn delete_event_type(
    State(state): State<AppState>,
    ValidPath(name): ValidPath<String>,
    ValidQuery(query): ValidQuery<DeleteQuery>,
) -> ApiResult<StatusCode> {
    let mut et = state
        .store
        .get_event_type(&name)
        .await?
        .ok_or(ApiError::NotFound)?;
    state.contracts.forget(&name);
    if query.expunge {
        state.store.delete_event_type(&name).await?;
    } else {
        et.archived = true;
        et.updated_at = state.clock.now();
        state.store.update_event_type(et).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
