//! The schema: embedded SQL files applied in order when the store opens, each in one
//! transaction with its version recorded in `herald_schema`. Several nodes may start
//! together, so the whole check-and-apply runs under a PostgreSQL advisory lock, on a
//! connection of its own (closing it releases the lock, whatever happened). A database
//! whose schema is newer than this build knows is refused, with what to do.

use std::sync::Arc;

use store::{Result, StoreError};
use tokio_postgres::NoTls;

use crate::error;

/// The migrations, by the version they bring the schema to, in order.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/001_initial.sql")),
    (2, include_str!("migrations/002_lease_owner.sql")),
    (3, include_str!("migrations/003_token_capabilities.sql")),
    (4, include_str!("migrations/004_enforce_schema.sql")),
    (5, include_str!("migrations/005_expunged.sql")),
    (6, include_str!("migrations/006_retention.sql")),
    (7, include_str!("migrations/007_traceparent.sql")),
    (8, include_str!("migrations/008_payload_expiry.sql")),
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i32 = 8;

/// The advisory lock every Herald node takes to migrate ("herald" in ASCII).
const LOCK_KEY: i64 = 0x6865_7261_6c64;

/// Brings the database to `SCHEMA_VERSION`, or refuses it.
pub(crate) async fn migrate(config: &tokio_postgres::Config) -> Result<()> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(error::map)?;
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "the migration connection ended with an error");
        }
    });
    let outcome = migrate_on(&mut client).await;
    // Closing the session releases the advisory lock if it is still held.
    drop(client);
    let _ = driver.await;
    outcome
}

async fn migrate_on(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(error::map)?;
    let outcome = apply(client).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .map_err(error::map)?;
    outcome
}

/// Applies the migrations this database lacks; the caller holds the lock.
async fn apply(client: &mut tokio_postgres::Client) -> Result<()> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS herald_schema (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .map_err(error::map)?;
    let version: i32 = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM herald_schema", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(error::map)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Backend(Arc::new(std::io::Error::other(
            format!(
                "the database's schema is version {version}, written by a newer Herald (this \
                 build knows schemas up to {SCHEMA_VERSION}): run that version of Herald, or \
                 give this one another database"
            ),
        ))));
    }
    for (to, sql) in MIGRATIONS.iter().filter(|(to, _)| *to > version) {
        let started = std::time::Instant::now();
        tracing::info!(to, "migrating the database's schema");
        let tx = client.transaction().await.map_err(error::map)?;
        tx.batch_execute(sql).await.map_err(error::map)?;
        tx.execute("INSERT INTO herald_schema (version) VALUES ($1)", &[to])
            .await
            .map_err(error::map)?;
        tx.commit().await.map_err(error::map)?;
        tracing::info!(
            to,
            seconds = started.elapsed().as_secs_f64(),
            "migrated the database's schema"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_in_order_and_reach_the_schema_version() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }
}
