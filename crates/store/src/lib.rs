//! Storage behind one trait, in the pipeline's verbs: insert a message with its
//! deliveries, lease due deliveries, record an attempt, and the listings the API shows.
//!
//! Each backend is a crate of its own beside this one (`store-sqlite`, the embedded
//! default), so that nothing else compiles a database driver; `conformance` is the suite
//! every backend must pass.
//!
//! Several nodes may share one store. A delivery is attempted only under a lease: the
//! node that holds it (`NodeId`) and the lease's fencing generation (`Lease`). Every
//! write about a leased delivery (record, release, renew) names both, and a store applies
//! it only while they are still the delivery's, so a node whose lease ran out and was
//! taken over can never overwrite what the node that took over recorded.

pub mod batching;
pub mod conformance;
mod throttle;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, DeliveryId, Endpoint, EndpointId,
    EventType, Message, MessageId, Status, TokenId,
};

pub use conformance::conformance;
pub use throttle::next_slot;

/// What a store operation can fail with, shaped for the caller's branches. On every
/// error, nothing was written.
#[derive(Debug, thiserror::Error, Clone)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated; the text names it (e.g. "eventId already exists").
    #[error("{0}")]
    Conflict(String),
    /// A compare-and-set found the row changed by another write since it was read.
    #[error("changed since it was read")]
    Changed,
    /// The store has no room left (a full disk, or the configured size cap).
    #[error("storage is full")]
    StorageFull(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The store cannot be reached now (a database restarting, a lost connection); the
    /// same call may succeed later.
    #[error("storage is unavailable")]
    Unavailable(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// The backend failed otherwise (I/O error, corruption, a bug).
    #[error("storage failed")]
    Backend(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

/// A Herald process sharing a store with others: the owner of the leases it takes. Each
/// process picks a new one when it starts, so a restarted node never mistakes its
/// predecessor's leases for its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// A new random node id (63 bits, so backends can keep it in a signed integer).
    pub fn generate() -> Self {
        Self(rand_u63())
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node-{:016x}", self.0)
    }
}

fn rand_u63() -> u64 {
    rand::random::<u64>() >> 1
}

/// The lease under which a node attempts a delivery: its owner and its fencing
/// generation. The generation grows each time the delivery is leased, so a lease that ran
/// out and was taken over (by any node, the same one included) is told from the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease {
    pub owner: NodeId,
    pub generation: u64,
}

/// The generation of a delivery created leased by `insert_message`.
pub const FIRST_GENERATION: u64 = 1;

/// A leased delivery, as named by the writes that need its lease (release, renew).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasedDelivery {
    pub msg_id: MessageId,
    pub endpoint_id: EndpointId,
    pub generation: u64,
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
    /// The node the deliveries with a `leased_until` are leased to (generation
    /// `FIRST_GENERATION`).
    pub owner: NodeId,
    pub deliveries: Deliveries,
    pub idempotency_key: Option<String>,
}

/// The deliveries of a new message.
pub enum Deliveries {
    Known(Vec<NewDelivery>),
    /// For a message about an entity, whose deliveries depend on the entity's previous
    /// snapshot: called inside the transaction that reads and replaces the snapshot, with
    /// that snapshot, so concurrent messages about one entity each see their predecessor.
    /// It runs while the store's transaction is open: keep it to the fan-out decision.
    FromPrevious(Decide),
}

/// Decides a message's deliveries from its entity's previous snapshot.
/// The store may call it more than once (a transaction that is retried runs it again).
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
    /// When set, the delivery is created leased to `NewMessage::owner` until then: the
    /// caller has queued it in memory and will attempt it without a poll.
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
    /// The node the leases go to.
    pub owner: NodeId,
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
    /// Up to `limit` due deliveries for `owner`, however they are spread over endpoints.
    pub fn new(
        owner: NodeId,
        now: DateTime<Utc>,
        leased_until: DateTime<Utc>,
        limit: usize,
    ) -> Self {
        Self {
            owner,
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
    /// `LeaseRequest::after`). A store may end a poll's round early, after a bounded number
    /// of endpoints, so that a poll costs the same however many endpoints have deliveries
    /// waiting; the next poll goes on from here.
    pub resume_after: Option<EndpointId>,
}

/// A delivery that is due, with its message, as leased by `lease_due`.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub delivery: Delivery,
    pub message: Message,
    /// The new lease's generation.
    pub generation: u64,
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
    /// The generation of the lease the attempt was made under.
    pub generation: u64,
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

/// Endpoints an operator should look at, across every application.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attention {
    /// Endpoints failing now, with the start of their failure streak, oldest first.
    pub failing: Vec<(Endpoint, DateTime<Utc>)>,
    /// Disabled endpoints (by the API, or by Herald for failing too long), most recently
    /// changed first.
    pub disabled: Vec<Endpoint>,
}

