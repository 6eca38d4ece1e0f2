//! Mapping between the PostgreSQL store's rows and the model's types: the column lists
//! each query selects, the functions that read them (by position), and the conversions of
//! times, numbers and JSON both ways. Data the store cannot read is a `Backend` error,
//! never a panic.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, TimeZone, Utc};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, DeliveryId, Endpoint, EndpointId,
    EntityRef, Envelope, ErrorKind, EventType, Message, MessageId, Method, PayloadMode,
    RetiredSecret, Secret, Status, TokenId, Trigger,
};
use store::{Result, StoreError};
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use crate::error::{self, backend_msg};

/// A query parameter of any type, for statements built at run time.
pub(crate) type Param = Box<dyn ToSql + Sync + Send>;

/// A time as stored: Unix milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time (Unix milliseconds).
pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| backend_msg(format!("a stored time is out of range: {ms}")))
}

/// A number as stored (a signed column) from the model's unsigned one.
pub(crate) fn signed<T: TryInto<i64> + Copy + std::fmt::Display>(n: T) -> Result<i64> {
    n.try_into()
        .map_err(|_| backend_msg(format!("{n} is too large to be stored")))
}

/// A number of the model from a stored (signed) one.
pub(crate) fn unsigned<T: TryFrom<i64>>(n: i64) -> Result<T> {
    T::try_from(n).map_err(|_| backend_msg(format!("a stored number is out of range: {n}")))
}

/// A count or a code as an `INT` column.
pub(crate) fn int<T: TryInto<i32> + Copy + std::fmt::Display>(n: T) -> Result<i32> {
    n.try_into()
        .map_err(|_| backend_msg(format!("{n} is too large to be stored")))
}

/// JSON text of a value that always serializes (maps and lists of strings, JSON values).
pub(crate) fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(Arc::new(e)))
}

fn parse<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|e| backend_msg(format!("a stored {what} is not valid JSON: {e}")))
}

fn parse_opt<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    what: &str,
) -> Result<Option<T>> {
    text.map(|t| parse(&t, what)).transpose()
}

/// Reads column `i` of `row`.
pub(crate) fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i).map_err(error::map)
}

fn status(code: i32) -> Result<Status> {
    Status::from_code(i64::from(code))
        .ok_or_else(|| backend_msg(format!("a stored status is unknown: {code}")))
}

pub(crate) const APP_COLUMNS: &str = "id, uid, name, rate_limit, metadata, created_at, updated_at";

pub(crate) fn app(row: &Row) -> Result<Application> {
    Ok(Application {
        id: AppId::from_string(get(row, 0)?),
        uid: get(row, 1)?,
        name: get(row, 2)?,
        rate_limit: get::<Option<i64>>(row, 3)?.map(unsigned).transpose()?,
        metadata: parse::<BTreeMap<String, String>>(get(row, 4)?, "application metadata")?,
        created_at: time(get(row, 5)?)?,
        updated_at: time(get(row, 6)?)?,
    })
}

pub(crate) const EVENT_TYPE_COLUMNS: &str = "name, description, archived, deprecated, feature_flag, group_name, schemas, created_at, updated_at, enforce_schema";

pub(crate) fn event_type(row: &Row) -> Result<EventType> {
    Ok(EventType {
        name: get(row, 0)?,
        description: get(row, 1)?,
        archived: get(row, 2)?,
        deprecated: get(row, 3)?,
        feature_flag: get(row, 4)?,
        group_name: get(row, 5)?,
        schemas: parse_opt(get(row, 6)?, "event type schema")?,
        created_at: time(get(row, 7)?)?,
        updated_at: time(get(row, 8)?)?,
        enforce_schema: get(row, 9)?,
    })
}

pub(crate) const ENDPOINT_COLUMNS: &str = "id, app_id, uid, url, description, version, rate_limit, disabled, filter_types, channels, metadata, headers, secret, retired_secrets, created_at, updated_at, filter, name, method, envelope, party, transform, payload_mode, diff_keep, revision";
/// How many columns `ENDPOINT_COLUMNS` has.
pub(crate) const ENDPOINT_WIDTH: usize = 25;

