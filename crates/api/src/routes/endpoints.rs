//! Endpoints (subscriptions): `/api/v1/app/{app_id}/endpoint`, with their secret,
//! headers, recover and stats.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponseParts, ResponseParts};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use model::destination;
use model::{
    AppId, Application, Capability, Endpoint, EndpointId, Envelope, Method, PayloadMode,
    RetiredSecret, Secret,
};
use serde::{Deserialize, Serialize};
use store::{Order, StoreError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Patch;
use super::applications;
use crate::AppState;
use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ValidationErrorItem};
use crate::extract::{ValidJson, ValidPath, ValidQuery, Validate};
use crate::list::{ListResponse, Ordering, order_of, paging};
use crate::validate::{self, Problems};

pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_endpoints, create_endpoint))
        .routes(routes!(
            get_endpoint,
            update_endpoint,
            patch_endpoint,
            delete_endpoint
        ))
        .routes(routes!(get_endpoint_secret))
        .routes(routes!(rotate_endpoint_secret))
        .routes(routes!(
            get_endpoint_headers,
            update_endpoint_headers,
            patch_endpoint_headers
        ))
        .routes(routes!(recover_failed_webhooks))
        .routes(routes!(get_endpoint_stats))
        .routes(routes!(test_endpoint_filter))
}

/// Herald's additions to the endpoint shapes, checked the same way on create, update and
/// patch. `name` and `party` are short texts; a party is compared with messages' `origin`.
fn check_extensions(
    problems: &mut Problems,
    filter: Option<&serde_json::Value>,
    transform: Option<&serde_json::Value>,
    name: Option<&String>,
    party: Option<&String>,
    diff_keep: Option<&Vec<String>>,
) {
    if let Some(filter) = filter {
        validate::filter(problems, &["body", "filter"], filter);
    }
    if let Some(transform) = transform {
        validate::transform(problems, &["body", "transform"], transform);
    }
    if let Some(name) = name {
        validate::non_empty(problems, &["body", "name"], name, 256);
    }
    if let Some(party) = party {
        validate::name(problems, &["body", "party"], party, 256);
    }
    if let Some(keep) = diff_keep {
        validate::diff_keep(problems, &["body", "diffKeep"], keep);
    }
}

/// Options that apply only together with another, refused rather than silently ignored.
/// Checked on the endpoint as it would be stored, since a patch may change either side.
fn check_combination(endpoint: &Endpoint) -> Result<(), ApiError> {
    if destination::is_amqp(&endpoint.url) && endpoint.method != Method::Post {
        return Err(ApiError::invalid(
            &["body", "method"],
            "an AMQP endpoint publishes messages; `method` applies to HTTP endpoints only \
             (leave it out or use POST)",
        ));
    }
    if !endpoint.diff_keep.is_empty() && endpoint.payload_mode != PayloadMode::Diff {
        return Err(ApiError::invalid(
            &["body", "diffKeep"],
            "applies to diff endpoints only: set `payload` to `diff`",
        ));
    }
    Ok(())
}

/// HTTP methods an endpoint can use.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum MethodDto {
    Post,
    Put,
    Patch,
    Delete,
    Get,
}

impl From<MethodDto> for Method {
    fn from(m: MethodDto) -> Self {
        match m {
            MethodDto::Post => Method::Post,
            MethodDto::Put => Method::Put,
            MethodDto::Patch => Method::Patch,
            MethodDto::Delete => Method::Delete,
            MethodDto::Get => Method::Get,
        }
    }
}

impl From<Method> for MethodDto {
    fn from(m: Method) -> Self {
        match m {
            Method::Post => MethodDto::Post,
            Method::Put => MethodDto::Put,
            Method::Patch => MethodDto::Patch,
            Method::Delete => MethodDto::Delete,
            Method::Get => MethodDto::Get,
        }
    }
}

/// What deliveries carry of the payload.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PayloadDto {
    Full,
    Diff,
}

impl From<PayloadDto> for PayloadMode {
    fn from(p: PayloadDto) -> Self {
        match p {
            PayloadDto::Full => PayloadMode::Full,
            PayloadDto::Diff => PayloadMode::Diff,
        }
    }
}

impl From<PayloadMode> for PayloadDto {
    fn from(p: PayloadMode) -> Self {
        match p {
            PayloadMode::Full => PayloadDto::Full,
            PayloadMode::Diff => PayloadDto::Diff,
        }
    }
}

/// How deliveries wrap the payload.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum EnvelopeDto {
    Raw,
    Standard,
}

impl From<EnvelopeDto> for Envelope {
    fn from(e: EnvelopeDto) -> Self {
        match e {
            EnvelopeDto::Raw => Envelope::Raw,
            EnvelopeDto::Standard => Envelope::Standard,
        }
    }
}

impl From<Envelope> for EnvelopeDto {
    fn from(e: Envelope) -> Self {
        match e {
            Envelope::Raw => EnvelopeDto::Raw,
            Envelope::Standard => EnvelopeDto::Standard,
        }
    }
}

