//! Storage behind one trait, in the pipeline's verbs: insert a message with its
//! deliveries, lease due deliveries, record an attempt, and the listings the API shows.
//!
//! `embedded` (SQLite, the default) is the only backend today; `conformance` is the
//! suite every backend must pass. Nothing outside this crate knows which backend runs.

mod conformance;
mod embedded;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, DeliveryId, Endpoint, EndpointId,
    EventType, Message, MessageId, Status, TokenId,
};

pub use conformance::conformance;
pub use embedded::{EmbeddedConfig, EmbeddedStore};

/// What a store operation can fail with, shaped for the caller's branches.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the text names it (e.g. "eventId already exists").
    #[error("{0}")]
    Conflict(String),
    /// The backend failed (disk full, I/O error, corruption). Nothing was written.
    #[error("storage failed")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Ascending,
    Descending,
}

/// A page request: at most `limit` items strictly after `cursor` in `order`.
/// The store returns up to `limit + 1` items so the caller can tell whether it is done.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub limit: usize,
    pub cursor: Option<String>,
    pub order: Order,
}

/// A message with its deliveries, to be stored in one transaction.
#[derive(Debug)]
pub struct NewMessage {
    pub message: Message,
    pub deliveries: Deliveries,
    pub idempotency_key: Option<String>,
}

/// The deliveries of a new message.
pub enum Deliveries {
    Known(Vec<NewDelivery>),
    /// For a message about an entity, whose deliveries depend on the entity's previous
    /// snapshot: called inside the transaction that reads and replaces the snapshot, with
    /// that snapshot, so concurrent messages about one entity each see their predecessor.
    /// It runs on the store's writer: keep it to the fan-out decision.
    FromPrevious(Decide),
}

/// Decides a message's deliveries from its entity's previous snapshot.
/// The store may call it more than once (a write whose group is rolled back runs again).
pub type Decide = Box<dyn Fn(Option<&str>) -> Vec<NewDelivery> + Send>;

impl std::fmt::Debug for Deliveries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Known(deliveries) => f.debug_tuple("Known").field(deliveries).finish(),
            Self::FromPrevious(_) => f.write_str("FromPrevious(..)"),
        }
    }
}

/// One delivery created at ingest.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub id: DeliveryId,
    pub endpoint_id: EndpointId,
    /// When set, the delivery is created leased to this process until then: the caller
    /// has queued it in memory and will attempt it without a poll.
    pub leased_until: Option<DateTime<Utc>>,
}

/// What `insert_message` did.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// Stored, with these deliveries; `previous` is the entity snapshot the message
    /// replaced (always `None` for a message without an entity).
    Created {
        previous: Option<Arc<str>>,
        deliveries: Vec<NewDelivery>,
    },
    /// The idempotency key was seen before; this is the message it created then.
    Existing(Box<Message>),
}

/// What a poll asks of `lease_due`: how many due deliveries it can hold, in all and per
/// endpoint, and where the endpoints' turns start.
#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub now: DateTime<Utc>,
    /// The lease's end: until then no other poll takes the delivery.
    pub leased_until: DateTime<Utc>,
    /// Deliveries leased at most, in all.
    pub limit: usize,
    /// Deliveries leased at most from one endpoint, unless `room` names it.
    pub per_endpoint: usize,
    /// Endpoints with room for fewer than `per_endpoint` (0: none this time).
    pub room: std::collections::HashMap<EndpointId, usize>,
    /// Endpoints take turns in id order, starting after this one and wrapping around, so
    /// when `limit` is reached the next poll serves the ones this one did not reach.
    pub after: Option<EndpointId>,
}

impl LeaseRequest {
    /// Up to `limit` due deliveries, however they are spread over endpoints.
    pub fn new(now: DateTime<Utc>, leased_until: DateTime<Utc>, limit: usize) -> Self {
        Self {
            now,
            leased_until,
            limit,
            per_endpoint: limit,
            room: std::collections::HashMap::new(),
            after: None,
        }
    }
}

/// What `lease_due` leased, and where the next poll's turns start.
#[derive(Debug, Clone, Default)]
pub struct Leased {
    /// Grouped by endpoint, in turn order; each endpoint's oldest due first.
    pub due: Vec<DueDelivery>,
    /// The last endpoint this poll visited: the next poll starts after it (its
    /// `LeaseRequest::after`). A store may end a poll's round early (the embedded one after
    /// `TURNS_PER_POLL` endpoints), so that a poll costs the same however many endpoints
    /// have deliveries waiting; the next poll goes on from here.
    pub resume_after: Option<EndpointId>,
}

/// A delivery that is due, with its message, as leased by `lease_due`.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub message: Message,
}

/// The state a delivery moves to after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryUpdate {
    pub status: Status,
    pub attempts: u32,
    /// The next attempt, for a pending delivery.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// One finished attempt and the state its delivery moves to.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub attempt: Attempt,
    pub update: DeliveryUpdate,
}

/// Filters for message listings.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Option<Vec<String>>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// Filters for attempt listings (by message or by endpoint).
#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub msg_id: Option<MessageId>,
    pub endpoint_id: Option<EndpointId>,
    pub status: Option<Status>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// Which deliveries of an endpoint to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<Status>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
}

