//! The single writer thread of the embedded store, with group commit.
//!
//! Every write is a closure sent to one thread that owns the write connection. The thread
//! takes all closures waiting at that moment, runs them in one transaction, commits once
//! (one `fsync` for the whole group), then answers each caller. Many concurrent publishes
//! thus share one commit. A caller is answered only after the commit that holds its write.
//!
//! A write is all or nothing, and one failing write must not take the others of its group
//! with it. Each write could run in a savepoint of its own, but SQLite then copies every
//! page a write touches that an earlier write of the group already changed into its
//! statement journal: with a group of publishes all appending to the same B-tree leaves,
//! that copying (spilled to a temporary file) was a third of the writer's CPU. So a group
//! runs first without savepoints; if any write in it fails, the whole transaction is
//! rolled back and the group is run again with one savepoint per write, which lets the
//! failing write roll back alone. Writes are therefore `Fn`: they may run twice, the first
//! run's effects undone.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use store::{Result, StoreError};

/// How many writes at most share one transaction.
const MAX_GROUP: usize = 512;
/// How long a group waits for company under concurrent load.
const COMMIT_DELAY: std::time::Duration = std::time::Duration::from_micros(250);

/// A write waiting in the queue: runs in a group's transaction (perhaps twice, see the
/// module's comment), then answers its caller once the group is committed.
trait Write: Send {
    /// Runs the write, keeping its result for the answer; returns its error if it failed.
    fn run(&mut self, conn: &Connection) -> Option<StoreError>;
    /// Answers the caller: the write's result if `committed` is `Ok`, else that error.
    fn answer(self: Box<Self>, committed: Result<()>);
    /// When it was queued.
    fn since(&self) -> std::time::Instant;
}

type Job = Box<dyn Write>;

struct Pending<R, F> {
    f: F,
    outcome: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
    since: std::time::Instant,
}

