//! Storing a published message: the idempotency key, the entity's snapshot, the message
//! and its deliveries, in one transaction.
//!
//! Both rules that concern earlier messages hold across nodes because they are decided by
//! row locks inside that transaction. The idempotency key is inserted first: a concurrent
//! insert of the same key waits for the first transaction and then finds the key taken,
//! and answers with the earlier message, writing nothing. A message about an entity locks
//! the entity's row (inserting it if missing) before it reads the snapshot, so concurrent
//! messages about one entity are stored one after the other, each deciding its deliveries
//! from the snapshot of the one stored just before it.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Transaction};
use model::{EntityRef, Message};
use store::{Deliveries, FIRST_GENERATION, Inserted, NewDelivery, NewMessage, Result};

use crate::PostgresStore;
use crate::error::{self, backend_msg};
use crate::query::{execute, row};
use crate::rows::{self, get, ms, signed};

/// How many times a row that vanished between two statements (a key pruned, a snapshot
/// dropped) is looked for again before the insert gives up.
const RACES: usize = 8;

impl PostgresStore {
    pub(crate) async fn insert(&self, new: NewMessage) -> Result<Inserted> {
        let inserted = self.insert_now(new).await?;
        // Deliveries that did not fit in the publishing node's memory wait for a poll:
        // any node may take them now.
        if let Inserted::Created { deliveries, .. } = &inserted
            && deliveries.iter().any(|d| d.leased_until.is_none())
        {
            self.announce(crate::wake::Topic::Work);
        }
        Ok(inserted)
    }

    async fn insert_now(&self, new: NewMessage) -> Result<Inserted> {
        let NewMessage {
            message,
            owner,
            deliveries,
            idempotency_key,
        } = new;
        if idempotency_key.is_none() && message.entity.is_none() {
            // The common case: written with the other plain publishes waiting, in one
            // statement (`group.rs`).
            let deliveries = match deliveries {
                Deliveries::Known(deliveries) => deliveries,
                Deliveries::FromPrevious(decide) => decide(None),
            };
            self.group
                .insert(message, owner.0, deliveries.clone())
                .await?;
            return Ok(Inserted::Created {
                previous: None,
                deliveries,
            });
        }
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        if let Some(key) = &idempotency_key
            && let Some(earlier) = claim_key(&tx, &message, key).await?
        {
            // Nothing of this message was written: the transaction rolls back.
            return Ok(Inserted::Existing(Box::new(earlier)));
        }
        let previous = match &message.entity {
            Some(entity) => lock_snapshot(&tx, &message, entity).await?,
            None => None,
        };
        let deliveries = match deliveries {
            Deliveries::Known(deliveries) => deliveries,
            Deliveries::FromPrevious(decide) => decide(previous.as_ref().map(|(_, p)| &**p)),
        };
        let previous_id = previous.as_ref().map(|(id, _)| id.as_str());
        insert_message(&tx, &message, previous_id, owner.0, &deliveries).await?;
        if let Some(entity) = &message.entity {
            replace_snapshot(&tx, &message, entity).await?;
        }
        tx.commit().await.map_err(error::map)?;
        Ok(Inserted::Created {
            previous: previous.map(|(_, payload)| payload),
            deliveries,
        })
    }
}