/// Most secrets kept in their grace period at once.
const MAX_RETIRED_SECRETS: usize = 5;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointIn {
    #[schema(max_length = 65536, pattern = "^(https?|amqps?)://")]
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    uid: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    /// Attempts per second to this endpoint at most, evenly spaced.
    #[serde(default, alias = "rateLimit")]
    #[schema(minimum = 1, maximum = 65535)]
    throttle_rate: Option<u16>,
    #[serde(default)]
    disabled: Option<bool>,
    /// Event types this endpoint receives; none means all.
    #[serde(default, alias = "filterTypes")]
    #[schema(min_items = 1, max_items = 1000)]
    event_types: Option<Vec<String>>,
    /// Channels this endpoint receives; none means all messages.
    #[serde(default)]
    #[schema(min_items = 1, max_items = 10)]
    channels: Option<Vec<String>>,
    /// `whsec_` + base64 of 24 to 64 bytes; generated when absent.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    /// Constant headers sent with every delivery.
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
    /// Herald extension: deliver only events for which this condition holds
    /// (see docs/subscriptions.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    /// Herald extension: rewrite the payload before filtering and signing
    /// (`map`, `set`, `remove`; see docs/subscriptions.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    transform: Option<serde_json::Value>,
    /// Herald extension: a short label, distinct from the description.
    #[serde(default)]
    name: Option<String>,
    /// Herald extension: the HTTP method of deliveries (default POST; GET sends the
    /// signed body in the `payload` query parameter).
    #[serde(default)]
    method: Option<MethodDto>,
    /// Herald extension: `raw` (default, the payload as published) or `standard`
    /// (`{"id","type","created","data"}`).
    #[serde(default)]
    envelope: Option<EnvelopeDto>,
    /// Herald extension: the party this endpoint belongs to; it never receives a message
    /// whose `origin` is that party.
    #[serde(default)]
    party: Option<String>,
    /// Herald extension: `full` (default) or `diff`: for a message about an entity, only
    /// what changed since its previous snapshot (nothing is sent when nothing changed).
    #[serde(default)]
    payload: Option<PayloadDto>,
    /// Herald extension: payload paths always sent in a diff (identity keys, e.g. `guid`).
    #[serde(default)]
    diff_keep: Option<Vec<String>>,
}

/// The fields shared by create and update, checked the same way.
fn check_common(
    problems: &mut Problems,
    url: &str,
    uid: Option<&String>,
    throttle_rate: Option<u16>,
    event_types: Option<&Vec<String>>,
    channels: Option<&Vec<String>>,
    metadata: Option<&BTreeMap<String, String>>,
) {
    validate::endpoint_url(problems, &["body", "url"], url);
    if let Some(uid) = uid {
        validate::uid(problems, &["body", "uid"], uid, EndpointId::PREFIX);
    }
    if throttle_rate == Some(0) {
        problems.push(ValidationErrorItem::new(
            &["body", "throttleRate"],
            "must be at least 1",
        ));
    }
    if let Some(types) = event_types {
        validate::name_list(problems, &["body", "eventTypes"], types, (1, 1000), 256);
    }
    if let Some(channels) = channels {
        validate::name_list(problems, &["body", "channels"], channels, (1, 10), 128);
    }
    if let Some(metadata) = metadata {
        validate::metadata(problems, &["body", "metadata"], metadata);
    }
}

impl Validate for EndpointIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        check_common(
            &mut problems,
            &self.url,
            self.uid.as_ref(),
            self.throttle_rate,
            self.event_types.as_ref(),
            self.channels.as_ref(),
            self.metadata.as_ref(),
        );
        if let Some(secret) = &self.secret {
            validate::secret(&mut problems, &["body", "secret"], secret);
        }
        if let Some(headers) = &self.headers {
            validate::headers(
                &mut problems,
                &["body", "headers"],
                headers.iter().map(|(k, v)| (k, Some(v))),
            );
        }
        check_extensions(
            &mut problems,
            self.filter.as_ref(),
            self.transform.as_ref(),
            self.name.as_ref(),
            self.party.as_ref(),
            self.diff_keep.as_ref(),
        );
        problems
    }
}