impl<R, F> Write for Pending<R, F>
where
    R: Send + 'static,
    F: Fn(&Connection) -> Result<R> + Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> Option<StoreError> {
        // A panic in one write (a bug; writes may run fan-out code for entity messages)
        // must not take the writer thread, and with it every later write, down: it fails
        // that write alone.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (self.f)(conn)))
            .unwrap_or_else(|_| Err(backend_msg("a store write panicked; it was rolled back")));
        let failed = outcome.as_ref().err().cloned();
        self.outcome = Some(outcome);
        failed
    }

    fn answer(self: Box<Self>, committed: Result<()>) {
        let outcome = self
            .outcome
            .unwrap_or_else(|| Err(backend_msg("the store writer did not run a write")));
        let _ = self.reply.send(committed.and(outcome));
    }

    fn since(&self) -> std::time::Instant {
        self.since
    }
}

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
    /// `f` may run twice (the first run rolled back): it must not consume what it uses.
    pub(crate) async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: Fn(&Connection) -> Result<R> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel::<Result<R>>();
        let job: Job = Box::new(Pending {
            f,
            outcome: None,
            reply,
            since: std::time::Instant::now(),
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

/// Runs `job` in a savepoint of its own: if it fails, only its changes are undone.
fn in_savepoint(conn: &Connection, job: &mut Job) -> Option<StoreError> {
    if let Err(err) = exec(conn, "SAVEPOINT w") {
        return Some(err);
    }
    let Some(failed) = job.run(conn) else {
        // The write's changes stay in the transaction whatever RELEASE says.
        let _ = exec(conn, "RELEASE w");
        return None;
    };
    // SQLite rolls back the whole transaction by itself after some errors (a full disk,
    // an I/O error): then there is no savepoint left to roll back to.
    if !conn.is_autocommit() {
        let _ = exec(conn, "ROLLBACK TO w").and_then(|()| exec(conn, "RELEASE w"));
    }
    Some(failed)
}

fn run(conn: Connection, rx: mpsc::Receiver<Job>) {
    // `/metrics`: how long each group's transaction took (begin to synced commit), how
    // many writes it carried, and how long its first write waited for it to begin.
    // Registered here, once, with the process's recorder.
    let commit_seconds = metrics::histogram!("herald_store_commit_seconds", "store" => "embedded");
    let group_size = metrics::histogram!("herald_store_group_size", "store" => "embedded");
    let group_wait = metrics::histogram!("herald_store_group_wait_seconds", "store" => "embedded");
    let mut previous_group = 0;
    while let Ok(first) = rx.recv() {
        let first_since = first.since();
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
        group_size.record(group.len() as f64);
        group_wait.record(first_since.elapsed().as_secs_f64());
        let started = std::time::Instant::now();
        let group = match run_fast(&conn, group) {
            Ok(committed) => {
                commit_seconds.record(started.elapsed().as_secs_f64());
                for job in committed {
                    job.answer(Ok(()));
                }
                continue;
            }
            Err(group) => group,
        };
        run_one_by_one(&conn, group);
        commit_seconds.record(started.elapsed().as_secs_f64());
    }
}

/// Runs the group in one transaction without savepoints and commits it. Gives the group
/// back, rolled back, when any write failed (or the transaction could not begin); a
/// failed commit answers every write with its error.
fn run_fast(conn: &Connection, mut group: Vec<Job>) -> std::result::Result<Vec<Job>, Vec<Job>> {
    if exec(conn, "BEGIN IMMEDIATE").is_err() {
        return Err(group);
    }
    let all_ran = group.iter_mut().all(|job| job.run(conn).is_none());
    if !all_ran {
        if !conn.is_autocommit() {
            let _ = exec(conn, "ROLLBACK");
        }
        return Err(group);
    }
    if let Err(err) = exec(conn, "COMMIT") {
        let _ = exec(conn, "ROLLBACK");
        tracing::error!(error = %err, "store commit failed; the group's writes were rolled back");
        for job in group {
            job.answer(Err(err.clone()));
        }
        return Ok(Vec::new());
    }
    Ok(group)
}

/// Runs the group in one transaction with a savepoint per write, so a failing write rolls
/// back alone, then commits and answers every write.
fn run_one_by_one(conn: &Connection, group: Vec<Job>) {
    if let Err(err) = exec(conn, "BEGIN IMMEDIATE") {
        tracing::error!(error = %err, "store could not begin a transaction");
        for job in group {
            job.answer(Err(err.clone()));
        }
        return;
    }
    let mut ran: Vec<Job> = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    while let Some(mut job) = jobs.next() {
        let failed = in_savepoint(conn, &mut job);
        ran.push(job);
        if conn.is_autocommit() {
            // SQLite rolled the transaction back after this write failed: the writes
            // before it in the group are gone too, and their callers are told so with
            // the same cause. The rest of the group gets a transaction of its own.
            let cause = failed
                .unwrap_or_else(|| backend_msg("the storage engine rolled the transaction back"));
            tracing::error!(error = %cause, source = ?std::error::Error::source(&cause), "a store write failed and rolled back its transaction");
            for job in ran.drain(..) {
                job.answer(Err(cause.clone()));
            }
            if let Err(err) = exec(conn, "BEGIN IMMEDIATE") {
                tracing::error!(error = %err, "store could not begin a transaction");
                for job in jobs {
                    job.answer(Err(err.clone()));
                }
                return;
            }
        }
    }
    let committed = exec(conn, "COMMIT");
    if let Err(err) = &committed {
        let _ = exec(conn, "ROLLBACK");
        tracing::error!(error = %err, "store commit failed; the group's writes were rolled back");
    }
    for job in ran {
        job.answer(committed.clone());
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

/// A backend error, in the variant a caller branches on: a full disk (or the size cap) is
/// `StorageFull`, a database locked past the busy timeout is `Unavailable`.
pub(crate) fn backend(err: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(e, _) = &err {
        match e.code {
            rusqlite::ErrorCode::DiskFull => return StoreError::StorageFull(Arc::new(err)),
            rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                return StoreError::Unavailable(Arc::new(err));
            }
            _ => {}
        }
    }
    StoreError::Backend(Arc::new(err))
}

pub(crate) fn backend_msg(msg: &'static str) -> StoreError {
    StoreError::Backend(Arc::new(std::io::Error::other(msg)))
}