/// Deliveries of an endpoint counted by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusCounts {
    pub success: u64,
    pub pending: u64,
    pub fail: u64,
    pub sending: u64,
}

/// Storage in the pipeline's verbs. Every method is atomic: on `Err`, nothing was written.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Applications.
    async fn create_app(&self, app: Application) -> Result<Application>;
    /// Looks up an application by id or by uid.
    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>>;
    async fn list_apps(&self, page: &Page) -> Result<Vec<Application>>;
    async fn update_app(&self, app: Application) -> Result<Application>;
    /// Deletes an application with its endpoints, messages, deliveries and attempts.
    async fn delete_app(&self, id: &AppId) -> Result<()>;

    // Event types.
    async fn create_event_type(&self, event_type: EventType) -> Result<EventType>;
    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>>;
    async fn list_event_types(&self, page: &Page, include_archived: bool)
    -> Result<Vec<EventType>>;
    async fn update_event_type(&self, event_type: EventType) -> Result<EventType>;
    async fn delete_event_type(&self, name: &str) -> Result<()>;

    // Endpoints.
    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint>;
    /// Looks up an endpoint of `app` by id or by uid.
    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>>;
    async fn list_endpoints(&self, app: &AppId, page: &Page) -> Result<Vec<Endpoint>>;
    /// All endpoints of an application, for fan-out and attempts. Backends may cache this;
    /// it reflects every endpoint write that completed before the call.
    async fn app_endpoints(&self, app: &AppId) -> Result<Arc<Vec<Endpoint>>>;
    async fn update_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint>;
    /// Disables an endpoint of `app` (a receiver answered 410 Gone), updated at `at`.
    /// Returns whether this call disabled it (`false`: it was disabled already).
    async fn disable_endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()>;

    // Ingest.
    /// Stores a message and its deliveries in one durable transaction. A duplicate
    /// `eventId` in the application is a `Conflict`; a repeated idempotency key returns
    /// the earlier message and writes nothing.
    async fn insert_message(&self, new: NewMessage) -> Result<Inserted>;
    /// Looks up a message of `app` by id or by `eventId`.
    async fn get_message(&self, app: &AppId, id_or_event_id: &str) -> Result<Option<Message>>;
    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>>;

    // Delivery pipeline.
    /// Leases pending deliveries due at `request.now` until `request.leased_until`, within
    /// `request.limit`: first those whose lease ran out, whatever their endpoint's room (a
    /// process may still hold them in memory; leasing them again keeps them from later
    /// polls); then endpoints take turns in id order (after `request.after`), each giving
    /// its oldest due first, up to its room.
    async fn lease_due(&self, request: LeaseRequest) -> Result<Leased>;
    /// Gives leased deliveries back, due at `now` (on shutdown, for those never attempted).
    /// A delivery is named by its message and endpoint.
    async fn release(
        &self,
        deliveries: &[(MessageId, EndpointId)],
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Gives back every lease. Only a single-node store may call this, at start-up.
    async fn release_all_leases(&self, now: DateTime<Utc>) -> Result<u64>;
    /// Records attempts and moves each delivery to its update, all in one transaction.
    async fn record_attempts(&self, records: Vec<AttemptRecord>) -> Result<()>;
    /// Makes the delivery of `msg` to `endpoint` pending again for a manual attempt now,
    /// creating it if the message never went to that endpoint. Returns it.
    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<Delivery>;
    /// Makes every failed delivery of `endpoint` created in `[since, until)` pending again
    /// for a manual attempt now. Returns how many.
    async fn recover(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64>;

    /// Forgets idempotency keys recorded before `created_before`. Returns how many.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> Result<u64>;
    /// Drops entity snapshots last updated before `updated_before`. Returns how many.
    async fn prune_entities(&self, updated_before: DateTime<Utc>) -> Result<u64>;

    // Endpoint health, for disabling endpoints that keep failing.
    /// Records that `endpoint` of `app` has failed continuously since `since`, unless it
    /// is already recorded as failing (the earlier time is kept).
    async fn mark_failing(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<()>;
    /// Forgets that `endpoint` was failing (it succeeded, or was disabled).
    async fn clear_failing(&self, endpoint: &EndpointId) -> Result<()>;
    /// Every endpoint recorded as failing, with the time it started.
    async fn failing_endpoints(&self) -> Result<Vec<(EndpointId, DateTime<Utc>)>>;

    // Application-scoped API tokens.
    async fn create_token(&self, token: ApiToken) -> Result<ApiToken>;
    /// The token whose SHA-256 digest (lowercase hex) is `digest`, revoked or not.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>>;
    /// The application's tokens, newest first.
    async fn list_tokens(&self, app: &AppId) -> Result<Vec<ApiToken>>;
    /// Revokes a token of `app` at `at` (`NotFound` if `app` has no such token; revoking
    /// twice keeps the first time).
    async fn revoke_token(&self, app: &AppId, id: &TokenId, at: DateTime<Utc>) -> Result<()>;

    // Inspection.
    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>>;
    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>>;
    /// Deliveries of one message, one per endpoint it went to.
    async fn list_message_deliveries(
        &self,
        app: &AppId,
        msg: &MessageId,
        page: &Page,
    ) -> Result<Vec<Delivery>>;
    /// Deliveries to one endpoint, with their messages.
    async fn list_endpoint_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>>;
    async fn endpoint_stats(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<StatusCounts>;
}