/// PUT body: every field but the secret and headers, which have their own routes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointUpdate {
    #[schema(max_length = 65536, pattern = "^(https?|amqps?)://")]
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = "^[a-zA-Z0-9_.-]+$")]
    uid: Option<String>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default, alias = "rateLimit")]
    #[schema(minimum = 1, maximum = 65535)]
    throttle_rate: Option<u16>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default, alias = "filterTypes")]
    #[schema(min_items = 1, max_items = 1000)]
    event_types: Option<Vec<String>>,
    #[serde(default)]
    #[schema(min_items = 1, max_items = 10)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    /// Herald extension: rewrite the payload before filtering and signing
    /// (`map`, `set`, `remove`; see docs/subscriptions.md).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    transform: Option<serde_json::Value>,
    /// Herald extension: a short label, distinct from the description.
    #[serde(default)]
    name: Option<String>,
    /// Herald extension: the HTTP method of deliveries (default POST; GET sends the
    /// signed body in the `payload` query parameter).
    #[serde(default)]
    method: Option<MethodDto>,
    /// Herald extension: `raw` (default, the payload as published) or `standard`
    /// (`{"id","type","created","data"}`).
    #[serde(default)]
    envelope: Option<EnvelopeDto>,
    /// Herald extension: the party this endpoint belongs to; it never receives a message
    /// whose `origin` is that party.
    #[serde(default)]
    party: Option<String>,
    /// Herald extension: `full` (default) or `diff`: for a message about an entity, only
    /// what changed since its previous snapshot (nothing is sent when nothing changed).
    #[serde(default)]
    payload: Option<PayloadDto>,
    /// Herald extension: payload paths always sent in a diff (identity keys, e.g. `guid`).
    #[serde(default)]
    diff_keep: Option<Vec<String>>,
}

impl EndpointIn {
    /// The fields PUT also takes, and the secret and headers only create takes.
    fn split(
        self,
    ) -> (
        EndpointUpdate,
        Option<String>,
        Option<BTreeMap<String, String>>,
    ) {
        let update = EndpointUpdate {
            url: self.url,
            description: self.description,
            uid: self.uid,
            version: self.version,
            throttle_rate: self.throttle_rate,
            disabled: self.disabled,
            event_types: self.event_types,
            channels: self.channels,
            metadata: self.metadata,
            filter: self.filter,
            transform: self.transform,
            name: self.name,
            method: self.method,
            envelope: self.envelope,
            party: self.party,
            payload: self.payload,
            diff_keep: self.diff_keep,
        };
        (update, self.secret, self.headers)
    }
}

impl EndpointUpdate {
    /// Sets every field of `endpoint` from this body; an absent uid keeps the current one.
    fn apply(self, endpoint: &mut Endpoint, now: DateTime<Utc>) {
        endpoint.url = destination::url_to_store(&endpoint.url, self.url);
        endpoint.description = self.description.unwrap_or_default();
        endpoint.uid = self.uid.or(endpoint.uid.take());
        endpoint.version = self.version.unwrap_or(endpoint.version);
        endpoint.rate_limit = self.throttle_rate.map(u32::from);
        endpoint.disabled = self.disabled.unwrap_or(false);
        endpoint.filter_types = self.event_types;
        endpoint.channels = self.channels;
        endpoint.metadata = self.metadata.unwrap_or_default();
        endpoint.filter = self.filter;
        endpoint.transform = self.transform;
        endpoint.name = self.name;
        endpoint.method = self.method.map(Into::into).unwrap_or_default();
        endpoint.envelope = self.envelope.map(Into::into).unwrap_or_default();
        endpoint.party = self.party;
        endpoint.payload_mode = self.payload.map(Into::into).unwrap_or_default();
        endpoint.diff_keep = self.diff_keep.unwrap_or_default();
        endpoint.updated_at = now;
    }
}

/// A new endpoint of `app` with default settings, before a body is applied.
fn new_endpoint(app: AppId, secret: Option<String>, now: DateTime<Utc>) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        app_id: app,
        uid: None,
        url: String::new(),
        description: String::new(),
        version: 1,
        rate_limit: None,
        disabled: false,
        filter_types: None,
        channels: None,
        metadata: BTreeMap::new(),
        headers: BTreeMap::new(),
        secret: Secret::from_string(secret.unwrap_or_else(signing::generate_secret)),
        retired_secrets: Vec::new(),
        filter: None,
        transform: None,
        name: None,
        method: Method::Post,
        envelope: Envelope::Raw,
        party: None,
        payload_mode: PayloadMode::Full,
        diff_keep: Vec::new(),
        created_at: now,
        updated_at: now,
        revision: 1,
    }
}