/// The parameters of an endpoint, one per column of `ENDPOINT_COLUMNS`, in its order.
pub(crate) fn endpoint_params(ep: &Endpoint) -> Result<Vec<Param>> {
    let retired: Vec<(&str, i64)> = ep
        .retired_secrets
        .iter()
        .map(|r| (r.secret.expose(), ms(r.expires_at)))
        .collect();
    Ok(vec![
        Box::new(ep.id.as_str().to_owned()),
        Box::new(ep.app_id.as_str().to_owned()),
        Box::new(ep.uid.clone()),
        Box::new(ep.url.clone()),
        Box::new(ep.description.clone()),
        Box::new(ep.version),
        Box::new(ep.rate_limit.map(i64::from)),
        Box::new(ep.disabled),
        Box::new(ep.filter_types.clone()),
        Box::new(ep.channels.clone()),
        Box::new(json(&ep.metadata)?),
        Box::new(json(&ep.headers)?),
        Box::new(ep.secret.expose().to_owned()),
        Box::new(json(&retired)?),
        Box::new(ms(ep.created_at)),
        Box::new(ms(ep.updated_at)),
        Box::new(ep.filter.as_ref().map(|f| f.to_string())),
        Box::new(ep.name.clone()),
        Box::new(ep.method.as_str()),
        Box::new(ep.envelope.as_str()),
        Box::new(ep.party.clone()),
        Box::new(ep.transform.as_ref().map(|t| t.to_string())),
        Box::new(ep.payload_mode.as_str()),
        Box::new(ep.diff_keep.clone()),
        Box::new(signed(ep.revision)?),
    ])
}

/// A compare-and-set update of an endpoint to `ep` (whose revision is the next one), if
/// its stored revision is still `expected`: the statement and its parameters. Every
/// column is set but the key (`id`, `app_id`) and `created_at`.
pub(crate) fn endpoint_update(ep: &Endpoint, expected: u64) -> Result<(&'static str, Vec<Param>)> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let sets: Vec<String> = ENDPOINT_COLUMNS
            .split(", ")
            .filter(|c| !matches!(*c, "id" | "app_id" | "created_at"))
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        let n = sets.len();
        format!(
            "UPDATE endpoints SET {} WHERE id = ${} AND app_id = ${} AND revision = ${}",
            sets.join(", "),
            n + 1,
            n + 2,
            n + 3
        )
    });
    let mut key = Vec::new();
    let mut params = Vec::new();
    for (column, param) in ENDPOINT_COLUMNS.split(", ").zip(endpoint_params(ep)?) {
        match column {
            "id" | "app_id" => key.push(param),
            "created_at" => {}
            _ => params.push(param),
        }
    }
    params.extend(key);
    params.push(Box::new(signed(expected)?));
    Ok((SQL.as_str(), params))
}

pub(crate) fn endpoint(row: &Row) -> Result<Endpoint> {
    let retired: Vec<(String, i64)> = parse(get(row, 13)?, "list of retired secrets")?;
    Ok(Endpoint {
        id: EndpointId::from_string(get(row, 0)?),
        app_id: AppId::from_string(get(row, 1)?),
        uid: get(row, 2)?,
        url: get(row, 3)?,
        description: get(row, 4)?,
        version: get(row, 5)?,
        rate_limit: get::<Option<i64>>(row, 6)?.map(unsigned).transpose()?,
        disabled: get(row, 7)?,
        filter_types: get(row, 8)?,
        channels: get(row, 9)?,
        metadata: parse(get(row, 10)?, "endpoint metadata")?,
        headers: parse(get(row, 11)?, "list of endpoint headers")?,
        secret: Secret::from_string(get(row, 12)?),
        retired_secrets: retired
            .into_iter()
            .map(|(secret, expires)| {
                Ok(RetiredSecret {
                    secret: Secret::from_string(secret),
                    expires_at: time(expires)?,
                })
            })
            .collect::<Result<_>>()?,
        created_at: time(get(row, 14)?)?,
        updated_at: time(get(row, 15)?)?,
        filter: parse_opt(get(row, 16)?, "endpoint filter")?,
        name: get(row, 17)?,
        method: Method::parse(get(row, 18)?).unwrap_or_default(),
        envelope: Envelope::parse(get(row, 19)?).unwrap_or_default(),
        party: get(row, 20)?,
        transform: parse_opt(get(row, 21)?, "endpoint transform")?,
        payload_mode: PayloadMode::parse(get(row, 22)?).unwrap_or_default(),
        diff_keep: get(row, 23)?,
        revision: unsigned(get(row, 24)?)?,
    })
}

/// A message's columns, from `messages m`; the last is the payload of the entity snapshot
/// it replaced.
pub(crate) const MESSAGE_COLUMNS: &str = "m.id, m.app_id, m.event_id, m.event_type, m.payload, m.channels, m.tags, m.created_at, m.origin, m.entity_type, m.entity_id, m.entity_deleted, (SELECT p.payload FROM messages p WHERE p.app_id = m.app_id AND p.id = m.previous_id), m.traceparent, m.payload_expires_at";
pub(crate) const MESSAGE_WIDTH: usize = 15;

