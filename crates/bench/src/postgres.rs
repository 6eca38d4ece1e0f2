//! PostgreSQL runs (`--database-url`): a scratch database for each scenario, made through
//! the superuser URL given and dropped after the scenario, and what the server spent on
//! a scenario's deliveries: CPU time (from /proc), commits, write transactions and WAL.
//!
//! What each figure counts, and how far it can be trusted:
//!
//! - **CPU**: utime + stime of the postmaster and of every process whose parent it is
//!   (backends, the WAL writer, the checkpointer, autovacuum workers…), but the
//!   benchmark's own connection, plus the postmaster's cutime + cstime: the CPU time of the
//!   children it has already waited for. So a backend or autovacuum worker that exits
//!   during a scenario is still counted, from the moment it is reaped; one that has exited
//!   and is not reaped yet is missed for that moment. It covers the whole server, so
//!   other databases' work counts too, and it needs the server on this machine (its
//!   processes in this /proc); otherwise the figure is left out.
//! - **Commits**: `pg_stat_database.xact_commit` of the scenario's database, read-only
//!   transactions (polls that found nothing, cache reads) included. PostgreSQL 15 keeps
//!   each backend's counts to itself for up to a second while it is busy and up to
//!   `PGSTAT_IDLE_INTERVAL` (10 s) once it is idle, and `pg_stat_force_next_flush()` only
//!   flushes the calling backend's: the count after a scenario is read after `SETTLE`, so it
//!   also holds the nodes' idle polls of those seconds, and the count before may leave out
//!   the last second of set-up, counted then inside the scenario.
//! - **Write transactions**: transaction ids handed out (`pg_current_snapshot()`'s xmax,
//!   which takes none itself), so every transaction that wrote, each a commit that waits for
//!   its WAL to be flushed. Exact and current, but cluster-wide.
//! - **WAL bytes**: how far the WAL insert position moved (`pg_current_wal_insert_lsn()`).
//!   It counts the records `pg_stat_wal.wal_bytes` counts (plus page headers), without
//!   that view's delay; cluster-wide too.

use std::time::Duration;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};

use crate::herald::proc_stat;
use crate::report::Report;

/// How long after a scenario PostgreSQL's statistics are read, so that every backend has
/// flushed its counts: an idle backend does so after 10 s (`PGSTAT_IDLE_INTERVAL`).
pub(crate) const SETTLE: Duration = Duration::from_secs(11);

/// A database made for one scenario, dropped (with whatever is still connected to it)
/// when this is dropped.
pub(crate) struct Scratch {
    admin_url: String,
    name: String,
    /// Herald's URL: the superuser URL, naming the scratch database.
    pub(crate) url: String,
    /// The benchmark's own connection, to the superuser URL's database.
    monitor: Client,
    /// The server process of that connection, left out of the CPU figure.
    monitor_pid: i32,
    /// The postmaster, if the server runs on this machine.
    postmaster: Option<i32>,
}

/// The server's counters at one moment.
pub(crate) struct Snapshot {
    /// CPU seconds, when the server's processes can be read.
    cpu: Option<f64>,
    commits: i64,
    transaction_ids: i64,
    wal_bytes: i64,
}

async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .context("connecting to PostgreSQL (--database-url)")?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

impl Scratch {
    /// Creates `bench_<random>` through `admin_url`, a superuser's `postgres://` URL.
    pub(crate) async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let name = format!("bench_{:016x}", rand::random::<u64>());
        let mut url = url::Url::parse(admin_url).context("--database-url is not a URL")?;
        url.set_path(&name);
        // On a connection of its own, so that the server process that copies the
        // template is gone before anything is measured.
        connect(admin_url)
            .await?
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .context("creating the scenario's database")?;
        let monitor = connect(admin_url).await?;
        let monitor_pid: i32 = monitor
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .try_get(0)?;
        let postmaster = postmaster_of(monitor_pid);
        if postmaster.is_none() {
            eprintln!(
                "note: PostgreSQL's processes are not in this machine's /proc: its CPU is \
                 not reported"
            );
        }
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
            monitor,
            monitor_pid,
            postmaster,
        })
    }

    pub(crate) async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let cpu = self.cpu_seconds();
        let row = self
            .monitor
            .query_one(
                "SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = $1), \
                        pg_snapshot_xmax(pg_current_snapshot())::text::int8, \
                        pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::int8",
                &[&self.name],
            )
            .await
            .context("reading PostgreSQL's statistics")?;
        Ok(Snapshot {
            cpu,
            commits: row.try_get::<_, Option<i64>>(0)?.unwrap_or(0),
            transaction_ids: row.try_get(1)?,
            wal_bytes: row.try_get(2)?,
        })
    }

    /// Adds PostgreSQL's figures for `deliveries` that arrived between `before` and
    /// `after` (taken when the last one arrived); waits `SETTLE` for the commit count.
    pub(crate) async fn report(
        &self,
        report: &mut Report,
        before: &Snapshot,
        after: &Snapshot,
        deliveries: usize,
    ) -> anyhow::Result<()> {
        tokio::time::sleep(SETTLE).await;
        let settled = self.snapshot().await?;
        let per = |n: i64| n as f64 / deliveries.max(1) as f64;
        if let (Some(before), Some(after)) = (before.cpu, after.cpu) {
            report.add(
                "PostgreSQL CPU per 1000 deliveries",
                (after - before) / deliveries.max(1) as f64 * 1000.0,
                "s",
            );
        }
        report.add(
            "commits per delivery",
            per(settled.commits - before.commits),
            "",
        );
        report.add(
            "write transactions per delivery",
            per(after.transaction_ids - before.transaction_ids),
            "",
        );
        report.add(
            "WAL bytes per delivery",
            per(after.wal_bytes - before.wal_bytes),
            "bytes",
        );
        Ok(())
    }

    /// CPU seconds the server has used so far (see the top of this file).
    fn cpu_seconds(&self) -> Option<f64> {
        let postmaster = self.postmaster?;
        let own = proc_stat(&format!("/proc/{postmaster}/stat"))?;
        let mut seconds = own.cpu + own.reaped_children_cpu;
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if pid == self.monitor_pid {
                continue;
            }
            if let Some(stat) = proc_stat(&format!("/proc/{pid}/stat"))
                && stat.parent == postmaster
            {
                seconds += stat.cpu;
            }
        }
        Some(seconds)
    }
}

/// The postmaster, the parent of server process `backend`, if both are in this /proc
/// (and so the server runs on this machine, in this pid namespace).
fn postmaster_of(backend: i32) -> Option<i32> {
    let is_postgres = |pid: i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|comm| comm.trim_end() == "postgres")
    };
    let parent = proc_stat(&format!("/proc/{backend}/stat"))?.parent;
    (is_postgres(backend) && is_postgres(parent)).then_some(parent)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // On a thread with a runtime of its own: a drop cannot await, and may run on the
        // scenarios' runtime.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(async {
                    connect(&admin_url)
                        .await?
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await?;
                    Ok(())
                })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!(
                "warning: could not drop the scenario's database {}: {error:#}",
                self.name
            ),
            Err(_) => eprintln!(
                "warning: could not drop the scenario's database {}",
                self.name
            ),
        }
    }
}