/// What `/metrics` shows of the store, across every node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    /// Deliveries not finished: due or scheduled, held by a node or not.
    pub pending: u64,
    /// Deliveries due and held by no node (waiting for a poll).
    pub waiting_due: u64,
    /// When the longest-waiting of those became due.
    pub oldest_waiting_due: Option<DateTime<Utc>>,
    /// The store's size on disk, in bytes.
    pub size_bytes: u64,
}

/// One batch of `purge_messages`: what to remove and how much at most.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeRequest {
    pub app: AppId,
    /// Messages accepted before this (their id's time) are past retention.
    pub before: DateTime<Utc>,
    /// Where the batch starts: after this message (`Purged::next` of the batch before).
    pub after: Option<MessageId>,
    /// Messages looked at, at most.
    pub max_messages: usize,
    /// Rows removed (deliveries and attempts), at most, give or take one message's: a
    /// batch ends after the message that reaches it, so that one batch never holds the
    /// store for long, however many endpoints a message went to.
    pub max_rows: usize,
}

/// The SQL condition, on a message `m`, that keeps it past retention for its entity: it
/// is its entity's snapshot, or the previous snapshot of a message with a delivery
/// unfinished. The same in both SQL backends, so written once.
pub const KEPT_FOR_ITS_ENTITY: &str = "\
    (m.entity_id IS NOT NULL AND EXISTS (SELECT 1 FROM entities e
        WHERE e.app_id = m.app_id AND e.entity_type = COALESCE(m.entity_type, '')
          AND e.entity_id = m.entity_id AND e.msg_id = m.id))
    OR EXISTS (SELECT 1 FROM messages n JOIN deliveries d ON d.msg_id = n.id
        WHERE n.app_id = m.app_id AND n.previous_id IS NOT NULL AND n.previous_id = m.id
          AND d.status IN (1, 3))";

