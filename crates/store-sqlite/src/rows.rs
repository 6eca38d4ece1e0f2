//! Mapping between the embedded store's rows and the model's types.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, DeliveryId, Endpoint, EndpointId,
    EntityRef, Envelope, ErrorKind, EventType, Message, MessageId, Method, PayloadMode,
    RetiredSecret, Secret, Status, TokenId, Trigger,
};
use rusqlite::Row;

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("maps and lists of strings always serialize")
}

fn parse<T: serde::de::DeserializeOwned + Default>(text: &str) -> T {
    serde_json::from_str(text).unwrap_or_default()
}

fn parse_opt<T: serde::de::DeserializeOwned>(text: Option<String>) -> Option<T> {
    text.and_then(|t| serde_json::from_str(&t).ok())
}

pub(crate) const APP_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";

pub(crate) fn app(row: &Row<'_>) -> rusqlite::Result<Application> {
    Ok(Application {
        id: AppId::from_string(row.get(0)?),
        uid: row.get(1)?,
        name: row.get(2)?,
        rate_limit: row.get(3)?,
        metadata: parse::<BTreeMap<String, String>>(&row.get::<_, String>(4)?),
        created_at: time(row.get(5)?),
        updated_at: time(row.get(6)?),
    })
}

pub(crate) const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, feature_flag, group_name, schemas, created_at, updated_at, enforce_schema";