impl Validate for EndpointUpdate {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        check_common(
            &mut problems,
            &self.url,
            self.uid.as_ref(),
            self.throttle_rate,
            self.event_types.as_ref(),
            self.channels.as_ref(),
            self.metadata.as_ref(),
        );
        check_extensions(
            &mut problems,
            self.filter.as_ref(),
            self.transform.as_ref(),
            self.name.as_ref(),
            self.party.as_ref(),
            self.diff_keep.as_ref(),
        );
        problems
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointPatch {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    uid: Patch<String>,
    #[serde(default)]
    version: Option<i32>,
    #[serde(default, alias = "rateLimit")]
    #[schema(value_type = Option<u16>)]
    throttle_rate: Patch<u16>,
    #[serde(default)]
    disabled: Option<bool>,
    #[serde(default, alias = "filterTypes")]
    #[schema(value_type = Option<Vec<String>>)]
    event_types: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    channels: Patch<Vec<String>>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
    /// `null` removes the filter.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filter: Patch<serde_json::Value>,
    /// `null` removes the transform.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    transform: Patch<serde_json::Value>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    name: Patch<String>,
    #[serde(default)]
    method: Option<MethodDto>,
    #[serde(default)]
    envelope: Option<EnvelopeDto>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    party: Patch<String>,
    #[serde(default)]
    payload: Option<PayloadDto>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    diff_keep: Patch<Vec<String>>,
}

impl EndpointPatch {
    /// Whether the patch changes nothing but the filter and the transform.
    fn only_rules(&self) -> bool {
        let Self {
            url,
            description,
            uid,
            version,
            throttle_rate,
            disabled,
            event_types,
            channels,
            metadata,
            filter: _,
            transform: _,
            name,
            method,
            envelope,
            party,
            payload,
            diff_keep,
        } = self;
        url.is_none()
            && description.is_none()
            && *uid == Patch::Absent
            && version.is_none()
            && *throttle_rate == Patch::Absent
            && disabled.is_none()
            && *event_types == Patch::Absent
            && *channels == Patch::Absent
            && metadata.is_none()
            && *name == Patch::Absent
            && method.is_none()
            && envelope.is_none()
            && *party == Patch::Absent
            && payload.is_none()
            && *diff_keep == Patch::Absent
    }
}

impl Validate for EndpointPatch {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        if let Some(url) = &self.url {
            validate::endpoint_url(&mut problems, &["body", "url"], url);
        }
        if let Some(uid) = self.uid.value() {
            validate::uid(&mut problems, &["body", "uid"], uid, EndpointId::PREFIX);
        }
        if self.throttle_rate == Patch::Value(0) {
            problems.push(ValidationErrorItem::new(
                &["body", "throttleRate"],
                "must be at least 1",
            ));
        }
        if let Some(types) = self.event_types.value() {
            validate::name_list(
                &mut problems,
                &["body", "eventTypes"],
                types,
                (1, 1000),
                256,
            );
        }
        if let Some(channels) = self.channels.value() {
            validate::name_list(&mut problems, &["body", "channels"], channels, (1, 10), 128);
        }
        if let Some(metadata) = &self.metadata {
            validate::metadata(&mut problems, &["body", "metadata"], metadata);
        }
        check_extensions(
            &mut problems,
            self.filter.value(),
            self.transform.value(),
            self.name.value(),
            self.party.value(),
            self.diff_keep.value(),
        );
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointOut {
    id: String,
    uid: Option<String>,
    url: String,
    description: String,
    version: i32,
    throttle_rate: Option<u32>,
    disabled: bool,
    event_types: Option<Vec<String>>,
    channels: Option<Vec<String>>,
    metadata: BTreeMap<String, String>,
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    transform: Option<serde_json::Value>,
    name: Option<String>,
    method: MethodDto,
    envelope: EnvelopeDto,
    party: Option<String>,
    payload: PayloadDto,
    diff_keep: Vec<String>,
    #[serde(serialize_with = "crate::time::serialize")]
    created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::time::serialize")]
    updated_at: DateTime<Utc>,
}

impl From<Endpoint> for EndpointOut {
    fn from(ep: Endpoint) -> Self {
        Self {
            id: ep.id.into_string(),
            uid: ep.uid,
            url: destination::masked_url(&ep.url).into_owned(),
            description: ep.description,
            version: ep.version,
            throttle_rate: ep.rate_limit,
            disabled: ep.disabled,
            event_types: ep.filter_types,
            channels: ep.channels,
            metadata: ep.metadata,
            filter: ep.filter,
            transform: ep.transform,
            name: ep.name,
            method: ep.method.into(),
            envelope: ep.envelope.into(),
            party: ep.party,
            payload: ep.payload_mode.into(),
            diff_keep: ep.diff_keep,
            created_at: ep.created_at,
            updated_at: ep.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
struct EndpointSecretOut {
    key: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointSecretRotateIn {
    /// The new secret; generated when absent.
    #[serde(default)]
    key: Option<String>,
    /// How long the old secret keeps signing, in seconds (0 to 604800, default 86400).
    #[serde(default)]
    grace_period_seconds: Option<u32>,
}

impl Validate for EndpointSecretRotateIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        if let Some(key) = &self.key {
            validate::secret(&mut problems, &["body", "key"], key);
        }
        if self.grace_period_seconds.is_some_and(|g| g > 604_800) {
            problems.push(ValidationErrorItem::new(
                &["body", "gracePeriodSeconds"],
                "must be at most 604800 (7 days)",
            ));
        }
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct EndpointHeadersOut {
    headers: BTreeMap<String, String>,
    sensitive: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
struct EndpointHeadersIn {
    headers: BTreeMap<String, String>,
}

impl Validate for EndpointHeadersIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        validate::headers(
            &mut problems,
            &["body", "headers"],
            self.headers.iter().map(|(k, v)| (k, Some(v))),
        );
        problems
    }
}

/// PATCH body: `null` values (or names in `deleteHeaders`) remove headers.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct EndpointHeadersPatchIn {
    headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    delete_headers: Option<Vec<String>>,
}

impl Validate for EndpointHeadersPatchIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        validate::headers(
            &mut problems,
            &["body", "headers"],
            self.headers.iter().map(|(k, v)| (k, v.as_ref())),
        );
        problems
    }
}

#[derive(Debug, Deserialize, ToSchema)]
struct RecoverIn {
    #[serde(deserialize_with = "crate::time::deserialize")]
    since: DateTime<Utc>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    until: Option<DateTime<Utc>>,
}

impl Validate for RecoverIn {}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct RecoverOut {
    id: String,
    status: &'static str,
    task: &'static str,
    /// How many failed deliveries were made pending again (Herald extension).
    recovered: u64,
    #[serde(serialize_with = "crate::time::serialize")]
    updated_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
struct EndpointStats {
    success: u64,
    pending: u64,
    sending: u64,
    fail: u64,
    canceled: u64,
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
}

impl Validate for ListQuery {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        paging(self.limit, &self.iterator).problems()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StatsQuery {
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "crate::time::deserialize_opt")]
    #[param(value_type = Option<String>, format = DateTime)]
    until: Option<DateTime<Utc>>,
}

impl Validate for StatsQuery {}

/// Loads an application and one of its endpoints by id or uid, or answers 404.
pub(crate) async fn load(
    state: &AppState,
    app_id: &str,
    endpoint_id: &str,
) -> ApiResult<(Application, Endpoint)> {
    let app = applications::load(state, app_id).await?;
    let endpoint = state
        .store
        .get_endpoint(&app.id, endpoint_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok((app, endpoint))
}

/// How often `edit` applies a change again when another write landed between its read
/// and its write (each round, one of the racing writers wins).
const EDIT_TRIES: usize = 16;

/// Reads, changes and writes an endpoint as one compare-and-set on its revision, so two
/// editors never silently lose each other's change. Without `If-Match`, a change that
/// lost a race is applied again to what the other write left (as a PATCH means); with
/// `If-Match: "<revision>"` (the `ETag` of a read), the write happens only if nothing
/// changed since that read, else 412.
async fn edit(
    state: &AppState,
    app_id: &str,
    endpoint_id: &str,
    headers: &HeaderMap,
    change: impl Fn(&mut Endpoint) -> ApiResult<()>,
) -> ApiResult<Endpoint> {
    let expected = if_match(headers)?;
    for _ in 0..EDIT_TRIES {
        let (_, mut endpoint) = load(state, app_id, endpoint_id).await?;
        let read = endpoint.revision;
        if expected.is_some_and(|rev| rev != read) {
            return Err(ApiError::PreconditionFailed);
        }
        let was_disabled = endpoint.disabled;
        change(&mut endpoint)?;
        endpoint.updated_at = state.clock.now();
        match state.store.update_endpoint(endpoint, read).await {
            Ok(endpoint) => {
                // Disabled or enabled by hand: a failure streak from before says nothing
                // about the endpoint from now on.
                if endpoint.disabled != was_disabled
                    && let Err(err) = state.store.clear_failing(&endpoint.id).await
                {
                    tracing::warn!(error = %err, endpoint_id = %endpoint.id, "ending the failure streak of an endpoint enabled or disabled by hand failed");
                }
                return Ok(endpoint);
            }
            Err(StoreError::Changed) if expected.is_none() => continue,
            Err(StoreError::Changed) => return Err(ApiError::PreconditionFailed),
            Err(err) => return Err(err.into()),
        }
    }
    Err(StoreError::Changed.into())
}

/// The revision an `If-Match` header names: `None` without one (or with `*`). One that
/// names no revision can match nothing: 412.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<u64>> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::PreconditionFailed)?
        .trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .and_then(|t| t.parse().ok())
        .map(Some)
        .ok_or(ApiError::PreconditionFailed)
}

/// An endpoint's revision, answered as its `ETag`, for `If-Match` on a later write.
struct Revision(u64);

impl IntoResponseParts for Revision {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        if let Ok(value) = HeaderValue::from_str(&format!("\"{}\"", self.0)) {
            res.headers_mut().insert(header::ETAG, value);
        }
        Ok(res)
    }
}

/// List an application's endpoints (newest first by default).
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path), ListQuery),
    responses((status = 200, body = ListResponse<EndpointOut>)))]
