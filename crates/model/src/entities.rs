//! The domain types: what an application, endpoint, message, delivery and attempt are.
//! These are plain data; the API crate maps them to Svix's JSON shapes and the store
//! maps them to rows.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::ids::{AppId, AttemptId, DeliveryId, EndpointId, MessageId, TokenId};

/// A tenant of the platform (Svix: application).
#[derive(Debug, Clone, PartialEq)]
pub struct Application {
    pub id: AppId,
    pub uid: Option<String>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A kind of event that endpoints can subscribe to, e.g. `order.created`.
#[derive(Debug, Clone, PartialEq)]
pub struct EventType {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    pub group_name: Option<String>,
    /// JSON schemas by version, stored as given.
    pub schemas: Option<serde_json::Value>,
    /// Publishes of this type must satisfy its latest schema version (Herald extension).
    pub enforce_schema: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A signing secret, `whsec_` followed by base64 of the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret that was validated (or generated) by the caller.
    pub fn from_string(secret: String) -> Self {
        Self(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A secret that was rotated out and still signs until `expires_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetiredSecret {
    pub secret: Secret,
    pub expires_at: DateTime<Utc>,
}

/// A subscription of an application: where to deliver which messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub app_id: AppId,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub version: i32,
    pub rate_limit: Option<u32>,
    pub disabled: bool,
    /// Event types this endpoint receives; `None` means all.
    pub filter_types: Option<Vec<String>>,
    /// Channels this endpoint receives; `None` means all messages, whatever their channels.
    pub channels: Option<Vec<String>>,
    pub metadata: BTreeMap<String, String>,
    /// Constant headers sent with every request.
    pub headers: BTreeMap<String, String>,
    /// A condition on the event (see the `filter` crate); only matching events are delivered.
    pub filter: Option<serde_json::Value>,
    /// A rewrite of the payload (see `filter::Transform`), applied before the filter.
    pub transform: Option<serde_json::Value>,
    /// A short label, distinct from the description.
    pub name: Option<String>,
    /// The HTTP method deliveries use.
    pub method: Method,
    /// How the payload is wrapped.
    pub envelope: Envelope,
    /// The party this endpoint belongs to: it never receives a message whose `origin` is
    /// the same party (no echo to the sender).
    pub party: Option<String>,
    /// Whether deliveries carry the whole payload or what changed since the entity's
    /// previous snapshot.
    pub payload_mode: PayloadMode,
    /// Payload paths always sent in a diff (identity keys such as `guid`).
    pub diff_keep: Vec<String>,
    pub secret: Secret,
    pub retired_secrets: Vec<RetiredSecret>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Grows with every write of the endpoint: what a compare-and-set update expects, and
    /// what tells a cache its copy is stale.
    pub revision: u64,
}

/// The HTTP method of deliveries. `GET` carries the body in the `payload` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    Post,
    Put,
    Patch,
    Delete,
    Get,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Get => "GET",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "GET" => Self::Get,
            _ => return None,
        })
    }
}

/// What a delivery carries of the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    /// The payload (transformed, if the endpoint has a transform).
    #[default]
    Full,
    /// For a message about an entity with a previous snapshot: only what changed
    /// (`filter::Diff`); nothing is delivered when nothing changed.
    Diff,
}

impl PayloadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "full" => Self::Full,
            "diff" => Self::Diff,
            _ => return None,
        })
    }
}

/// How a delivery wraps the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Envelope {
    /// The payload exactly as published.
    #[default]
    Raw,
    /// `{"id": message id, "type": event type, "created": unix seconds, "data": payload}`.
    Standard,
}

impl Envelope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Standard => "standard",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "raw" => Self::Raw,
            "standard" => Self::Standard,
            _ => return None,
        })
    }
}

impl Endpoint {
    /// Whether a message of this type, channels and origin goes to this endpoint (Svix's
    /// rules: no filter means everything; channels must intersect when the endpoint names
    /// any; and never back to the party it came from).
    pub fn subscribes_to(
        &self,
        event_type: &str,
        channels: Option<&[String]>,
        origin: Option<&str>,
    ) -> bool {
        if self.disabled {
            return false;
        }
        if origin.is_some() && self.party.as_deref() == origin {
            return false;
        }
        if let Some(types) = &self.filter_types
            && !types.iter().any(|t| t == event_type)
        {
            return false;
        }
        match (&self.channels, channels) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine.iter().any(|c| theirs.contains(c)),
        }
    }

    /// The secrets that sign a request at `now`: the current one first, then any
    /// retired secret still within its grace period.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&Secret> {
        std::iter::once(&self.secret)
            .chain(
                self.retired_secrets
                    .iter()
                    .filter(|r| r.expires_at > now)
                    .map(|r| &r.secret),
            )
            .collect()
    }
}

/// A published event. `payload` holds the JSON text exactly as the publisher sent it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: MessageId,
    pub app_id: AppId,
    pub event_id: Option<String>,
    pub event_type: String,
    pub payload: Arc<str>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The party that caused the event; endpoints of the same `party` do not receive it.
    pub origin: Option<String>,
    /// The entity the message is about, whose last payload Herald keeps as its snapshot.
    pub entity: Option<EntityRef>,
    /// The entity's snapshot when the message was accepted (the payload of the previous
    /// message about it), if there was one. Set by the store, in the transaction that
    /// stores the message and makes its payload the new snapshot.
    pub previous: Option<Arc<str>>,
    /// The trace the message's attempts continue: a W3C `traceparent` naming the publish
    /// (its span when Herald exports traces, else the publisher's own), if there is one.
    pub traceparent: Option<String>,
    /// When its payload is expunged, if the publisher asked for a retention of its own
    /// (Svix's `payloadRetentionPeriod`); Herald's retention removes the message anyway.
    pub payload_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// An API token limited to one application (Svix's app-portal access). Only a digest of
/// the token is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: TokenId,
    pub app_id: AppId,
    /// SHA-256 of the token, lowercase hex.
    pub digest: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// What the token may do within its application.
    pub capabilities: crate::Capabilities,
}

impl ApiToken {
    /// Whether the token opens its application at `now`.
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Which entity a message is about: per application, an id, optionally within a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityRef {
    pub entity_type: Option<String>,
    pub id: String,
    /// The entity is gone: the message is delivered, then the snapshot is dropped.
    pub deleted: bool,
}

/// Svix's `MessageStatus`, used for deliveries and attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Success = 0,
    Pending = 1,
    Fail = 2,
    Sending = 3,
}

impl Status {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Option<Self> {
        Some(match code {
            0 => Self::Success,
            1 => Self::Pending,
            2 => Self::Fail,
            3 => Self::Sending,
            _ => return None,
        })
    }
}

/// Why an attempt was made: on schedule, or because someone asked (resend, recover).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Scheduled = 0,
    Manual = 1,
}

impl Trigger {
    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(code: i64) -> Self {
        if code == 1 {
            Self::Manual
        } else {
            Self::Scheduled
        }
    }
}

/// The delivery of one message to one endpoint, across all its attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: DeliveryId,
    pub msg_id: MessageId,
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    pub status: Status,
    /// Attempts made in the current run (reset by resend and recover).
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The trigger of the next attempt.
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// How an attempt failed without an HTTP response, or why the response failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The receiver answered with a non-2xx status.
    Status,
    Timeout,
    ConnectionRefused,
    Dns,
    Tls,
    /// The connection broke, or the exchange failed in another way.
    Connection,
    /// Herald refused to send (bad URL, disabled endpoint, destination not allowed).
    Refused,
    /// An AMQP broker refused the message: a nack, no route for it, a missing exchange,
    /// denied access.
    Broker,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Timeout => "timeout",
            Self::ConnectionRefused => "connection_refused",
            Self::Dns => "dns",
            Self::Tls => "tls",
            Self::Connection => "connection",
            Self::Refused => "refused",
            Self::Broker => "broker",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "status" => Self::Status,
            "timeout" => Self::Timeout,
            "connection_refused" => Self::ConnectionRefused,
            "dns" => Self::Dns,
            "tls" => Self::Tls,
            "connection" => Self::Connection,
            "refused" => Self::Refused,
            "broker" => Self::Broker,
            _ => return None,
        })
    }
}

/// What a transport reports for one attempt. A receiver's failure is data, not an error.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The HTTP status, when a response arrived.
    pub status_code: Option<u16>,
    /// The response body (truncated) or, without a response, a description of the failure.
    pub body: String,
    pub duration: Duration,
    /// `None` means delivered.
    pub error: Option<ErrorKind>,
    /// Set when a failure must not be retried (e.g. the destination was refused).
    pub permanent: bool,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Outcome {
    pub fn delivered(&self) -> bool {
        self.error.is_none()
    }
}

/// One recorded attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub msg_id: MessageId,
    pub app_id: AppId,
    pub endpoint_id: EndpointId,
    pub url: String,
    pub status: Status,
    pub response_status_code: i32,
    pub response: String,
    pub response_duration_ms: i64,
    pub error: Option<ErrorKind>,
    pub trigger: Trigger,
    pub created_at: DateTime<Utc>,
}