/// What one batch of `purge_messages` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Messages removed, each with its deliveries and attempts.
    pub messages: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Messages past retention kept: a delivery still pending, its entity's snapshot, or
    /// the previous snapshot of a message still pending.
    pub kept: u64,
    /// Where the next batch of this application starts; `None` when this batch reached
    /// the application's messages within retention (the application is done).
    pub next: Option<MessageId>,
    /// Another node is purging now: this one stops its round (PostgreSQL).
    pub busy: bool,
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
    /// Looks up an application by id or by uid. Cached like `app_endpoints`.
    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>>;
    /// A page of applications; with `search`, only those whose name, uid or id contains
    /// it, ignoring the case of ASCII letters.
    async fn list_apps(&self, search: Option<&str>, page: &Page) -> Result<Vec<Application>>;
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
    /// All endpoints of an application, for fan-out and attempts. Backends may cache this:
    /// it reflects every endpoint write that completed on this node before the call, and
    /// every write another node completed more than a second before it (an endpoint
    /// disabled, deleted or edited anywhere is honoured everywhere within a second).
    async fn app_endpoints(&self, app: &AppId) -> Result<Arc<Vec<Endpoint>>>;
    /// Replaces an endpoint if its `revision` is still `expected` (a compare-and-set:
    /// `Changed` if another write changed it since it was read, `NotFound` if it is gone).
    /// The stored endpoint gets the next revision and is returned.
    async fn update_endpoint(&self, endpoint: Endpoint, expected: u64) -> Result<Endpoint>;
    /// Disables an endpoint of `app` (a receiver answered 410 Gone), updated at `at`, and
    /// ends its failure streak in the same write. Returns whether this call disabled it
    /// (`false`: it was disabled already).
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
    /// Leases pending deliveries due at `request.now` to `request.owner` until
    /// `request.leased_until`, each under a new generation, within `request.limit`: first
    /// those whose lease ran out, whatever their endpoint's room (their holder may be gone,
    /// or may still hold them in memory: the new generation fences it off); then endpoints
    /// take turns in id order (after `request.after`), each giving its oldest due first,
    /// up to its room. A delivery whose lease has not run out is never leased, so no two
    /// nodes hold a live lease on one delivery.
    async fn lease_due(&self, request: LeaseRequest) -> Result<Leased>;
    /// Extends the leases `owner` still holds on `deliveries` until `until`. Returns the
    /// positions (in `deliveries`) of those it no longer holds (taken over, released, or
    /// recorded), which were left as they are.
    async fn renew(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        until: DateTime<Utc>,
    ) -> Result<Vec<usize>>;
    /// Gives leased deliveries back, due at `now` (on shutdown, for those never
    /// attempted). Returns the positions of those `owner` no longer held, left as they are.
    async fn release(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        now: DateTime<Utc>,
    ) -> Result<Vec<usize>>;
    /// Records attempts and moves each delivery to its update, all in one transaction,
    /// for the records whose lease (`owner`, `AttemptRecord::generation`) is still the
    /// delivery's. Returns the positions of the others: stale, neither the attempt nor the
    /// update was written.
    async fn record_attempts(
        &self,
        owner: NodeId,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<usize>>;
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

    /// Resolves when deliveries may have become due for a poll on another node's account (a
    /// resend, a recover, deliveries left for a poll, leases released), so a node's poller
    /// need not wait for its next round. A store only one node uses never resolves. A
    /// missed wake-up only delays: pollers poll on their own too.
    async fn woken(&self) {
        std::future::pending::<()>().await;
    }

    /// Forgets idempotency keys recorded before `created_before`. Returns how many.
    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> Result<u64>;
    /// Drops entity snapshots last updated before `updated_before`. Returns how many.
    async fn prune_entities(&self, updated_before: DateTime<Utc>) -> Result<u64>;
    /// Removes an application's messages past retention, oldest first, each with its
    /// deliveries and attempts, in one bounded transaction. A message is kept while one of
    /// its deliveries is pending, while it is its entity's snapshot, and while a message
    /// whose previous snapshot it holds has a delivery pending.
    async fn purge_messages(&self, request: PurgeRequest) -> Result<Purged>;
    /// Expunges (as `expunge_content`) up to `limit` payloads whose publisher's retention
    /// ended by `now` (`Message::payload_expires_at`), soonest first; kept while a
    /// delivery is pending and while `KEPT_FOR_ITS_ENTITY` holds. Returns how many.
    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// Reserves the next start of an attempt to `endpoint` under a rate of `per_second`,
    /// shared by every node on this store: returns when it may start, never before `now`.
    /// Starts handed out for one endpoint, by any node, are `1 / per_second` apart.
    async fn throttle_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;

    // Endpoint health, for disabling endpoints that keep failing. The streak is shared by
    // every node: any node's failure starts it, any node's success ends it.
    /// Records that `endpoint` of `app` has failed continuously since `since`, unless it
    /// is already recorded as failing. Returns the streak's start (the earlier time).
    async fn mark_failing(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<DateTime<Utc>>;
    /// The time of the latest successful attempt recorded for `endpoint` at or after
    /// `since`, if any: a success on any node that ended a streak another node saw.
    async fn success_since(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// The time of the earliest failed attempt recorded for `endpoint` after `after`, if
    /// any: where a streak that a success ended at `after` began again. Attempts Herald
    /// refused to make (`ErrorKind::Refused`: a disabled endpoint, a refused destination)
    /// say nothing about the receiver and do not count.
    async fn failure_after(
        &self,
        endpoint: &EndpointId,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
    /// Forgets that `endpoint` was failing (it succeeded, or was disabled).
    async fn clear_failing(&self, endpoint: &EndpointId) -> Result<()>;
    /// Every endpoint recorded as failing, with the time it started.
    async fn failing_endpoints(&self) -> Result<Vec<(EndpointId, DateTime<Utc>)>>;
    /// At most `limit` failing and `limit` disabled endpoints, across every application.
    async fn endpoints_needing_attention(&self, limit: usize) -> Result<Attention>;

    /// Expunges a message's payload (it becomes `{}`) and fails its pending deliveries: the
    /// message is never sent again (`resend` answers `Conflict`, `recover` skips it).
    /// `NotFound` if `app` has no such message.
    async fn expunge_content(&self, app: &AppId, msg: &MessageId, now: DateTime<Utc>)
    -> Result<()>;
    /// Empties the response body recorded with an attempt. `NotFound` if there is none.
    async fn expunge_response(
        &self,
        app: &AppId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> Result<()>;

    /// The store's figures for `/metrics`, with "due" meaning at or before `now`.
    async fn figures(&self, now: DateTime<Utc>) -> Result<StoreFigures>;

    /// Whether a publish could be stored now: `Ok`, or the error it would get
    /// (`Unavailable`, `StorageFull`). Writes no row.
    async fn ready(&self) -> Result<()>;

    /// The SHA-256 digest (lowercase hex) of the admin token every node accepts: the one
    /// kept before, or `proposed` if none was, which is kept now (the first node to start
    /// decides, whichever it is).
    async fn admin_token_digest(&self, proposed: &str) -> Result<String>;

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