async fn list_endpoints(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidQuery(query): ValidQuery<ListQuery>,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let app = applications::load(&state, &app_id).await?;
    let (page, back) =
        paging(query.limit, &query.iterator).page(order_of(query.order, Order::Descending));
    let rows = state.store.list_endpoints(&app.id, &page).await?;
    Ok(Json(ListResponse::from_rows(
        rows,
        &page,
        back,
        |e| e.id.to_string(),
        EndpointOut::from,
    )))
}

/// Create an endpoint.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint", tag = "Endpoint",
    params(("app_id" = String, Path)), request_body = EndpointIn,
    responses((status = 201, body = EndpointOut), (status = 422, body = crate::error::HttpValidationError)))]
async fn create_endpoint(
    State(state): State<AppState>,
    ValidPath(app_id): ValidPath<String>,
    ValidJson(body): ValidJson<EndpointIn>,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = applications::load(&state, &app_id).await?;
    let now = state.clock.now();
    let (fields, secret, headers) = body.split();
    let mut endpoint = new_endpoint(app.id, secret, now);
    endpoint.headers = headers.unwrap_or_default();
    fields.apply(&mut endpoint, now);
    check_combination(&endpoint)?;
    let endpoint = state.store.create_endpoint(endpoint).await?;
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

/// Get an endpoint by id or uid.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointOut, headers(("ETag" = String, description = "The endpoint's revision, for If-Match"))), (status = 404, body = crate::error::HttpErrorOut)))]
async fn get_endpoint(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
) -> ApiResult<(Revision, Json<EndpointOut>)> {
    let (_, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    Ok((Revision(endpoint.revision), Json(endpoint.into())))
}

/// Update an endpoint, creating it if missing (upsert).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), ("If-Match" = Option<String>, Header, description = "Write only if the endpoint is still at this revision (its ETag), else 412")), request_body = EndpointUpdate,
    responses((status = 200, body = EndpointOut, headers(("ETag" = String, description = "The endpoint's revision, for If-Match"))), (status = 201, body = EndpointOut, headers(("ETag" = String, description = "The endpoint's revision, for If-Match"))), (status = 412, body = crate::error::HttpErrorOut)))]