pub(crate) fn event_type(row: &Row<'_>) -> rusqlite::Result<EventType> {
    Ok(EventType {
        name: row.get(0)?,
        description: row.get(1)?,
        archived: row.get(2)?,
        deprecated: row.get(3)?,
        feature_flag: row.get(4)?,
        group_name: row.get(5)?,
        schemas: parse_opt(row.get(6)?),
        created_at: time(row.get(7)?),
        updated_at: time(row.get(8)?),
        enforce_schema: row.get(9)?,
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, version, rate_limit, disabled, filter_types, channels, metadata, headers, secret, retired_secrets, created_at, updated_at, filter, name, method, envelope, party, transform, payload_mode, diff_keep, revision";
/// How many columns `ENDPOINT_COLUMNS` has.
pub(crate) const ENDPOINT_WIDTH: usize = 25;

/// Retired secrets are stored as `[[secret, expires_ms], …]`.
pub(crate) fn retired_json(retired: &[RetiredSecret]) -> String {
    let list: Vec<(&str, i64)> = retired
        .iter()
        .map(|r| (r.secret.expose(), ms(r.expires_at)))
        .collect();
    json(&list)
}

pub(crate) fn endpoint(row: &Row<'_>) -> rusqlite::Result<Endpoint> {
    let retired: Vec<(String, i64)> = parse(&row.get::<_, String>(13)?);
    Ok(Endpoint {
        id: EndpointId::from_string(row.get(0)?),
        app_id: AppId::from_string(row.get(1)?),
        uid: row.get(2)?,
        url: row.get(3)?,
        description: row.get(4)?,
        version: row.get(5)?,
        rate_limit: row.get(6)?,
        disabled: row.get(7)?,
        filter_types: parse_opt(row.get(8)?),
        channels: parse_opt(row.get(9)?),
        metadata: parse(&row.get::<_, String>(10)?),
        headers: parse(&row.get::<_, String>(11)?),
        secret: Secret::from_string(row.get(12)?),
        retired_secrets: retired
            .into_iter()
            .map(|(secret, expires)| RetiredSecret {
                secret: Secret::from_string(secret),
                expires_at: time(expires),
            })
            .collect(),
        created_at: time(row.get(14)?),
        updated_at: time(row.get(15)?),
        filter: parse_opt(row.get(16)?),
        name: row.get(17)?,
        method: Method::parse(&row.get::<_, String>(18)?).unwrap_or_default(),
        envelope: Envelope::parse(&row.get::<_, String>(19)?).unwrap_or_default(),
        party: row.get(20)?,
        transform: parse_opt(row.get(21)?),
        payload_mode: PayloadMode::parse(&row.get::<_, String>(22)?).unwrap_or_default(),
        diff_keep: parse_opt(row.get(23)?).unwrap_or_default(),
        revision: row.get::<_, i64>(24)? as u64,
    })
}

pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_id, m.event_type, m.payload, m.channels, m.tags, m.created_at, m.origin, m.entity_type, m.entity_id, m.entity_deleted, (SELECT p.payload FROM messages p WHERE p.app_id = m.app_id AND p.id = m.previous_id), m.traceparent, m.payload_expires_at";

/// Reads a message from the 15 columns starting at `at`.
pub(crate) fn message_at(row: &Row<'_>, at: usize) -> rusqlite::Result<Message> {
    Ok(Message {
        id: MessageId::from_string(row.get(at)?),
        app_id: AppId::from_string(row.get(at + 1)?),
        event_id: row.get(at + 2)?,
        event_type: row.get(at + 3)?,
        payload: Arc::from(row.get::<_, String>(at + 4)?),
        channels: parse_opt(row.get(at + 5)?),
        tags: parse_opt(row.get(at + 6)?),
        created_at: time(row.get(at + 7)?),
        origin: row.get(at + 8)?,
        entity: row
            .get::<_, Option<String>>(at + 10)?
            .map(|id| -> rusqlite::Result<EntityRef> {
                Ok(EntityRef {
                    entity_type: row.get(at + 9)?,
                    id,
                    deleted: row.get(at + 11)?,
                })
            })
            .transpose()?,
        previous: row.get::<_, Option<String>>(at + 12)?.map(Arc::from),
        traceparent: row.get(at + 13)?,
        payload_expires_at: row.get::<_, Option<i64>>(at + 14)?.map(time),
    })
}

pub(crate) fn message(row: &Row<'_>) -> rusqlite::Result<Message> {
    message_at(row, 0)
}

pub(crate) const TOKEN_COLUMNS: &str =
    "id, app_id, digest, created_at, expires_at, revoked_at, capabilities";

pub(crate) fn token(row: &Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: TokenId::from_string(row.get(0)?),
        app_id: AppId::from_string(row.get(1)?),
        digest: row.get(2)?,
        created_at: time(row.get(3)?),
        expires_at: time(row.get(4)?),
        revoked_at: row.get::<_, Option<i64>>(5)?.map(time),
        capabilities: model::Capabilities::from_bits(row.get(6)?),
    })
}

pub(crate) const DELIVERY_COLUMNS: &str = "d.id, d.msg_id, d.app_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.trigger, d.created_at, d.updated_at";
pub(crate) const DELIVERY_WIDTH: usize = 10;

pub(crate) fn delivery(row: &Row<'_>) -> rusqlite::Result<Delivery> {
    let next: Option<i64> = row.get(6)?;
    Ok(Delivery {
        id: DeliveryId::from_string(row.get(0)?),
        msg_id: MessageId::from_string(row.get(1)?),
        app_id: AppId::from_string(row.get(2)?),
        endpoint_id: EndpointId::from_string(row.get(3)?),
        status: Status::from_code(row.get(4)?).unwrap_or(Status::Pending),
        attempts: row.get(5)?,
        next_attempt_at: next.map(time),
        trigger: Trigger::from_code(row.get(7)?),
        created_at: time(row.get(8)?),
        updated_at: time(row.get(9)?),
    })
}

pub(crate) const ATTEMPT_COLUMNS: &str = "id, delivery_id, msg_id, app_id, endpoint_id, url, status, response_status_code, response, response_duration_ms, error, trigger, created_at";

pub(crate) fn attempt(row: &Row<'_>) -> rusqlite::Result<Attempt> {
    let error: Option<String> = row.get(10)?;
    Ok(Attempt {
        id: AttemptId::from_string(row.get(0)?),
        delivery_id: DeliveryId::from_string(row.get(1)?),
        msg_id: MessageId::from_string(row.get(2)?),
        app_id: AppId::from_string(row.get(3)?),
        endpoint_id: EndpointId::from_string(row.get(4)?),
        url: row.get(5)?,
        status: Status::from_code(row.get(6)?).unwrap_or(Status::Fail),
        response_status_code: row.get(7)?,
        response: row.get(8)?,
        response_duration_ms: row.get(9)?,
        error: error.as_deref().and_then(ErrorKind::parse),
        trigger: Trigger::from_code(row.get(11)?),
        created_at: time(row.get(12)?),
    })
}
