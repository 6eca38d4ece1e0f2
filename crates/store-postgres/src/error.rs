//! How the driver's and the pool's errors become `StoreError`s, shaped for the caller's
//! branches: a unique violation is a `Conflict`, a full disk `StorageFull`, a database
//! that cannot be reached now `Unavailable`, and anything else `Backend`. The original
//! error is kept as the source.

use std::sync::Arc;

use deadpool_postgres::PoolError;
use store::StoreError;
use tokio_postgres::error::SqlState;

/// Maps a driver error. A unique violation names the constraint; callers that know what
/// the rule means use `conflict` instead.
pub(crate) fn map(err: tokio_postgres::Error) -> StoreError {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION {
            let what = db.constraint().unwrap_or("a unique key");
            return StoreError::Conflict(format!("already exists ({what})"));
        }
        if *code == SqlState::DISK_FULL {
            return StoreError::StorageFull(Arc::new(err));
        }
        if is_transient(code) {
            return StoreError::Unavailable(Arc::new(err));
        }
        return StoreError::Backend(Arc::new(err));
    }
    if err.is_closed() || io_source(&err) || err.to_string().starts_with("timeout") {
        return StoreError::Unavailable(Arc::new(err));
    }
    StoreError::Backend(Arc::new(err))
}

/// Maps a driver error, a unique violation becoming a `Conflict` that says `what`.
pub(crate) fn conflict(what: &'static str) -> impl Fn(tokio_postgres::Error) -> StoreError {
    move |err| {
        if err.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict(what.to_owned())
        } else {
            map(err)
        }
    }
}

/// Maps a failure to get a connection from the pool: a timeout or a closed pool means the
/// database cannot be reached now.
pub(crate) fn pool(err: PoolError) -> StoreError {
    match err {
        PoolError::Backend(err) => map(err),
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(Arc::new(err)),
        other => StoreError::Backend(Arc::new(other)),
    }
}

/// A `Backend` error that says what is wrong, for data the store cannot read.
pub(crate) fn backend_msg(message: impl Into<String>) -> StoreError {
    StoreError::Backend(Arc::new(std::io::Error::other(message.into())))
}

/// Whether a database error means the server cannot serve now but may soon: its
/// connection was lost or refused, it is shutting down or starting, or the transaction
/// lost a race (a deadlock or a serialization failure) that running it again can win.
fn is_transient(code: &SqlState) -> bool {
    let class = code.code().get(..2).unwrap_or("");
    // Class 08: connection exception; 57P01–57P03: shutdown and startup.
    class == "08"
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::T_R_DEADLOCK_DETECTED
        || *code == SqlState::T_R_SERIALIZATION_FAILURE
        || *code == SqlState::TOO_MANY_CONNECTIONS
}

/// Whether the error came from the socket (connecting, reading or writing).
fn io_source(err: &tokio_postgres::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_codes_are_recognised() {
        assert!(is_transient(&SqlState::ADMIN_SHUTDOWN));
        assert!(is_transient(&SqlState::CONNECTION_FAILURE));
        assert!(is_transient(&SqlState::T_R_DEADLOCK_DETECTED));
        assert!(!is_transient(&SqlState::UNIQUE_VIOLATION));
        assert!(!is_transient(&SqlState::SYNTAX_ERROR));
    }
}