/// Records the idempotency key for `message`, unless it was recorded before: then returns
/// the message it was recorded with.
async fn claim_key(tx: &Transaction<'_>, message: &Message, key: &str) -> Result<Option<Message>> {
    let app = message.app_id.as_str();
    for _ in 0..RACES {
        // A concurrent transaction holding the same key makes this wait for its outcome.
        let claimed = row(
            tx,
            "INSERT INTO idempotency_keys (app_id, key, msg_id, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (app_id, key) DO NOTHING RETURNING 1",
            &[&app, &key, &message.id.as_str(), &ms(message.created_at)],
        )
        .await
        .map_err(error::map)?;
        if claimed.is_some() {
            return Ok(None);
        }
        // Each statement reads what was committed before it began, the key included.
        let earlier = row(
            tx,
            "SELECT msg_id FROM idempotency_keys WHERE app_id = $1 AND key = $2",
            &[&app, &key],
        )
        .await
        .map_err(error::map)?;
        if let Some(earlier) = earlier {
            let id: String = get(&earlier, 0)?;
            if let Some(message) = get_message_in(tx, app, &id).await? {
                return Ok(Some(message));
            }
            // The key's message is past retention: the key is free again.
            let claimed = execute(
                tx,
                "UPDATE idempotency_keys SET msg_id = $3, created_at = $4 \
                 WHERE app_id = $1 AND key = $2 AND msg_id = $5",
                &[
                    &app,
                    &key,
                    &message.id.as_str(),
                    &ms(message.created_at),
                    &id,
                ],
            )
            .await
            .map_err(error::map)?;
            if claimed == 1 {
                return Ok(None);
            }
        }
        // The key was pruned or claimed again meanwhile: try again.
    }
    Err(backend_msg(
        "an idempotency key kept appearing and vanishing; try again",
    ))
}

/// Locks the entity's row for the rest of the transaction and returns its snapshot (the
/// id of the message that holds it, and its payload), if it has one. A missing row is
/// inserted (pointing at `message`), which locks it as well.
async fn lock_snapshot(
    tx: &Transaction<'_>,
    message: &Message,
    entity: &EntityRef,
) -> Result<Option<(String, Arc<str>)>> {
    let app = message.app_id.as_str();
    let kind = entity.entity_type.as_deref().unwrap_or("");
    for _ in 0..RACES {
        // Waits for a transaction that holds the row; then reads the row as it committed.
        let locked = row(
            tx,
            "SELECT msg_id FROM entities WHERE app_id = $1 AND entity_type = $2 AND entity_id = $3 FOR UPDATE",
            &[&app, &kind, &entity.id],
        )
        .await
        .map_err(error::map)?;
        if let Some(locked) = locked {
            let id: String = get(&locked, 0)?;
            // A statement of its own: it sees the message committed with the snapshot,
            // which the locking statement's snapshot may predate.
            let payload = row(
                tx,
                "SELECT payload FROM messages WHERE app_id = $1 AND id = $2",
                &[&app, &id],
            )
            .await
            .map_err(error::map)?;
            return match payload {
                Some(payload) => Ok(Some((id, Arc::from(get::<&str>(&payload, 0)?)))),
                None => Ok(None),
            };
        }
        let inserted = row(
            tx,
            "INSERT INTO entities (app_id, entity_type, entity_id, msg_id, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (app_id, entity_type, entity_id) DO NOTHING RETURNING 1",
            &[&app, &kind, &entity.id, &message.id.as_str(), &ms(message.created_at)],
        )
        .await
        .map_err(error::map)?;
        if inserted.is_some() {
            return Ok(None);
        }
        // Another transaction created the row meanwhile: lock that one.
    }
    Err(backend_msg(
        "an entity's snapshot kept appearing and vanishing; try again",
    ))
}

/// Makes `message` the entity's snapshot, or drops the snapshot when the message says the
/// entity was deleted. The row is locked by `lock_snapshot`.
async fn replace_snapshot(
    tx: &Transaction<'_>,
    message: &Message,
    entity: &EntityRef,
) -> Result<()> {
    let app = message.app_id.as_str();
    let kind = entity.entity_type.as_deref().unwrap_or("");
    if entity.deleted {
        execute(
            tx,
            "DELETE FROM entities WHERE app_id = $1 AND entity_type = $2 AND entity_id = $3",
            &[&app, &kind, &entity.id],
        )
        .await
        .map_err(error::map)?;
    } else {
        execute(
            tx,
            "UPDATE entities SET msg_id = $4, updated_at = $5 WHERE app_id = $1 AND entity_type = $2 AND entity_id = $3",
            &[&app, &kind, &entity.id, &message.id.as_str(), &ms(message.created_at)],
        )
        .await
        .map_err(error::map)?;
    }
    Ok(())
}