async fn update_endpoint(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<EndpointUpdate>,
) -> ApiResult<(StatusCode, Revision, Json<EndpointOut>)> {
    let app = applications::load(&state, &app_id).await?;
    let now = state.clock.now();
    let existing = state.store.get_endpoint(&app.id, &endpoint_id).await?;
    let Some(existing) = existing else {
        if if_match(&headers)?.is_some() {
            return Err(ApiError::PreconditionFailed);
        }
        let mut endpoint = new_endpoint(app.id.clone(), None, now);
        body.apply(&mut endpoint, now);
        // A new endpoint named by uid in the path gets that uid unless the body has one.
        if endpoint.uid.is_none() && !EndpointId::looks_like(&endpoint_id) {
            endpoint.uid = Some(endpoint_id.clone());
        }
        check_combination(&endpoint)?;
        let endpoint = state.store.create_endpoint(endpoint).await?;
        return Ok((
            StatusCode::CREATED,
            Revision(endpoint.revision),
            Json(endpoint.into()),
        ));
    };
    let endpoint = edit(
        &state,
        &app_id,
        existing.id.as_str(),
        &headers,
        |endpoint| {
            body.clone().apply(endpoint, now);
            check_combination(endpoint)
        },
    )
    .await?;
    Ok((
        StatusCode::OK,
        Revision(endpoint.revision),
        Json(endpoint.into()),
    ))
}

/// Change some fields of an endpoint.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), ("If-Match" = Option<String>, Header, description = "Write only if the endpoint is still at this revision (its ETag), else 412")), request_body = EndpointPatch,
    responses((status = 200, body = EndpointOut, headers(("ETag" = String, description = "The endpoint's revision, for If-Match"))), (status = 412, body = crate::error::HttpErrorOut)))]
async fn patch_endpoint(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    ValidJson(patch): ValidJson<EndpointPatch>,
) -> ApiResult<(Revision, Json<EndpointOut>)> {
    // A token that may change only filters and transforms (`ManageTransformations`
    // without `ManageEndpoint`) changes nothing else.
    if let Principal::App { capabilities, .. } = &principal
        && !capabilities.has(Capability::ManageEndpoint)
        && !patch.only_rules()
    {
        return Err(ApiError::Forbidden(
            "this token can change only `filter` and `transform` (ManageTransformations); \
             anything else needs the ManageEndpoint capability"
                .into(),
        ));
    }
    let endpoint = edit(&state, &app_id, &endpoint_id, &headers, |endpoint| {
        apply_patch(patch.clone(), endpoint);
        check_combination(endpoint)
    })
    .await?;
    Ok((Revision(endpoint.revision), Json(endpoint.into())))
}