/// Reads a message from the `MESSAGE_WIDTH` columns starting at `at`.
pub(crate) fn message_at(row: &Row, at: usize) -> Result<Message> {
    let entity = match get::<Option<String>>(row, at + 10)? {
        Some(id) => Some(EntityRef {
            entity_type: get(row, at + 9)?,
            id,
            deleted: get(row, at + 11)?,
        }),
        None => None,
    };
    Ok(Message {
        id: MessageId::from_string(get(row, at)?),
        app_id: AppId::from_string(get(row, at + 1)?),
        event_id: get(row, at + 2)?,
        event_type: get(row, at + 3)?,
        payload: Arc::from(get::<&str>(row, at + 4)?),
        channels: get(row, at + 5)?,
        tags: get(row, at + 6)?,
        created_at: time(get(row, at + 7)?)?,
        origin: get(row, at + 8)?,
        entity,
        previous: get::<Option<&str>>(row, at + 12)?.map(Arc::from),
        traceparent: get(row, at + 13)?,
        payload_expires_at: get::<Option<i64>>(row, at + 14)?.map(time).transpose()?,
    })
}

pub(crate) fn message(row: &Row) -> Result<Message> {
    message_at(row, 0)
}

pub(crate) const TOKEN_COLUMNS: &str =
    "id, app_id, digest, created_at, expires_at, revoked_at, capabilities";

pub(crate) fn token(row: &Row) -> Result<ApiToken> {
    Ok(ApiToken {
        id: TokenId::from_string(get(row, 0)?),
        app_id: AppId::from_string(get(row, 1)?),
        digest: get(row, 2)?,
        created_at: time(get(row, 3)?)?,
        expires_at: time(get(row, 4)?)?,
        revoked_at: get::<Option<i64>>(row, 5)?.map(time).transpose()?,
        capabilities: model::Capabilities::from_bits(get(row, 6)?),
    })
}

/// A delivery's columns, from `deliveries d`.
pub(crate) const DELIVERY_COLUMNS: &str = "d.id, d.msg_id, d.app_id, d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.trigger, d.created_at, d.updated_at";
pub(crate) const DELIVERY_WIDTH: usize = 10;

pub(crate) fn delivery(row: &Row) -> Result<Delivery> {
    Ok(Delivery {
        id: DeliveryId::from_string(get(row, 0)?),
        msg_id: MessageId::from_string(get(row, 1)?),
        app_id: AppId::from_string(get(row, 2)?),
        endpoint_id: EndpointId::from_string(get(row, 3)?),
        status: status(get(row, 4)?)?,
        attempts: unsigned(i64::from(get::<i32>(row, 5)?))?,
        next_attempt_at: get::<Option<i64>>(row, 6)?.map(time).transpose()?,
        trigger: Trigger::from_code(i64::from(get::<i32>(row, 7)?)),
        created_at: time(get(row, 8)?)?,
        updated_at: time(get(row, 9)?)?,
    })
}

pub(crate) const ATTEMPT_COLUMNS: &str = "id, delivery_id, msg_id, app_id, endpoint_id, url, status, response_status_code, response, response_duration_ms, error, trigger, created_at";

pub(crate) fn attempt(row: &Row) -> Result<Attempt> {
    Ok(Attempt {
        id: AttemptId::from_string(get(row, 0)?),
        delivery_id: DeliveryId::from_string(get(row, 1)?),
        msg_id: MessageId::from_string(get(row, 2)?),
        app_id: AppId::from_string(get(row, 3)?),
        endpoint_id: EndpointId::from_string(get(row, 4)?),
        url: get(row, 5)?,
        status: status(get(row, 6)?)?,
        response_status_code: get(row, 7)?,
        response: get(row, 8)?,
        response_duration_ms: get(row, 9)?,
        error: get::<Option<&str>>(row, 10)?.and_then(ErrorKind::parse),
        trigger: Trigger::from_code(i64::from(get::<i32>(row, 11)?)),
        created_at: time(get(row, 12)?)?,
    })
}

/// Maps every row with `f`.
pub(crate) fn all<T>(rows: &[Row], f: impl Fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

/// Borrows built parameters as the driver takes them.
pub(crate) fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_update_sets_every_column_but_its_key_and_creation() {
        let ep = store::conformance::endpoint(&AppId::generate(), "http://127.0.0.1:1/");
        let (sql, params) = endpoint_update(&ep, 1).unwrap();
        assert_eq!(params.len(), ENDPOINT_COLUMNS.split(", ").count());
        assert!(
            sql.starts_with("UPDATE endpoints SET uid = $1, url = $2,"),
            "{sql}"
        );
        assert!(
            sql.ends_with("revision = $22 WHERE id = $23 AND app_id = $24 AND revision = $25"),
            "{sql}"
        );
        assert!(!sql.contains("created_at"), "{sql}");
    }
}
