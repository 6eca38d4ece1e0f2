//! Retention: one bounded batch of an application's messages past retention removed,
//! with their deliveries and attempts, in one write of the writer thread (so it waits
//! its turn like a publish, and holds the writer only as long as its bounds allow).

use std::sync::LazyLock;

use model::MessageId;
use rusqlite::{Connection, params};
use store::{PurgeRequest, Purged};

/// The application's messages older than the cutoff after the cursor, in id (time) order,
/// each with whether it must be kept: a delivery unfinished (pending or sending), its
/// entity's snapshot, or the previous snapshot of a message with a delivery unfinished.
static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT m.id,
            EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status IN (1, 3))
            OR {}
        FROM messages m
        WHERE m.app_id = ?1 AND m.id > ?2 AND m.id < ?3
        ORDER BY m.id
        LIMIT ?4",
        store::KEPT_FOR_ITS_ENTITY
    )
});

static EXPIRED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "UPDATE messages SET payload = '{{}}', expunged = 1 WHERE rowid IN (
            SELECT m.rowid FROM messages m
            WHERE m.payload_expires_at IS NOT NULL AND m.expunged = 0
              AND m.payload_expires_at <= ?1
              AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.msg_id = m.id AND d.status IN (1, 3))
              AND NOT ({})
            ORDER BY m.payload_expires_at
            LIMIT ?2)",
        store::KEPT_FOR_ITS_ENTITY
    )
});

/// Expunges up to `limit` payloads whose publisher's retention ended by `now`.
pub(crate) fn expire_payloads(
    conn: &Connection,
    now: chrono::DateTime<chrono::Utc>,
    limit: usize,
) -> rusqlite::Result<u64> {
    Ok(conn
        .prepare_cached(&EXPIRED)?
        .execute(params![crate::rows::ms(now), limit as i64])? as u64)
}

/// Whether the application has a message past the cutoff after the cursor.
pub(crate) fn any_old(conn: &Connection, request: &PurgeRequest) -> rusqlite::Result<bool> {
    let (floor, after) = bounds(request);
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM messages WHERE app_id = ?1 AND id > ?2 AND id < ?3)",
    )?
    .query_row(params![request.app.as_str(), after, floor.as_str()], |r| {
        r.get(0)
    })
}

/// The cutoff's floor and the cursor. Ids begin with their time: every id below the
/// floor of the cutoff's millisecond is older than it.
fn bounds(request: &PurgeRequest) -> (MessageId, &str) {
    let floor = MessageId::floor_at(request.before);
    let after = request.after.as_ref().map_or("", MessageId::as_str);
    (floor, after)
}

pub(crate) fn purge(conn: &Connection, request: &PurgeRequest) -> rusqlite::Result<Purged> {
    let app = request.app.as_str();
    let (floor, after) = bounds(request);
    let candidates = conn
        .prepare_cached(&CANDIDATES)?
        .query_map(
            params![app, after, floor.as_str(), request.max_messages as i64],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)),
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut purged = Purged::default();
    let looked_at = candidates.len();
    let mut last = None;
    for (id, keep) in candidates {
        if keep {
            purged.kept += 1;
        } else {
            purged.attempts += conn
                .prepare_cached("DELETE FROM attempts WHERE msg_id = ?1")?
                .execute([&id])? as u64;
            purged.deliveries += conn
                .prepare_cached("DELETE FROM deliveries WHERE msg_id = ?1")?
                .execute([&id])? as u64;
            purged.messages += conn
                .prepare_cached("DELETE FROM messages WHERE app_id = ?1 AND id = ?2")?
                .execute([app, &id])? as u64;
        }
        last = Some(id);
        if purged.deliveries + purged.attempts >= request.max_rows as u64 {
            return Ok(Purged {
                next: last.map(MessageId::from_string),
                ..purged
            });
        }
    }
    // A batch that found fewer than it could look at reached the cutoff.
    purged.next = if looked_at < request.max_messages {
        None
    } else {
        last.map(MessageId::from_string)
    };
    Ok(purged)
}
