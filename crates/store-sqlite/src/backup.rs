//! `backup`: a consistent copy of a running embedded store, for `herald backup`.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use store::StoreError;

use crate::writer::{backend, backend_msg};

/// What `backup` copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Bytes of the copy.
    pub bytes: u64,
    /// Deliveries still pending in it: a Herald started on it attempts them.
    pub pending: u64,
}

/// Copies the database at `from` into a new file `to`, consistently, while a Herald may be
/// writing it: SQLite's `VACUUM INTO` reads one snapshot (WAL lets the writer go on) and
/// writes it compacted. Takes no lock of the data directory: it is a reader like any
/// other. `to` must not exist.
pub fn backup(from: &Path, to: &Path) -> std::result::Result<BackupReport, StoreError> {
    if to.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists: a backup is written to a new file",
            to.display()
        )));
    }
    if !from.exists() {
        return Err(StoreError::NotFound);
    }
    let conn = Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(backend)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .map_err(backend)?;
    let target = to
        .to_str()
        .ok_or_else(|| backend_msg("the backup's path is not UTF-8"))?;
    conn.execute("VACUUM INTO ?1", [target]).map_err(backend)?;
    let copy = Connection::open_with_flags(to, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(backend)?;
    let pending: i64 = copy
        .query_row(
            "SELECT COUNT(*) FROM deliveries WHERE status = 1",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    let bytes = std::fs::metadata(to)
        .map_err(|e| StoreError::Backend(Arc::new(e)))?
        .len();
    Ok(BackupReport {
        bytes,
        pending: pending.max(0) as u64,
    })
}
