//! Making deliveries pending again for a manual attempt: `resend` (one delivery, created
//! if the message never went to that endpoint) and `recover` (an endpoint's failed
//! deliveries over a time range, in chunks).

use chrono::{DateTime, Utc};
use model::{AppId, Delivery, DeliveryId, EndpointId, MessageId};
use store::{Result, StoreError};

use crate::PostgresStore;
use crate::error;
use crate::query::row;
use crate::rows::{self, get, ms};

/// Deliveries recovered per statement (each its own transaction): one statement over a
/// million failed deliveries would hold their row locks, and its share of the log, for
/// as long as it takes.
const RECOVER_CHUNK: i64 = 10_000;

impl PostgresStore {
    pub(crate) async fn resend_one(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        // A live lease is kept (its holder attempts the delivery, now as a manual one);
        // otherwise the delivery is due now, for any node's poll.
        let sql = format!(
            "INSERT INTO deliveries AS d (msg_id, endpoint_id, id, app_id, status, attempts, next_attempt_at, leased, trigger, created_at, updated_at) \
             SELECT $1::text, $2::text, $3::text, $4::text, 1, 0, $5::bigint, 0, 1, $5::bigint, $5::bigint \
             WHERE EXISTS (SELECT 1 FROM messages WHERE app_id = $4 AND id = $1) \
               AND EXISTS (SELECT 1 FROM endpoints WHERE app_id = $4 AND id = $2) \
             ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, attempts = 0, trigger = 1, updated_at = $5, \
                 next_attempt_at = CASE WHEN d.leased = 1 AND d.status = 1 AND d.next_attempt_at > $5 THEN d.next_attempt_at ELSE $5 END, \
                 leased = CASE WHEN d.leased = 1 AND d.status = 1 AND d.next_attempt_at > $5 THEN 1 ELSE 0 END, \
                 lease_owner = CASE WHEN d.leased = 1 AND d.status = 1 AND d.next_attempt_at > $5 THEN d.lease_owner END \
             RETURNING {}",
            rows::DELIVERY_COLUMNS
        );
        let client = self.client().await?;
        let found = row(
            &client,
            &sql,
            &[
                &msg.as_str(),
                &endpoint.as_str(),
                &DeliveryId::generate().as_str(),
                &app.as_str(),
                &ms(now),
            ],
        )
        .await
        .map_err(error::map)?;
        match found {
            Some(r) => rows::delivery(&r),
            None => Err(StoreError::NotFound),
        }
    }

    /// Refuses (`Conflict`) a resend of a message whose payload was expunged.
    pub(crate) async fn not_expunged(&self, app: &AppId, msg: &MessageId) -> Result<()> {
        let client = self.client().await?;
        let found = row(
            &client,
            "SELECT expunged FROM messages WHERE app_id = $1 AND id = $2",
            &[&app.as_str(), &msg.as_str()],
        )
        .await
        .map_err(error::map)?;
        if found.is_some_and(|r| r.get::<_, bool>(0)) {
            return Err(StoreError::Conflict(
                "the message's payload was expunged: it cannot be sent again".to_owned(),
            ));
        }
        Ok(())
    }

    pub(crate) async fn recover_failed(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        // The chunks run in a task of their own, so a caller that goes away (a client
        // that disconnects) does not stop it halfway. Each chunk is committed; a recover
        // cut short by a failure is finished by calling it again.
        let pool = self.pool.clone();
        let (app, endpoint) = (app.as_str().to_owned(), endpoint.as_str().to_owned());
        let (since, until, now) = (ms(since), until.map_or(i64::MAX, ms), ms(now));
        let task = tokio::spawn(async move {
            let client = pool.get().await.map_err(error::pool)?;
            let mut after = String::new();
            let mut total = 0_u64;
            loop {
                // The next chunk of the endpoint's deliveries by message id, on the
                // (endpoint_id, msg_id) index; its failed ones in range become pending.
                let r = row(
                    &client,
                    "WITH chunk AS ( \
                         SELECT msg_id FROM deliveries WHERE endpoint_id = $2 AND msg_id > $6 ORDER BY msg_id LIMIT $7 \
                     ), recovered AS ( \
                         UPDATE deliveries d SET status = 1, attempts = 0, next_attempt_at = $5, leased = 0, trigger = 1, updated_at = $5 \
                         FROM chunk c \
                         WHERE d.endpoint_id = $2 AND d.msg_id = c.msg_id AND d.app_id = $1 AND d.status = 2 \
                           AND d.created_at >= $3 AND d.created_at < $4 \
                           AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.app_id = $1 AND m.id = d.msg_id AND m.expunged) \
                         RETURNING 1 \
                     ) \
                     SELECT (SELECT count(*) FROM chunk), (SELECT max(msg_id) FROM chunk), (SELECT count(*) FROM recovered)",
                    &[&app, &endpoint, &since, &until, &now, &after, &RECOVER_CHUNK],
                )
                .await
                .map_err(error::map)?
                .ok_or_else(|| error::backend_msg("recovering deliveries returned no row"))?;
                let (seen, last, n): (i64, Option<String>, i64) =
                    (get(&r, 0)?, get(&r, 1)?, get(&r, 2)?);
                total += rows::unsigned::<u64>(n)?;
                match last {
                    Some(last) if seen == RECOVER_CHUNK => after = last,
                    _ => return Ok(total),
                }
            }
        });
        task.await
            .map_err(|_| error::backend_msg("recovering deliveries stopped unexpectedly"))?
    }
}