fn apply_patch(patch: EndpointPatch, endpoint: &mut Endpoint) {
    if let Some(url) = patch.url {
        endpoint.url = destination::url_to_store(&endpoint.url, url);
    }
    if let Some(description) = patch.description {
        endpoint.description = description;
    }
    patch.uid.apply_opt(&mut endpoint.uid);
    if let Some(version) = patch.version {
        endpoint.version = version;
    }
    let mut rate = endpoint
        .rate_limit
        .map(|r| u16::try_from(r).unwrap_or(u16::MAX));
    patch.throttle_rate.apply_opt(&mut rate);
    endpoint.rate_limit = rate.map(u32::from);
    if let Some(disabled) = patch.disabled {
        endpoint.disabled = disabled;
    }
    patch.event_types.apply_opt(&mut endpoint.filter_types);
    patch.channels.apply_opt(&mut endpoint.channels);
    if let Some(metadata) = patch.metadata {
        endpoint.metadata = metadata;
    }
    patch.filter.apply_opt(&mut endpoint.filter);
    patch.transform.apply_opt(&mut endpoint.transform);
    patch.name.apply_opt(&mut endpoint.name);
    if let Some(method) = patch.method {
        endpoint.method = method.into();
    }
    if let Some(envelope) = patch.envelope {
        endpoint.envelope = envelope.into();
    }
    patch.party.apply_opt(&mut endpoint.party);
    if let Some(payload) = patch.payload {
        endpoint.payload_mode = payload.into();
    }
    let mut keep = Some(std::mem::take(&mut endpoint.diff_keep));
    patch.diff_keep.apply_opt(&mut keep);
    endpoint.diff_keep = keep.unwrap_or_default();
}

/// Delete an endpoint with its deliveries and attempts.
#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), responses((status = 204)))]
async fn delete_endpoint(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
) -> ApiResult<StatusCode> {
    let (app, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    state.store.delete_endpoint(&app.id, &endpoint.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Get the endpoint's current signing secret.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointSecretOut)))]
async fn get_endpoint_secret(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
) -> ApiResult<Json<EndpointSecretOut>> {
    let (_, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut {
        key: endpoint.secret.expose().to_owned(),
    }))
}

/// Rotate the signing secret. The old secret keeps signing (both signatures are sent)
/// for the grace period. Answers with the new secret, as the Svix SDK expects.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), ("If-Match" = Option<String>, Header, description = "Write only if the endpoint is still at this revision (its ETag), else 412")), request_body = EndpointSecretRotateIn,
    responses((status = 200, body = EndpointSecretOut), (status = 400, body = crate::error::HttpErrorOut), (status = 412, body = crate::error::HttpErrorOut)))]
async fn rotate_endpoint_secret(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<EndpointSecretRotateIn>,
) -> ApiResult<Json<EndpointSecretOut>> {
    let now = state.clock.now();
    let grace = chrono::Duration::seconds(i64::from(body.grace_period_seconds.unwrap_or(86_400)));
    let new_secret = Secret::from_string(body.key.unwrap_or_else(signing::generate_secret));
    edit(&state, &app_id, &endpoint_id, &headers, |endpoint| {
        endpoint.retired_secrets.retain(|r| r.expires_at > now);
        if endpoint.retired_secrets.len() >= MAX_RETIRED_SECRETS {
            return Err(ApiError::BadRequest {
                code: "limit_reached",
                detail: format!(
                    "At most {MAX_RETIRED_SECRETS} old secrets can be in their grace period; wait for one to expire."
                ),
            });
        }
        let old = std::mem::replace(&mut endpoint.secret, new_secret.clone());
        if !grace.is_zero() {
            endpoint.retired_secrets.push(RetiredSecret {
                secret: old,
                expires_at: now + grace,
            });
        }
        Ok(())
    })
    .await?;
    Ok(Json(EndpointSecretOut {
        key: new_secret.expose().to_owned(),
    }))
}

/// Get the endpoint's custom headers.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)),
    responses((status = 200, body = EndpointHeadersOut)))]
async fn get_endpoint_headers(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let (_, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    Ok(Json(EndpointHeadersOut {
        headers: endpoint.headers,
        sensitive: Vec::new(),
    }))
}

/// Replace the endpoint's custom headers.
#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), ("If-Match" = Option<String>, Header, description = "Write only if the endpoint is still at this revision (its ETag), else 412")), request_body = EndpointHeadersIn,
    responses((status = 204), (status = 412, body = crate::error::HttpErrorOut)))]
async fn update_endpoint_headers(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<EndpointHeadersIn>,
) -> ApiResult<StatusCode> {
    edit(&state, &app_id, &endpoint_id, &headers, |endpoint| {
        endpoint.headers = body.headers.clone();
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set, change or remove some custom headers.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), ("If-Match" = Option<String>, Header, description = "Write only if the endpoint is still at this revision (its ETag), else 412")), request_body = EndpointHeadersPatchIn,
    responses((status = 204), (status = 412, body = crate::error::HttpErrorOut)))]
async fn patch_endpoint_headers(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    headers: HeaderMap,
    ValidJson(body): ValidJson<EndpointHeadersPatchIn>,
) -> ApiResult<StatusCode> {
    edit(&state, &app_id, &endpoint_id, &headers, |endpoint| {
        for (name, value) in body.headers.clone() {
            match value {
                Some(value) => endpoint.headers.insert(name, value),
                None => endpoint.headers.remove(&name),
            };
        }
        for name in body.delete_headers.clone().unwrap_or_default() {
            endpoint.headers.remove(&name);
        }
        let mut problems = Vec::new();
        validate::headers(
            &mut problems,
            &["body", "headers"],
            endpoint.headers.iter().map(|(k, v)| (k, Some(v))),
        );
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(problems))
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resend every failed delivery to this endpoint created since a time.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = RecoverIn,
    responses((status = 202, body = RecoverOut)))]