/// Inserts the message with its deliveries, in one statement; the deliveries with
/// `leased_until` are leased to `owner` under `FIRST_GENERATION`, the others due at the
/// message's time.
pub(crate) async fn insert_message<C: GenericClient>(
    client: &C,
    msg: &Message,
    previous_id: Option<&str>,
    owner: u64,
    deliveries: &[NewDelivery],
) -> Result<()> {
    let created = ms(msg.created_at);
    let owner = signed(owner)?;
    let first = signed(FIRST_GENERATION)?;
    let n = deliveries.len();
    let (mut endpoints, mut ids) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut next, mut leased) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut owners, mut generations) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for d in deliveries {
        endpoints.push(d.endpoint_id.as_str());
        ids.push(d.id.as_str());
        match d.leased_until {
            Some(until) => {
                next.push(ms(until));
                leased.push(1_i32);
                owners.push(Some(owner));
                generations.push(first);
            }
            None => {
                next.push(created);
                leased.push(0);
                owners.push(None);
                generations.push(0_i64);
            }
        }
    }
    let entity = msg.entity.as_ref();
    execute(
        client,
        "WITH message AS ( \
             INSERT INTO messages (app_id, id, event_id, event_type, payload, channels, tags, created_at, origin, entity_type, entity_id, entity_deleted, previous_id, traceparent, payload_expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $20, $21) \
         ) \
         INSERT INTO deliveries (msg_id, endpoint_id, id, app_id, status, attempts, next_attempt_at, leased, trigger, created_at, updated_at, lease_owner, lease_gen) \
         SELECT $2, x.endpoint_id, x.id, $1, 1, 0, x.next_attempt_at, x.leased, 0, $8, $8, x.lease_owner, x.lease_gen \
         FROM UNNEST($14::text[], $15::text[], $16::bigint[], $17::int[], $18::bigint[], $19::bigint[]) \
             AS x(endpoint_id, id, next_attempt_at, leased, lease_owner, lease_gen)",
        &[
            &msg.app_id.as_str(),
            &msg.id.as_str(),
            &msg.event_id,
            &msg.event_type,
            &&*msg.payload,
            &msg.channels,
            &msg.tags,
            &created,
            &msg.origin,
            &entity.and_then(|e| e.entity_type.as_deref()),
            &entity.map(|e| e.id.as_str()),
            &entity.is_some_and(|e| e.deleted),
            &previous_id,
            &endpoints,
            &ids,
            &next,
            &leased,
            &owners,
            &generations,
            &msg.traceparent,
            &msg.payload_expires_at.map(ms),
        ],
    )
    .await
    .map_err(|err| {
        let twice = err
            .as_db_error()
            .and_then(|db| db.constraint())
            .is_some_and(|c| c.starts_with("deliveries"));
        error::conflict(if twice {
            "a message goes to each endpoint at most once"
        } else {
            "a message with this eventId already exists"
        })(err)
    })?;
    Ok(())
}

/// A message of `app` by id or by `eventId`.
pub(crate) async fn get_message_in<C: GenericClient>(
    client: &C,
    app: &str,
    id_or_event_id: &str,
) -> Result<Option<Message>> {
    let sql = format!(
        "SELECT {} FROM messages m WHERE m.app_id = $1 AND (m.id = $2 OR m.event_id = $2) ORDER BY (m.id = $2) DESC LIMIT 1",
        rows::MESSAGE_COLUMNS
    );
    row(client, &sql, &[&app, &id_or_event_id])
        .await
        .map_err(error::map)?
        .map(|r| rows::message(&r))
        .transpose()
}
