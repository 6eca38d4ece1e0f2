//! Retention: one bounded batch of an application's messages past retention removed,
//! with their deliveries and attempts, in one transaction. One node purges at a time (a
//! transaction-scoped advisory lock); the others find it busy and leave the round to it.
//!
//! The candidates' deliveries are locked before they are judged, so a resend or recover
//! racing the batch either ran before (the message is kept: it is pending again) or runs
//! after and finds the message gone.

use std::collections::HashSet;
use std::sync::LazyLock;

use model::MessageId;
use store::{PurgeRequest, Purged, Result};

use crate::error;
use crate::query::{execute, row, rows};
use crate::rows::get;

/// The advisory lock of the node purging now ("purge" in ASCII).
pub(crate) const LOCK_KEY: i64 = 0x70_7572_6765;

/// The application's messages older than the cutoff after the cursor, in id (time) order,
/// each with how many deliveries it has and whether it must be kept as its entity's
/// snapshot or as the previous snapshot of a message with a delivery unfinished.
static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT m.id,
            (SELECT count(*) FROM deliveries d WHERE d.msg_id = m.id),
            {}
        FROM messages m
        WHERE m.app_id = $1 AND m.id > $2 AND m.id < $3
        ORDER BY m.id
        LIMIT $4",
        store::KEPT_FOR_ITS_ENTITY
    )
});

/// Expired payloads, soonest first, locked (passed over if another node holds them), then
/// expunged; a delivery a racing resend made pending meanwhile fails, as with
/// expunge-content (the message is never sent again).
static EXPIRED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH expired AS (
            SELECT m.app_id, m.id FROM messages m
            WHERE m.payload_expires_at IS NOT NULL AND NOT m.expunged
              AND m.payload_expires_at <= $1
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status IN (1, 3))
              AND NOT ({})
            ORDER BY m.payload_expires_at
            LIMIT $2
            FOR UPDATE OF m SKIP LOCKED
        ), emptied AS (
            UPDATE messages SET payload = '{{}}', expunged = TRUE FROM expired
            WHERE messages.app_id = expired.app_id AND messages.id = expired.id
            RETURNING messages.id
        ), failed AS (
            UPDATE deliveries SET status = 2, leased = 0, lease_owner = NULL,
                next_attempt_at = NULL, updated_at = $1
            WHERE msg_id IN (SELECT id FROM emptied) AND status = 1
        )
        SELECT count(*) FROM emptied",
        store::KEPT_FOR_ITS_ENTITY
    )
});

impl crate::PostgresStore {
    pub(crate) async fn expire(
        &self,
        now: chrono::DateTime<chrono::Utc>,
        limit: usize,
    ) -> Result<u64> {
        let client = self.client().await?;
        let row = row(&client, &EXPIRED, &[&crate::rows::ms(now), &(limit as i64)])
            .await
            .map_err(error::map)?;
        let n: i64 = match row {
            Some(row) => get(&row, 0)?,
            None => 0,
        };
        Ok(n as u64)
    }

    pub(crate) async fn purge(&self, request: PurgeRequest) -> Result<Purged> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        let locked: bool = match row(&tx, "SELECT pg_try_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(error::map)?
        {
            Some(row) => get(&row, 0)?,
            None => false,
        };
        if !locked {
            return Ok(Purged {
                next: request.after,
                busy: true,
                ..Purged::default()
            });
        }
        let app = request.app.as_str();
        // Ids begin with their time: every id below the cutoff's floor is older than it.
        let floor = MessageId::floor_at(request.before);
        let after = request.after.as_ref().map_or("", MessageId::as_str);
        let candidates = rows(
            &tx,
            &CANDIDATES,
            &[
                &app,
                &after,
                &floor.as_str(),
                &(request.max_messages as i64),
            ],
        )
        .await
        .map_err(error::map)?;
        let looked_at = candidates.len();
        let mut purged = Purged::default();
        let mut chosen = Vec::new();
        let mut rows_budget = 0u64;
        let mut last = None;
        for candidate in &candidates {
            let id: String = get(candidate, 0)?;
            let deliveries: i64 = get(candidate, 1)?;
            let keep: bool = get(candidate, 2)?;
            if keep {
                purged.kept += 1;
            } else {
                chosen.push(id.clone());
                // About as many attempts as deliveries.
                rows_budget += 2 * deliveries as u64;
            }
            last = Some(id);
            if rows_budget >= request.max_rows as u64 {
                break;
            }
        }
        let done = looked_at < request.max_messages && rows_budget < request.max_rows as u64;
        purged.next = if done {
            None
        } else {
            last.map(MessageId::from_string)
        };
        if chosen.is_empty() {
            tx.commit().await.map_err(error::map)?;
            return Ok(purged);
        }
        // Locked until the end of the transaction: from here no resend or recover can make
        // one of these deliveries pending, and the statuses read are the latest.
        let unfinished: HashSet<String> = rows(
            &tx,
            "SELECT msg_id, status FROM deliveries WHERE msg_id = ANY($1) \
             ORDER BY msg_id, endpoint_id FOR UPDATE",
            &[&chosen],
        )
        .await
        .map_err(error::map)?
        .iter()
        .filter_map(|row| match get::<i32>(row, 1) {
            Ok(1 | 3) => get::<String>(row, 0).ok(),
            _ => None,
        })
        .collect();
        purged.kept += unfinished.len() as u64;
        chosen.retain(|id| !unfinished.contains(id));
        purged.deliveries = execute(
            &tx,
            "DELETE FROM deliveries WHERE msg_id = ANY($1)",
            &[&chosen],
        )
        .await
        .map_err(error::map)?;
        purged.attempts = execute(
            &tx,
            "DELETE FROM attempts WHERE msg_id = ANY($1)",
            &[&chosen],
        )
        .await
        .map_err(error::map)?;
        purged.messages = execute(
            &tx,
            "DELETE FROM messages WHERE app_id = $1 AND id = ANY($2)",
            &[&app, &chosen],
        )
        .await
        .map_err(error::map)?;
        tx.commit().await.map_err(error::map)?;
        Ok(purged)
    }
}