async fn recover_failed_webhooks(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    ValidJson(body): ValidJson<RecoverIn>,
) -> ApiResult<(StatusCode, Json<RecoverOut>)> {
    let (app, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    let now = state.clock.now();
    let recovered = state
        .store
        .recover(&app.id, &endpoint.id, body.since, body.until, now)
        .await?;
    state.dispatcher.wake();
    Ok((
        StatusCode::ACCEPTED,
        Json(RecoverOut {
            id: model::new_id("qtask"),
            status: "finished",
            task: "endpoint.recover",
            recovered,
            updated_at: now,
        }),
    ))
}

/// Deliveries to this endpoint by status.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path), StatsQuery),
    responses((status = 200, body = EndpointStats)))]
async fn get_endpoint_stats(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    ValidQuery(query): ValidQuery<StatsQuery>,
) -> ApiResult<Json<EndpointStats>> {
    let (app, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    let counts = state
        .store
        .endpoint_stats(&app.id, &endpoint.id, query.since, query.until)
        .await?;
    Ok(Json(EndpointStats {
        success: counts.success,
        pending: counts.pending,
        sending: counts.sending,
        fail: counts.fail,
        canceled: 0,
    }))
}

/// A sample event to test a filter against.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct FilterTestIn {
    event_type: String,
    #[schema(value_type = Object)]
    payload: serde_json::Value,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    /// The entity's previous snapshot, to try `previous.…`, `$changed` and diffs.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    previous: Option<serde_json::Value>,
    /// The filter to try; the endpoint's own when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    filter: Option<serde_json::Value>,
    /// The transform to apply first; the endpoint's own when absent.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    transform: Option<serde_json::Value>,
}

impl Validate for FilterTestIn {
    fn validate(&self) -> Vec<ValidationErrorItem> {
        let mut problems = Vec::new();
        // As on publish: a payload, and so an entity's snapshot, is a JSON object.
        if !self.payload.is_object() {
            problems.push(ValidationErrorItem::new(
                &["body", "payload"],
                "must be a JSON object",
            ));
        }
        if self.previous.as_ref().is_some_and(|p| !p.is_object()) {
            problems.push(ValidationErrorItem::new(
                &["body", "previous"],
                "must be a JSON object",
            ));
        }
        if let Some(filter) = &self.filter {
            validate::filter(&mut problems, &["body", "filter"], filter);
        }
        if let Some(transform) = &self.transform {
            validate::transform(&mut problems, &["body", "transform"], transform);
        }
        problems
    }
}

#[derive(Debug, Serialize, ToSchema)]
struct FilterTestOut {
    /// Whether the event would be delivered to this endpoint: the filter holds and, for a
    /// diff endpoint, something changed.
    matches: bool,
    /// The document the filter saw (after the transform).
    #[schema(value_type = Object)]
    event: serde_json::Value,
    /// The payload the endpoint would receive (transformed, or the diff), before any
    /// envelope.
    #[schema(value_type = Object)]
    body: serde_json::Value,
}

/// Herald extension: apply the transform and evaluate the filter (the endpoint's, or ones
/// given) on a sample event. Nothing is stored or sent.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/filter/test", tag = "Endpoint",
    params(("app_id" = String, Path), ("endpoint_id" = String, Path)), request_body = FilterTestIn,
    responses((status = 200, body = FilterTestOut), (status = 422, body = crate::error::HttpValidationError)))]
async fn test_endpoint_filter(
    State(state): State<AppState>,
    ValidPath((app_id, endpoint_id)): ValidPath<(String, String)>,
    ValidJson(body): ValidJson<FilterTestIn>,
) -> ApiResult<Json<FilterTestOut>> {
    let (_, endpoint) = load(&state, &app_id, &endpoint_id).await?;
    let document = dispatch::event_document(
        &body.event_type,
        body.channels.as_deref(),
        body.tags.as_deref(),
        body.payload,
        body.previous,
    );
    let diff_keep = (endpoint.payload_mode == PayloadMode::Diff).then_some(&endpoint.diff_keep[..]);
    let preview = dispatch::preview(
        body.filter.as_ref().or(endpoint.filter.as_ref()),
        body.transform.as_ref().or(endpoint.transform.as_ref()),
        diff_keep,
        &document,
    )
    .map_err(|(kind, err)| {
        let field = match kind {
            dispatch::RuleKind::Filter => "filter",
            dispatch::RuleKind::Transform => "transform",
            dispatch::RuleKind::DiffKeep => "diffKeep",
        };
        ApiError::invalid(&["endpoint", field], err.to_string())
    })?;
    Ok(Json(FilterTestOut {
        matches: preview.matches,
        event: preview.event,
        body: preview.body,
    }))
}
