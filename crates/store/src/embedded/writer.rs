//! The single writer thread of the embedded store, with group commit.
//!
//! Every write is a closure sent to one thread that owns the write connection. The thread
//! takes all closures waiting at that moment, runs each inside its own savepoint in one
//! transaction, commits once (one `fsync` for the whole group), then answers each caller.
//! Many concurrent publishes thus share one commit, and a failing closure rolls back only
//! its own savepoint. A caller is answered only after the commit that holds its write.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::{Result, StoreError};

/// How many writes at most share one transaction.
const MAX_GROUP: usize = 512;
/// How long a group waits for company under concurrent load.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(250);

type Reply = Box<dyn FnOnce(Result<()>) + Send>;
/// A write: runs in the group's transaction, and gives back how to answer its caller once
/// the group is committed, and its error if it failed.
type Job = Box<dyn FnOnce(&Connection) -> (Reply, Option<StoreError>) + Send>;

/// Handle to the writer thread. Cloning is cheap; the thread stops when every handle is gone.
#[derive(Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writer thread on `conn`.
    pub(crate) fn start(conn: Connection) -> std::io::Result<Self> {
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("herald-store-writer".into())
            .spawn(move || run(conn, rx))?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the next group transaction and returns its result once committed.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let job: Job = Box::new(move |conn: &Connection| {
            let outcome = in_savepoint(conn, f);
            let failed = outcome.as_ref().err().cloned();
            let reply: Reply = Box::new(move |committed: Result<()>| {
                let _ = tx.send(committed.and(outcome));
            });
            (reply, failed)
        });
        self.jobs
            .send(job)
            .map_err(|_| backend_msg("the store writer has stopped"))?;
        rx.await
            .map_err(|_| backend_msg("the store writer dropped a write"))?
    }
}

/// Runs a statement without parameters through the statement cache (no parse per call).
fn exec(conn: &Connection, sql: &str) -> Result<()> {
    conn.prepare_cached(sql)
        .and_then(|mut stmt| stmt.execute([]))
        .map(drop)
        .map_err(backend)
}

fn in_savepoint<R>(conn: &Connection, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
    exec(conn, "SAVEPOINT w")?;
    // A panic in one write (a bug; writes may run fan-out code for entity messages) must
    // not take the writer thread, and with it every later write, down: it fails that
    // write alone.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(backend_msg("a store write panicked; it was rolled back")));
    match result {
        Ok(value) => {
            exec(conn, "RELEASE w")?;
            Ok(value)
        }
        // SQLite rolls back the whole transaction by itself after some errors (a full
        // disk, an I/O error): then there is no savepoint left to roll back to.
        Err(err) if conn.is_autocommit() => Err(err),
        Err(err) => {
            exec(conn, "ROLLBACK TO w")?;
            exec(conn, "RELEASE w")?;
            Err(err)
        }
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    let mut previous_group = 0;
    while let Ok(first) = rx.recv() {
        let mut group = Vec::with_capacity(16);
        group.push(first);
        take_waiting(&rx, &mut group);
        // Under concurrent load (the last group had company), wait a moment for more
        // writes: one commit then carries more of them, which saves syncs and, above all,
        // rewriting the same hot B-tree pages into the WAL for every few rows. A lone
        // writer is never delayed.
        if previous_group > 1 && group.len() < MAX_GROUP {
            std::thread::sleep(COMMIT_DELAY);
            take_waiting(&rx, &mut group);
        }
        previous_group = group.len();
        if let Err(err) = exec(&conn, "BEGIN IMMEDIATE") {
            // Dropping the jobs answers each caller with an error; nothing was written.
            tracing::error!(error = %err, "store could not begin a transaction");
            continue;
        }
        let mut replies: Vec<Reply> = Vec::with_capacity(group.len());
        let mut jobs = group.into_iter();
        let mut began = true;
        for job in jobs.by_ref() {
            let (reply, failed) = job(&conn);
            replies.push(reply);
            if conn.is_autocommit() {
                // SQLite rolled the transaction back after this write failed: the writes
                // before it in the group are gone too, and their callers are told so with
                // the same cause. The rest of the group gets a transaction of its own.
                let cause = failed.unwrap_or_else(|| {
                    backend_msg("the storage engine rolled the transaction back")
                });
                tracing::error!(error = %cause, source = ?std::error::Error::source(&cause), "a store write failed and rolled back its transaction");
                for reply in replies.drain(..) {
                    reply(Err(cause.clone()));
                }
                if let Err(err) = exec(&conn, "BEGIN IMMEDIATE") {
                    tracing::error!(error = %err, "store could not begin a transaction");
                    began = false;
                    break;
                }
            }
        }
        if !began {
            // Dropping the remaining jobs answers each caller with an error.
            drop(jobs);
            continue;
        }
        let committed = exec(&conn, "COMMIT");
        if let Err(err) = &committed {
            let _ = exec(&conn, "ROLLBACK");
            tracing::error!(error = %err, "store commit failed; the group's writes were rolled back");
        }
        for reply in replies {
            reply(committed.clone());
        }
    }
}

/// Moves the writes already waiting into `group`, up to `MAX_GROUP`.
fn take_waiting(rx: &mpsc::Receiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
}

/// A backend error; a full disk is reported as `io::ErrorKind::StorageFull` so callers can
/// say so without knowing SQLite.
pub(crate) fn backend(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, _) = &err
        && e.code == rusqlite::ErrorCode::DiskFull
    {
        return StoreError::Backend(Arc::new(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            err,
        )));
    }
    StoreError::Backend(Arc::new(err))
}

pub(crate) fn backend_msg(msg: &'static str) -> StoreError {
    StoreError::Backend(Arc::new(std::io::Error::other(msg)))
}
