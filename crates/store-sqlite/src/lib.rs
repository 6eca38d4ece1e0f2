//! The embedded backend: one SQLite file in WAL mode, one writer thread with group
//! commit (`writer.rs`), and a small pool of read connections. Row mapping is in `rows.rs`.
//!
//! Durability: with `synchronous = FULL` (the default) a write returns only after its
//! group's commit reached the disk, so a 2xx from ingest means the message is stored.

mod backup;
mod purge;
mod rows;
mod writer;

pub use backup::{BackupReport, backup};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, DeliveryId, Endpoint, EndpointId,
    EntityRef, EventType, Message, MessageId, Status, TokenId,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use self::rows::{json, ms};
use self::writer::{Writer, backend, backend_msg};
use store::{
    AttemptFilter, AttemptRecord, Deliveries, DeliveryFilter, DueDelivery, FIRST_GENERATION,
    Inserted, LeaseRequest, Leased, LeasedDelivery, MessageFilter, NewMessage, NodeId, Order, Page,
    Result, StatusCounts, Store, StoreError,
};

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The database file; its folder is created if missing.
    pub path: PathBuf,
    /// `true`: every commit is synced to disk before it is acknowledged (SQLite
    /// `synchronous = FULL`). `false` trades the last commits on power loss for speed
    /// (`NORMAL`); a process crash still loses nothing.
    pub sync_full: bool,
    /// The database file grows to at most about this many bytes; beyond that writes fail
    /// as if the disk were full (`io::ErrorKind::StorageFull`), leaving room on the disk.
    pub max_bytes: Option<u64>,
}

/// Why the embedded store did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process has the data directory open.
    #[error(
        "the data directory {dir} is in use by another Herald process{}; stop it, or give this one another data directory",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    InUse { dir: String, pid: Option<u32> },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Takes the lock that makes this process the data directory's only user, and writes its
/// pid into the lock file for the message another process gets.
fn lock_dir(dir: &std::path::Path) -> std::result::Result<std::fs::File, OpenError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("herald.lock");
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| OpenError::Store(StoreError::Backend(Arc::new(e))))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(OpenError::InUse {
                dir: dir.display().to_string(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(OpenError::Store(StoreError::Backend(Arc::new(e))));
        }
    }
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| writeln!(file, "{}", std::process::id()));
    written.map_err(|e| OpenError::Store(StoreError::Backend(Arc::new(e))))?;
    Ok(file)
}

/// The embedded SQLite store: one process's, never shared (see `open`).
pub struct EmbeddedStore {
    /// The data directory's lock, held as long as the store is open.
    _lock: std::fs::File,
    /// Leases released at open, left behind by the previous process.
    released_at_open: u64,
    /// Each throttled endpoint's next free start (see `store::next_slot`). A `std` mutex:
    /// held for one map operation.
    throttle: Mutex<HashMap<EndpointId, DateTime<Utc>>>,
    writer: Writer,
    readers: Arc<ReadPool>,
    /// Cache of `app_endpoints`. Entries carry the generation they were read at and are
    /// kept only if no endpoint write happened meanwhile (see `app_endpoints`).
    endpoint_cache: Mutex<HashMap<AppId, Arc<Vec<Endpoint>>>>,
    endpoint_generation: AtomicU64,
    /// Cache of `get_app` by the key asked for (id or uid), kept the same way.
    app_cache: Mutex<HashMap<String, Application>>,
    app_generation: AtomicU64,
    /// Deliveries recovered per write (see `recover`).
    recover_chunk: i64,
}

/// Read connections, reused. A `std` mutex: it is held only to push or pop a connection.
struct ReadPool {
    config: EmbeddedConfig,
    idle: Mutex<Vec<Connection>>,
}

impl ReadPool {
    fn with<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R> {
        let conn = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match conn {
            Some(conn) => conn,
            None => open_reader(&self.config).map_err(backend)?,
        };
        let result = f(&conn).map_err(backend);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < 16 {
            idle.push(conn);
        }
        result
    }
}

fn open_reader(config: &EmbeddedConfig) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        &config.path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Why a message whose payload was expunged is not sent again.
const EXPUNGED: &str = "the message's payload was expunged: it cannot be sent again";

/// Room that must be left below `max_store_size` for the store to call itself ready: a
/// thirty-second of it, at most 64 pages (a few publishes' worth).
fn ready_room(max_pages: i64) -> i64 {
    (max_pages / 32).clamp(1, 64)
}

/// The version of `schema.sql`, kept in the database's `user_version`.
const SCHEMA_VERSION: i64 = 11;

/// How a database of an older schema is brought to the next version, by the version it
/// starts from. Each step runs in one transaction with the new `user_version`, so a crash
/// during a migration leaves the database as it was.
const MIGRATIONS: &[(i64, &str)] = &[
    (2, include_str!("migrate_2_to_3.sql")),
    (3, include_str!("migrate_3_to_4.sql")),
    (4, include_str!("migrate_4_to_5.sql")),
    (5, include_str!("migrate_5_to_6.sql")),
    (6, include_str!("migrate_6_to_7.sql")),
    (7, include_str!("migrate_7_to_8.sql")),
    (8, include_str!("migrate_8_to_9.sql")),
    (9, include_str!("migrate_9_to_10.sql")),
    (10, include_str!("migrate_10_to_11.sql")),
];

/// Brings a database written by an older Herald to `SCHEMA_VERSION`, step by step; refuses
/// one it cannot migrate (a newer Herald's, or one older than the migrations reach), with
/// what to do, instead of failing on every write later.
fn migrate(conn: &Connection, path: &std::path::Path) -> Result<()> {
    let has_tables: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages')",
            [],
            |r| r.get(0),
        )
        .map_err(backend)?;
    if !has_tables {
        return Ok(());
    }
    loop {
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(backend)?;
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let Some((_, sql)) = MIGRATIONS.iter().find(|(from, _)| *from == version) else {
            let what = if version > SCHEMA_VERSION {
                format!(
                    "the database was written by a newer Herald (schema {version}; this build \
                     knows schemas up to {SCHEMA_VERSION}): run that version of Herald, or \
                     start with an empty data directory"
                )
            } else {
                format!(
                    "the database was written by an older Herald (schema {version}; this build \
                     uses schema {SCHEMA_VERSION} and migrates from schema {} on) and cannot \
                     be migrated: start with an empty data directory",
                    MIGRATIONS.first().map_or(SCHEMA_VERSION, |(from, _)| *from)
                )
            };
            return Err(StoreError::Backend(Arc::new(std::io::Error::other(
                format!(
                    "{what}, or move {} aside",
                    path.parent().unwrap_or(path).display()
                ),
            ))));
        };
        let started = std::time::Instant::now();
        tracing::info!(
            from = version,
            to = version + 1,
            "migrating the database's schema"
        );
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}\nPRAGMA user_version = {}; COMMIT;",
            version + 1
        ))
        .map_err(|err| {
            let _ = conn.execute_batch("ROLLBACK");
            backend(err)
        })?;
        tracing::info!(
            from = version,
            to = version + 1,
            seconds = started.elapsed().as_secs_f64(),
            "migrated the database's schema"
        );
    }
}

impl EmbeddedStore {
    /// Opens (creating if needed) the database and starts the writer thread.
    ///
    /// The embedded store is a single node's: it locks its folder first (`herald.lock`),
    /// and a second process opening the same folder gets `InUse` before anything is read
    /// or written. Since no other process can hold a lease on its deliveries, it releases
    /// every lease left by the previous process (due at once) when it opens.
    pub fn open(config: EmbeddedConfig) -> std::result::Result<Self, OpenError> {
        let dir = config
            .path
            .parent()
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
        std::fs::create_dir_all(&dir)
            .map_err(|e| OpenError::Store(StoreError::Backend(Arc::new(e))))?;
        let lock = lock_dir(&dir)?;
        let conn = Connection::open(&config.path).map_err(backend)?;
        let sync = if config.sync_full { "FULL" } else { "NORMAL" };
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = OFF;"
        ))
        .map_err(backend)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(backend)?;
        migrate(&conn, &config.path)?;
        conn.execute_batch(include_str!("schema.sql"))
            .map_err(backend)?;
        conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))
            .map_err(backend)?;
        if let Some(max) = config.max_bytes {
            let page: u64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .map_err(backend)?;
            conn.execute_batch(&format!(
                "PRAGMA max_page_count = {};",
                (max / page.max(512)).max(1)
            ))
            .map_err(backend)?;
        }
        // Every lease is the previous process's: its deliveries are due again at once,
        // with the time of their last change.
        let released_at_open = conn
            .execute(
                "UPDATE deliveries SET leased = 0, next_attempt_at = updated_at WHERE status = 1 AND leased = 1",
                [],
            )
            .map_err(backend)? as u64;
        let writer = Writer::start(conn).map_err(|e| StoreError::Backend(Arc::new(e)))?;
        Ok(Self {
            _lock: lock,
            released_at_open,
            throttle: Mutex::new(HashMap::new()),
            writer,
            readers: Arc::new(ReadPool {
                config,
                idle: Mutex::new(Vec::new()),
            }),
            endpoint_cache: Mutex::new(HashMap::new()),
            endpoint_generation: AtomicU64::new(0),
            app_cache: Mutex::new(HashMap::new()),
            app_generation: AtomicU64::new(0),
            recover_chunk: 10_000,
        })
    }

    /// Sets `set` (which may use `?3`, `at`) on each of `deliveries` still leased to `owner`
    /// under its generation; returns the positions of the others, left as they are.
    async fn fenced_update(
        &self,
        set: &'static str,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        at: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        let deliveries = deliveries.to_vec();
        let sql = format!(
            "UPDATE deliveries SET {set} WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 1 AND leased = 1 AND lease_owner = ?4 AND lease_gen = ?5"
        );
        self.writer
            .write(move |conn| {
                let mut stmt = conn.prepare_cached(&sql).map_err(backend)?;
                let mut stale = Vec::new();
                for (i, d) in deliveries.iter().enumerate() {
                    let changed = stmt
                        .execute(params![
                            d.msg_id.as_str(),
                            d.endpoint_id.as_str(),
                            ms(at),
                            owner.0 as i64,
                            d.generation as i64
                        ])
                        .map_err(backend)?;
                    if changed == 0 {
                        stale.push(i);
                    }
                }
                Ok(stale)
            })
            .await
    }

    /// The creation time of the attempt of `endpoint` that `sql` finds, reading from `at`
    /// on (`?1` the endpoint, `?2` the time, `?3` the first attempt id that can have been
    /// made then: ids sort by creation time, so the index on (endpoint_id, id) is read
    /// only from there).
    async fn attempt_time(
        &self,
        sql: &'static str,
        endpoint: &EndpointId,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let endpoint = endpoint.as_str().to_owned();
        self.read(move |conn| {
            conn.prepare_cached(sql)?
                .query_row(
                    params![endpoint, ms(at), AttemptId::floor_at(at).as_str()],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .map(|t| t.map(rows::time))
        })
        .await
    }

    /// How many leases the previous process left behind, released at open.
    pub fn released_at_open(&self) -> u64 {
        self.released_at_open
    }

    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let pool = self.readers.clone();
        tokio::task::spawn_blocking(move || pool.with(f))
            .await
            .map_err(|_| writer::backend_msg("a store read panicked"))?
    }

    /// Forgets cached applications after an application write committed.
    fn apps_changed(&self) {
        self.app_generation.fetch_add(1, Ordering::SeqCst);
        self.app_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Forgets cached endpoints after an endpoint write committed.
    fn endpoints_changed(&self) {
        self.endpoint_generation.fetch_add(1, Ordering::SeqCst);
        self.endpoint_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Builds `WHERE … ORDER BY … LIMIT …` from conditions and a page.
struct Select {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Select {
    fn new() -> Self {
        Self {
            conditions: Vec::new(),
            params: Vec::new(),
        }
    }

    fn when(&mut self, condition: &str, value: impl Into<Value>) -> &mut Self {
        self.params.push(value.into());
        self.conditions
            .push(condition.replace('?', &format!("?{}", self.params.len())));
        self
    }

    /// `column` strictly between `after` and `before`, where given.
    fn created(
        &mut self,
        column: &str,
        before: Option<DateTime<Utc>>,
        after: Option<DateTime<Utc>>,
    ) -> &mut Self {
        if let Some(before) = before {
            self.when(&format!("{column} < ?"), ms(before));
        }
        if let Some(after) = after {
            self.when(&format!("{column} > ?"), ms(after));
        }
        self
    }

    /// Finishes the query with the page's cursor, order and `limit + 1`.
    fn finish(mut self, head: &str, key: &str, page: &Page) -> (String, Vec<Value>) {
        let (cmp, dir) = match page.order {
            Order::Ascending => (">", "ASC"),
            Order::Descending => ("<", "DESC"),
        };
        if let Some(cursor) = &page.cursor {
            self.when(&format!("{key} {cmp} ?"), cursor.clone());
        }
        let mut sql = head.to_owned();
        if !self.conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.conditions.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {key} {dir} LIMIT {}", page.limit + 1));
        (sql, self.params)
    }
}

fn query_all<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(params), map)?;
    rows.collect()
}

fn is_unique_violation(err: &rusqlite::Error) -> bool {
    matches!(
        err,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

fn conflict_or_backend(what: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |err| {
        if is_unique_violation(&err) {
            StoreError::Conflict(what.to_owned())
        } else {
            backend(err)
        }
    }
}

fn opt_json<T: serde::Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(json)
}

fn insert_app(conn: &Connection, app: &Application) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut stmt| {
        stmt.execute(params![
            app.id.as_str(),
            app.uid,
            app.name,
            app.rate_limit,
            json(&app.metadata),
            ms(app.created_at),
            ms(app.updated_at)
        ])
    })
    .map_err(conflict_or_backend("an application with this uid already exists"))?;
    Ok(())
}

fn endpoint_params(ep: &Endpoint) -> Vec<Value> {
    vec![
        ep.id.as_str().to_owned().into(),
        ep.app_id.as_str().to_owned().into(),
        ep.uid.clone().into(),
        ep.url.clone().into(),
        ep.description.clone().into(),
        i64::from(ep.version).into(),
        ep.rate_limit.map(i64::from).into(),
        i64::from(ep.disabled).into(),
        opt_json(&ep.filter_types).into(),
        opt_json(&ep.channels).into(),
        json(&ep.metadata).into(),
        json(&ep.headers).into(),
        ep.secret.expose().to_owned().into(),
        rows::retired_json(&ep.retired_secrets).into(),
        ms(ep.created_at).into(),
        ms(ep.updated_at).into(),
        ep.filter.as_ref().map(|f| f.to_string()).into(),
        ep.name.clone().into(),
        ep.method.as_str().to_owned().into(),
        ep.envelope.as_str().to_owned().into(),
        ep.party.clone().into(),
        ep.transform.as_ref().map(|t| t.to_string()).into(),
        ep.payload_mode.as_str().to_owned().into(),
        (!ep.diff_keep.is_empty())
            .then(|| json(&ep.diff_keep))
            .into(),
        (ep.revision as i64).into(),
    ]
}

/// Makes `message` the entity's snapshot (or drops the snapshot, when the message says
/// the entity was deleted) and returns the snapshot it replaces: the id of the message
/// that held it, and its payload.
fn replace_snapshot(
    conn: &Connection,
    message: &Message,
    entity: &EntityRef,
) -> Result<Option<(String, Arc<str>)>> {
    let app = message.app_id.as_str();
    let kind = entity.entity_type.as_deref().unwrap_or("");
    let previous: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT e.msg_id, m.payload FROM entities e JOIN messages m ON m.app_id = e.app_id AND m.id = e.msg_id \
             WHERE e.app_id = ?1 AND e.entity_type = ?2 AND e.entity_id = ?3",
        )
        .and_then(|mut s| {
            s.query_row([app, kind, &entity.id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(backend)?;
    if entity.deleted {
        conn.prepare_cached(
            "DELETE FROM entities WHERE app_id = ?1 AND entity_type = ?2 AND entity_id = ?3",
        )
        .and_then(|mut s| s.execute([app, kind, &entity.id]))
        .map_err(backend)?;
    } else {
        conn.prepare_cached(
            "INSERT INTO entities (app_id, entity_type, entity_id, msg_id, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (app_id, entity_type, entity_id) DO UPDATE SET msg_id = excluded.msg_id, updated_at = excluded.updated_at",
        )
        .and_then(|mut s| {
            s.execute(params![
                app,
                kind,
                entity.id,
                message.id.as_str(),
                ms(message.created_at)
            ])
        })
        .map_err(backend)?;
    }
    Ok(previous.map(|(id, payload)| (id, Arc::from(payload))))
}

fn get_message_in(
    conn: &Connection,
    app: &str,
    id_or_event_id: &str,
) -> rusqlite::Result<Option<Message>> {
    // By id first, then by eventId: each lookup uses its own index.
    for column in ["id", "event_id"] {
        let sql = format!(
            "SELECT {} FROM messages m WHERE m.app_id = ?1 AND m.{column} = ?2",
            rows::MESSAGE_COLUMNS
        );
        let found = conn
            .prepare_cached(&sql)?
            .query_row(params![app, id_or_event_id], rows::message)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_app(&self, app: Application) -> Result<Application> {
        let app = self
            .writer
            .write(move |conn| {
                insert_app(conn, &app)?;
                Ok(app.clone())
            })
            .await?;
        self.apps_changed();
        Ok(app)
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>> {
        if let Some(hit) = self
            .app_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id_or_uid)
        {
            return Ok(Some(hit.clone()));
        }
        let generation = self.app_generation.load(Ordering::SeqCst);
        let key = id_or_uid.to_owned();
        let found = self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM applications WHERE id = ?1 OR uid = ?1 ORDER BY id = ?1 DESC LIMIT 1",
                rows::APP_COLUMNS
            );
            conn.prepare_cached(&sql)?
                .query_row([key], rows::app)
                .optional()
        })
        .await?;
        if let Some(app) = &found {
            let mut cache = self.app_cache.lock().unwrap_or_else(|p| p.into_inner());
            if self.app_generation.load(Ordering::SeqCst) == generation {
                cache.insert(id_or_uid.to_owned(), app.clone());
            }
        }
        Ok(found)
    }

    async fn list_apps(&self, search: Option<&str>, page: &Page) -> Result<Vec<Application>> {
        let mut select = Select::new();
        if let Some(search) = search {
            select.when(
                "(instr(lower(name), ?) > 0 OR instr(lower(coalesce(uid, '')), ?) > 0 OR instr(lower(id), ?) > 0)",
                search.to_ascii_lowercase(),
            );
        }
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM applications", rows::APP_COLUMNS),
            "id",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::app))
            .await
    }

    async fn update_app(&self, app: Application) -> Result<Application> {
        let app = self
            .writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "UPDATE applications SET uid = ?2, name = ?3, rate_limit = ?4, metadata = ?5, updated_at = ?6 WHERE id = ?1",
                        params![
                            app.id.as_str(),
                            app.uid,
                            app.name,
                            app.rate_limit,
                            json(&app.metadata),
                            ms(app.updated_at)
                        ],
                    )
                    .map_err(conflict_or_backend("an application with this uid already exists"))?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(app.clone())
            })
            .await?;
        self.apps_changed();
        Ok(app)
    }

    async fn delete_app(&self, id: &AppId) -> Result<()> {
        let id = id.as_str().to_owned();
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute("DELETE FROM applications WHERE id = ?1", [&id])
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                for table in [
                    "endpoints",
                    "messages",
                    "idempotency_keys",
                    "entities",
                    "tokens",
                    "failing_endpoints",
                    "deliveries",
                    "attempts",
                ] {
                    conn.execute(&format!("DELETE FROM {table} WHERE app_id = ?1"), [&id])
                        .map_err(backend)?;
                }
                Ok(())
            })
            .await?;
        self.apps_changed();
        self.endpoints_changed();
        Ok(())
    }

    async fn create_event_type(&self, et: EventType) -> Result<EventType> {
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO event_types (name, description, archived, deprecated, feature_flag, group_name, schemas, created_at, updated_at, enforce_schema) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        et.name,
                        et.description,
                        et.archived,
                        et.deprecated,
                        et.feature_flag,
                        et.group_name,
                        et.schemas.as_ref().map(|s| s.to_string()),
                        ms(et.created_at),
                        ms(et.updated_at),
                        et.enforce_schema
                    ],
                )
                .map_err(conflict_or_backend("an event type with this name already exists"))?;
                Ok(et.clone())
            })
            .await
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        let name = name.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM event_types WHERE name = ?1",
                rows::EVENT_TYPE_COLUMNS
            );
            conn.prepare_cached(&sql)?
                .query_row([name], rows::event_type)
                .optional()
        })
        .await
    }

    async fn list_event_types(
        &self,
        page: &Page,
        include_archived: bool,
    ) -> Result<Vec<EventType>> {
        let mut select = Select::new();
        if !include_archived {
            select.when("archived = ?", 0);
        }
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM event_types", rows::EVENT_TYPE_COLUMNS),
            "name",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::event_type))
            .await
    }

    async fn update_event_type(&self, et: EventType) -> Result<EventType> {
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "UPDATE event_types SET description = ?2, archived = ?3, deprecated = ?4, feature_flag = ?5, group_name = ?6, schemas = ?7, updated_at = ?8, enforce_schema = ?9 WHERE name = ?1",
                        params![
                            et.name,
                            et.description,
                            et.archived,
                            et.deprecated,
                            et.feature_flag,
                            et.group_name,
                            et.schemas.as_ref().map(|s| s.to_string()),
                            ms(et.updated_at),
                            et.enforce_schema
                        ],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(et.clone())
            })
            .await
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute("DELETE FROM event_types WHERE name = ?1", [&name])
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint> {
        let endpoint = self
            .writer
            .write(move |conn| {
                let app_exists: bool = conn
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM applications WHERE id = ?1)",
                        [endpoint.app_id.as_str()],
                        |row| row.get(0),
                    )
                    .map_err(backend)?;
                if !app_exists {
                    return Err(StoreError::NotFound);
                }
                let sql = format!(
                    "INSERT INTO endpoints ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25)",
                    rows::ENDPOINT_COLUMNS
                );
                conn.execute(&sql, rusqlite::params_from_iter(endpoint_params(&endpoint)))
                    .map_err(conflict_or_backend("an endpoint with this uid already exists"))?;
                Ok(endpoint.clone())
            })
            .await?;
        self.endpoints_changed();
        Ok(endpoint)
    }

    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>> {
        let (app, key) = (app.as_str().to_owned(), id_or_uid.to_owned());
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM endpoints WHERE app_id = ?1 AND (id = ?2 OR uid = ?2) ORDER BY id = ?2 DESC LIMIT 1",
                rows::ENDPOINT_COLUMNS
            );
            conn.prepare_cached(&sql)?
                .query_row(params![app, key], rows::endpoint)
                .optional()
        })
        .await
    }

    async fn list_endpoints(&self, app: &AppId, page: &Page) -> Result<Vec<Endpoint>> {
        let mut select = Select::new();
        select.when("app_id = ?", app.as_str().to_owned());
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM endpoints", rows::ENDPOINT_COLUMNS),
            "id",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::endpoint))
            .await
    }

    async fn app_endpoints(&self, app: &AppId) -> Result<Arc<Vec<Endpoint>>> {
        if let Some(hit) = self
            .endpoint_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(app)
        {
            return Ok(hit.clone());
        }
        // Read the generation before the rows: if an endpoint write lands meanwhile, the
        // generation moves and the possibly stale rows are not cached.
        let generation = self.endpoint_generation.load(Ordering::SeqCst);
        let key = app.as_str().to_owned();
        let endpoints = Arc::new(
            self.read(move |conn| {
                let sql = format!(
                    "SELECT {} FROM endpoints WHERE app_id = ?1 ORDER BY id",
                    rows::ENDPOINT_COLUMNS
                );
                query_all(conn, &sql, vec![key.into()], rows::endpoint)
            })
            .await?,
        );
        let mut cache = self
            .endpoint_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if self.endpoint_generation.load(Ordering::SeqCst) == generation {
            cache.insert(app.clone(), endpoints.clone());
        }
        Ok(endpoints)
    }

    async fn update_endpoint(&self, endpoint: Endpoint, expected: u64) -> Result<Endpoint> {
        let mut endpoint = endpoint;
        endpoint.revision = expected + 1;
        let endpoint = self
            .writer
            .write(move |conn| {
                let sql = "UPDATE endpoints SET uid = ?3, url = ?4, description = ?5, version = ?6, rate_limit = ?7, disabled = ?8, filter_types = ?9, channels = ?10, metadata = ?11, headers = ?12, secret = ?13, retired_secrets = ?14, updated_at = ?16, filter = ?17, name = ?18, method = ?19, envelope = ?20, party = ?21, transform = ?22, payload_mode = ?23, diff_keep = ?24, revision = ?25 WHERE id = ?1 AND app_id = ?2 AND revision = ?25 - 1";
                let changed = conn
                    .execute(sql, rusqlite::params_from_iter(endpoint_params(&endpoint)))
                    .map_err(conflict_or_backend("an endpoint with this uid already exists"))?;
                if changed == 0 {
                    let exists: bool = conn
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM endpoints WHERE app_id = ?1 AND id = ?2)",
                            [endpoint.app_id.as_str(), endpoint.id.as_str()],
                            |row| row.get(0),
                        )
                        .map_err(backend)?;
                    return Err(if exists {
                        StoreError::Changed
                    } else {
                        StoreError::NotFound
                    });
                }
                Ok(endpoint.clone())
            })
            .await?;
        self.endpoints_changed();
        Ok(endpoint)
    }

    async fn disable_endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let (app, id) = (app.as_str().to_owned(), id.as_str().to_owned());
        let disabled = self
            .writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "UPDATE endpoints SET disabled = 1, updated_at = ?3, revision = revision + 1 WHERE app_id = ?1 AND id = ?2 AND disabled = 0",
                        params![app, id, ms(at)],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    let exists: bool = conn
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM endpoints WHERE app_id = ?1 AND id = ?2)",
                            [&app, &id],
                            |row| row.get(0),
                        )
                        .map_err(backend)?;
                    if !exists {
                        return Err(StoreError::NotFound);
                    }
                } else {
                    conn.execute("DELETE FROM failing_endpoints WHERE endpoint_id = ?1", [&id])
                        .map_err(backend)?;
                }
                Ok(changed > 0)
            })
            .await?;
        if disabled {
            self.endpoints_changed();
        }
        Ok(disabled)
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()> {
        let (app, id) = (app.as_str().to_owned(), id.as_str().to_owned());
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "DELETE FROM endpoints WHERE app_id = ?1 AND id = ?2",
                        [&app, &id],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                conn.execute("DELETE FROM deliveries WHERE endpoint_id = ?1", [&id])
                    .map_err(backend)?;
                conn.execute("DELETE FROM attempts WHERE endpoint_id = ?1", [&id])
                    .map_err(backend)?;
                conn.execute(
                    "DELETE FROM failing_endpoints WHERE endpoint_id = ?1",
                    [&id],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await?;
        self.endpoints_changed();
        Ok(())
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted> {
        self.writer
            .write(move |conn| {
                let NewMessage {
                    message,
                    owner,
                    deliveries,
                    idempotency_key,
                } = &new;
                let app = message.app_id.as_str();
                if let Some(key) = idempotency_key {
                    let earlier: Option<String> = conn
                        .prepare_cached(
                            "SELECT msg_id FROM idempotency_keys WHERE app_id = ?1 AND key = ?2",
                        )
                        .and_then(|mut s| s.query_row([app, key], |r| r.get(0)).optional())
                        .map_err(backend)?;
                    if let Some(earlier) = &earlier
                        && let Some(message) =
                            get_message_in(conn, app, earlier).map_err(backend)?
                    {
                        return Ok(Inserted::Existing(Box::new(message)));
                    }
                    // A key whose message is past retention is free again.
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency_keys (app_id, key, msg_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                    )
                    .and_then(|mut s| s.execute(params![app, key, message.id.as_str(), ms(message.created_at)]))
                    .map_err(backend)?;
                }
                // The entity's snapshot is read and replaced in this transaction, in the
                // writer's order: each message sees the one accepted just before it.
                let mut previous_id = None;
                let mut previous = None;
                if let Some(entity) = &message.entity
                    && let Some((id, payload)) = replace_snapshot(conn, message, entity)?
                {
                    previous_id = Some(id);
                    previous = Some(payload);
                }
                let deliveries = match deliveries {
                    Deliveries::Known(deliveries) => deliveries.clone(),
                    Deliveries::FromPrevious(decide) => decide(previous.as_deref()),
                };
                let msg = message;
                let entity = msg.entity.as_ref();
                conn.prepare_cached(
                    "INSERT INTO messages (id, app_id, event_id, event_type, payload, channels, tags, created_at, origin, entity_type, entity_id, entity_deleted, previous_id, traceparent, payload_expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        msg.id.as_str(),
                        app,
                        msg.event_id,
                        msg.event_type,
                        &*msg.payload,
                        opt_json(&msg.channels),
                        opt_json(&msg.tags),
                        ms(msg.created_at),
                        msg.origin,
                        entity.and_then(|e| e.entity_type.as_deref()),
                        entity.map(|e| e.id.as_str()),
                        entity.is_some_and(|e| e.deleted),
                        previous_id,
                        msg.traceparent,
                        msg.payload_expires_at.map(ms),
                    ])
                })
                .map_err(conflict_or_backend("a message with this eventId already exists"))?;
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT INTO deliveries (id, msg_id, app_id, endpoint_id, status, attempts, next_attempt_at, leased, trigger, created_at, updated_at, lease_owner, lease_gen) VALUES (?1, ?2, ?3, ?4, 1, 0, ?5, ?6, 0, ?7, ?7, ?8, ?9)",
                    )
                    .map_err(backend)?;
                let created = ms(msg.created_at);
                for d in &deliveries {
                    let (next, leased, lease_owner, generation) = match d.leased_until {
                        Some(until) => (ms(until), true, Some(owner.0 as i64), FIRST_GENERATION),
                        None => (created, false, None, 0),
                    };
                    stmt.execute(params![
                        d.id.as_str(),
                        msg.id.as_str(),
                        app,
                        d.endpoint_id.as_str(),
                        next,
                        leased,
                        created,
                        lease_owner,
                        generation as i64
                    ])
                    .map_err(backend)?;
                }
                Ok(Inserted::Created {
                    previous,
                    deliveries,
                })
            })
            .await
    }

    async fn get_message(&self, app: &AppId, id_or_event_id: &str) -> Result<Option<Message>> {
        let (app, key) = (app.as_str().to_owned(), id_or_event_id.to_owned());
        self.read(move |conn| get_message_in(conn, &app, &key))
            .await
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>> {
        let mut select = Select::new();
        select.when("m.app_id = ?", app.as_str().to_owned());
        message_conditions(&mut select, filter);
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM messages m", rows::MESSAGE_COLUMNS),
            "m.id",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::message))
            .await
    }

    async fn lease_due(&self, request: LeaseRequest) -> Result<Leased> {
        self.writer
            .write(move |conn| {
                let (mut due, resume_after) = due_by_turns(conn, &request).map_err(backend)?;
                // Each lease gets the next generation, so a holder whose lease ran out is
                // fenced off from the delivery (its record, release and renew match no row).
                let mut lease = conn
                    .prepare_cached(
                        "UPDATE deliveries SET leased = 1, next_attempt_at = ?3, lease_owner = ?4, lease_gen = lease_gen + 1 WHERE msg_id = ?1 AND endpoint_id = ?2 RETURNING lease_gen",
                    )
                    .map_err(backend)?;
                for d in &mut due {
                    let generation: i64 = lease
                        .query_row(
                            params![
                                d.delivery.msg_id.as_str(),
                                d.delivery.endpoint_id.as_str(),
                                ms(request.leased_until),
                                request.owner.0 as i64
                            ],
                            |r| r.get(0),
                        )
                        .map_err(backend)?;
                    d.generation = generation as u64;
                }
                Ok(Leased { due, resume_after })
            })
            .await
    }

    async fn renew(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        until: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        // Never backwards: a renewal that lands after a later one leaves the later end.
        self.fenced_update(
            "next_attempt_at = max(next_attempt_at, ?3)",
            owner,
            deliveries,
            until,
        )
        .await
    }

    async fn release(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        now: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        self.fenced_update("leased = 0, next_attempt_at = ?3", owner, deliveries, now)
            .await
    }

    async fn record_attempts(
        &self,
        owner: NodeId,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<usize>> {
        self.writer
            .write(move |conn| {
                let insert_sql = format!(
                    "INSERT INTO attempts ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    rows::ATTEMPT_COLUMNS
                );
                let mut insert = conn.prepare_cached(&insert_sql).map_err(backend)?;
                // The delivery moves on only under the lease the attempt was made with;
                // the attempt row is written only if it did.
                let mut update = conn
                    .prepare_cached(
                        "UPDATE deliveries SET status = ?3, attempts = ?4, next_attempt_at = ?5, leased = 0, trigger = 0, updated_at = ?6 WHERE msg_id = ?1 AND endpoint_id = ?2 AND status = 1 AND leased = 1 AND lease_owner = ?7 AND lease_gen = ?8",
                    )
                    .map_err(backend)?;
                let mut stale = Vec::new();
                for (i, record) in records.iter().enumerate() {
                    let AttemptRecord {
                        attempt,
                        update: next,
                        generation,
                    } = record;
                    let changed = update
                        .execute(params![
                            attempt.msg_id.as_str(),
                            attempt.endpoint_id.as_str(),
                            next.status.code(),
                            next.attempts,
                            next.next_attempt_at.map(ms),
                            ms(attempt.created_at),
                            owner.0 as i64,
                            *generation as i64
                        ])
                        .map_err(backend)?;
                    if changed == 0 {
                        stale.push(i);
                        continue;
                    }
                    insert
                        .execute(params![
                            attempt.id.as_str(),
                            attempt.delivery_id.as_str(),
                            attempt.msg_id.as_str(),
                            attempt.app_id.as_str(),
                            attempt.endpoint_id.as_str(),
                            attempt.url,
                            attempt.status.code(),
                            attempt.response_status_code,
                            attempt.response,
                            attempt.response_duration_ms,
                            attempt.error.map(|e| e.as_str()),
                            attempt.trigger.code(),
                            ms(attempt.created_at)
                        ])
                        .map_err(backend)?;
                }
                Ok(stale)
            })
            .await
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        let (app, msg, endpoint) = (app.clone(), msg.clone(), endpoint.clone());
        self.writer
            .write(move |conn| {
                let exists: bool = conn
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM messages WHERE id = ?1 AND app_id = ?3) AND EXISTS (SELECT 1 FROM endpoints WHERE id = ?2 AND app_id = ?3)",
                        [msg.as_str(), endpoint.as_str(), app.as_str()],
                        |row| row.get(0),
                    )
                    .map_err(backend)?;
                if !exists {
                    return Err(StoreError::NotFound);
                }
                let expunged: bool = conn
                    .query_row(
                        "SELECT expunged FROM messages WHERE id = ?1 AND app_id = ?2",
                        [msg.as_str(), app.as_str()],
                        |row| row.get(0),
                    )
                    .map_err(backend)?;
                if expunged {
                    return Err(StoreError::Conflict(EXPUNGED.to_owned()));
                }
                conn.execute(
                    "INSERT INTO deliveries (id, msg_id, app_id, endpoint_id, status, attempts, next_attempt_at, leased, trigger, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, 1, 0, ?5, 0, 1, ?5, ?5)
                     ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = 1, attempts = 0, trigger = 1, updated_at = ?5,
                         next_attempt_at = CASE WHEN leased = 1 AND status = 1 AND next_attempt_at > ?5 THEN next_attempt_at ELSE ?5 END,
                         leased = CASE WHEN leased = 1 AND status = 1 AND next_attempt_at > ?5 THEN 1 ELSE 0 END",
                    params![DeliveryId::generate().as_str(), msg.as_str(), app.as_str(), endpoint.as_str(), ms(now)],
                )
                .map_err(backend)?;
                let sql = format!(
                    "SELECT {} FROM deliveries d WHERE d.msg_id = ?1 AND d.endpoint_id = ?2",
                    rows::DELIVERY_COLUMNS
                );
                conn.query_row(&sql, [msg.as_str(), endpoint.as_str()], rows::delivery)
                    .map_err(backend)
            })
            .await
    }

    async fn recover(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        // In chunks of the endpoint's deliveries, one write each, walking its
        // (endpoint_id, msg_id) index: a million failed deliveries recovered in one
        // statement would hold the writer (every publish waits) for seconds and keep one
        // transaction's worth of pages. Each chunk is durable; a recover cut short by a
        // crash is finished by calling it again. The chunks run in a task of their own, so
        // a caller that goes away (a client that disconnects) does not stop it halfway.
        let chunk = self.recover_chunk;
        let writer = self.writer.clone();
        let (app, endpoint) = (app.as_str().to_owned(), endpoint.as_str().to_owned());
        let (since, until, now) = (ms(since), until.map(ms).unwrap_or(i64::MAX), ms(now));
        let task = tokio::spawn(async move {
            let mut after = String::new();
            let mut total = 0;
            loop {
                let (app, endpoint, from) = (app.clone(), endpoint.clone(), after.clone());
                let (n, last) = writer
                .write(move |conn| {
                    // The chunk's last message id, or none when fewer than `chunk` remain.
                    let last: Option<String> = conn
                        .prepare_cached(
                            "SELECT msg_id FROM deliveries WHERE endpoint_id = ?1 AND msg_id > ?2 ORDER BY msg_id LIMIT 1 OFFSET ?3",
                        )
                        .and_then(|mut s| {
                            s.query_row(params![endpoint, from, chunk - 1], |r| r.get(0))
                                .optional()
                        })
                        .map_err(backend)?;
                    let n = conn
                        .prepare_cached(
                            "UPDATE deliveries SET status = 1, attempts = 0, next_attempt_at = ?5, leased = 0, trigger = 1, updated_at = ?5
                             WHERE endpoint_id = ?2 AND msg_id > ?6 AND msg_id <= ?7
                               AND app_id = ?1 AND status = 2 AND created_at >= ?3 AND created_at < ?4
                               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.app_id = ?1 AND m.id = deliveries.msg_id AND m.expunged = 1)",
                        )
                        .and_then(|mut s| {
                            s.execute(params![
                                app,
                                endpoint,
                                since,
                                until,
                                now,
                                from,
                                // Past every id: ids are ASCII letters and digits.
                                last.as_deref().unwrap_or("\u{7f}")
                            ])
                        })
                        .map_err(backend)?;
                    Ok((n as u64, last))
                })
                .await?;
                total += n;
                match last {
                    Some(last) => after = last,
                    None => return Ok(total),
                }
            }
        });
        task.await
            .map_err(|_| backend_msg("recovering deliveries stopped unexpectedly"))?
    }

    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> Result<u64> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM idempotency_keys WHERE created_at < ?1",
                        [ms(created_before)],
                    )
                    .map_err(backend)?;
                Ok(n as u64)
            })
            .await
    }

    async fn throttle_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        // This process is the store's only node (the data directory's lock), so its memory
        // is where every dispatcher sees the pacing; it need not survive a restart.
        let mut next = self.throttle.lock().unwrap_or_else(|p| p.into_inner());
        let (start, after) = store::next_slot(next.get(endpoint).copied(), now, per_second);
        match after {
            Some(after) => next.insert(endpoint.clone(), after),
            None => next.remove(endpoint),
        };
        Ok(start)
    }

    async fn mark_failing(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let (app, endpoint) = (app.as_str().to_owned(), endpoint.as_str().to_owned());
        self.writer
            .write(move |conn| {
                let since: i64 = conn
                    .query_row(
                        "INSERT INTO failing_endpoints (endpoint_id, app_id, failing_since) VALUES (?1, ?2, ?3)
                         ON CONFLICT (endpoint_id) DO UPDATE SET failing_since = min(failing_since, excluded.failing_since)
                         RETURNING failing_since",
                        params![endpoint, app, ms(since)],
                        |r| r.get(0),
                    )
                    .map_err(backend)?;
                Ok(rows::time(since))
            })
            .await
    }

    async fn success_since(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        // Backwards from the newest, stopping at the first success.
        self.attempt_time(
            "SELECT created_at FROM attempts WHERE endpoint_id = ?1 AND id >= ?3 AND status = 0 AND created_at >= ?2 ORDER BY id DESC LIMIT 1",
            endpoint,
            since,
        )
        .await
    }

    async fn failure_after(
        &self,
        endpoint: &EndpointId,
        after: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        // Forwards, stopping at the first failure that is not Herald's own refusal.
        self.attempt_time(
            "SELECT created_at FROM attempts WHERE endpoint_id = ?1 AND id >= ?3 AND status = 2 AND (error IS NULL OR error != 'refused') AND created_at > ?2 ORDER BY id LIMIT 1",
            endpoint,
            after,
        )
        .await
    }

    async fn clear_failing(&self, endpoint: &EndpointId) -> Result<()> {
        let endpoint = endpoint.as_str().to_owned();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "DELETE FROM failing_endpoints WHERE endpoint_id = ?1",
                    [&endpoint],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    async fn failing_endpoints(&self) -> Result<Vec<(EndpointId, DateTime<Utc>)>> {
        self.read(|conn| {
            conn.prepare("SELECT endpoint_id, failing_since FROM failing_endpoints")?
                .query_map([], |row| {
                    Ok((
                        EndpointId::from_string(row.get(0)?),
                        rows::time(row.get(1)?),
                    ))
                })?
                .collect()
        })
        .await
    }

    async fn endpoints_needing_attention(&self, limit: usize) -> Result<store::Attention> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let failing = conn
                .prepare_cached(&format!(
                    "SELECT {}, (SELECT failing_since FROM failing_endpoints f WHERE f.endpoint_id = endpoints.id) AS since \
                     FROM endpoints WHERE id IN (SELECT endpoint_id FROM failing_endpoints) ORDER BY since, id LIMIT ?1",
                    rows::ENDPOINT_COLUMNS
                ))?
                .query_map([limit], |row| {
                    Ok((rows::endpoint(row)?, rows::time(row.get(rows::ENDPOINT_WIDTH)?)))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            let disabled = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM endpoints WHERE disabled = 1 ORDER BY updated_at DESC, id LIMIT ?1",
                    rows::ENDPOINT_COLUMNS
                ))?
                .query_map([limit], rows::endpoint)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(store::Attention { failing, disabled })
        })
        .await
    }

    async fn expunge_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (app, msg) = (app.clone(), msg.clone());
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "UPDATE messages SET payload = '{}', expunged = 1 WHERE app_id = ?1 AND id = ?2",
                        [app.as_str(), msg.as_str()],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                conn.execute(
                    "UPDATE deliveries SET status = 2, leased = 0, lease_owner = NULL, next_attempt_at = NULL, updated_at = ?2 \
                     WHERE msg_id = ?1 AND status = 1",
                    params![msg.as_str(), ms(now)],
                )
                .map_err(backend)?;
                Ok(())
            })
            .await
    }

    async fn expunge_response(
        &self,
        app: &AppId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> Result<()> {
        let (app, msg, attempt) = (app.clone(), msg.clone(), attempt.clone());
        self.writer
            .write(move |conn| {
                let changed = conn
                    .execute(
                        "UPDATE attempts SET response = '' WHERE msg_id = ?1 AND id = ?2 AND app_id = ?3",
                        [msg.as_str(), attempt.as_str(), app.as_str()],
                    )
                    .map_err(backend)?;
                if changed == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn figures(&self, now: DateTime<Utc>) -> Result<store::StoreFigures> {
        self.read(move |conn| {
            // Counted on the two partial indexes of pending deliveries (leased, waiting).
            let pending: i64 = conn.query_row(
                "SELECT (SELECT COUNT(*) FROM deliveries WHERE status = 1 AND leased = 1) \
                      + (SELECT COUNT(*) FROM deliveries WHERE status = 1 AND leased = 0)",
                [],
                |r| r.get(0),
            )?;
            let (waiting, oldest): (i64, Option<i64>) = conn.query_row(
                "SELECT COUNT(*), MIN(next_attempt_at) FROM deliveries \
                 WHERE status = 1 AND leased = 0 AND next_attempt_at <= ?1",
                [ms(now)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let size: i64 = conn.query_row(
                "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
                [],
                |r| r.get(0),
            )?;
            Ok(store::StoreFigures {
                pending: pending.max(0) as u64,
                waiting_due: waiting.max(0) as u64,
                oldest_waiting_due: oldest.map(rows::time),
                size_bytes: size.max(0) as u64,
            })
        })
        .await
    }

    async fn ready(&self) -> Result<()> {
        // Through the writer, so a stuck or dead writer shows; a transaction that writes
        // nothing commits without touching the disk.
        self.writer
            .write(|conn| {
                let pages = |pragma: &str| -> Result<i64> {
                    conn.query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
                        .map_err(backend)
                };
                let used = pages("page_count")? - pages("freelist_count")?;
                let max = pages("max_page_count")?;
                if used + ready_room(max) >= max {
                    return Err(StoreError::StorageFull(Arc::new(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "the store has reached max_store_size",
                    ))));
                }
                Ok(())
            })
            .await
    }

    async fn admin_token_digest(&self, proposed: &str) -> Result<String> {
        let proposed = proposed.to_owned();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO settings (key, value) VALUES ('admin_token_sha256', ?1) ON CONFLICT (key) DO NOTHING",
                    [&proposed],
                )
                .map_err(backend)?;
                conn.query_row(
                    "SELECT value FROM settings WHERE key = 'admin_token_sha256'",
                    [],
                    |r| r.get(0),
                )
                .map_err(backend)
            })
            .await
    }

    async fn create_token(&self, token: ApiToken) -> Result<ApiToken> {
        let row = token.clone();
        self.writer
            .write(move |conn| {
                conn.execute(
                    "INSERT INTO tokens (digest, id, app_id, created_at, expires_at, revoked_at, capabilities) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![
                        row.digest,
                        row.id.as_str(),
                        row.app_id.as_str(),
                        ms(row.created_at),
                        ms(row.expires_at),
                        row.revoked_at.map(ms),
                        row.capabilities.bits()
                    ],
                )
                .map_err(conflict_or_backend("this token already exists"))?;
                Ok(())
            })
            .await?;
        Ok(token)
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>> {
        let digest = digest.to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM tokens WHERE digest = ?1",
                rows::TOKEN_COLUMNS
            ))?
            .query_row([&digest], rows::token)
            .optional()
        })
        .await
    }

    async fn list_tokens(&self, app: &AppId) -> Result<Vec<ApiToken>> {
        let app = app.as_str().to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM tokens WHERE app_id = ?1 ORDER BY id DESC",
                rows::TOKEN_COLUMNS
            ))?
            .query_map([&app], rows::token)?
            .collect()
        })
        .await
    }

    async fn revoke_token(&self, app: &AppId, id: &TokenId, at: DateTime<Utc>) -> Result<()> {
        let (app, id) = (app.as_str().to_owned(), id.as_str().to_owned());
        self.writer
            .write(move |conn| {
                let found = conn
                    .execute(
                        "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?3) WHERE app_id = ?1 AND id = ?2",
                        params![app, id, ms(at)],
                    )
                    .map_err(backend)?;
                if found == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            })
            .await
    }

    async fn prune_entities(&self, updated_before: DateTime<Utc>) -> Result<u64> {
        self.writer
            .write(move |conn| {
                let n = conn
                    .execute(
                        "DELETE FROM entities WHERE updated_at < ?1",
                        [ms(updated_before)],
                    )
                    .map_err(backend)?;
                Ok(n as u64)
            })
            .await
    }

    async fn purge_messages(&self, request: store::PurgeRequest) -> Result<store::Purged> {
        // Most applications have nothing past retention at most passes: a read says so
        // without taking a turn of the writer.
        let probe = request.clone();
        if !self.read(move |conn| purge::any_old(conn, &probe)).await? {
            return Ok(store::Purged::default());
        }
        self.writer
            .write(move |conn| purge::purge(conn, &request).map_err(backend))
            .await
    }

    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.writer
            .write(move |conn| purge::expire_payloads(conn, now, limit).map_err(backend))
            .await
    }

    async fn list_attempts(
        &self,
        app: &AppId,
        filter: &AttemptFilter,
        page: &Page,
    ) -> Result<Vec<Attempt>> {
        let mut select = Select::new();
        select.when("app_id = ?", app.as_str().to_owned());
        if let Some(msg) = &filter.msg_id {
            select.when("msg_id = ?", msg.as_str().to_owned());
        }
        if let Some(ep) = &filter.endpoint_id {
            select.when("endpoint_id = ?", ep.as_str().to_owned());
        }
        if let Some(status) = filter.status {
            select.when("status = ?", status.code());
        }
        select.created("created_at", filter.before, filter.after);
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM attempts", rows::ATTEMPT_COLUMNS),
            "id",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::attempt))
            .await
    }

    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>> {
        let keys = [
            app.as_str().to_owned(),
            msg.as_str().to_owned(),
            id.as_str().to_owned(),
        ];
        self.read(move |conn| {
            let sql = format!(
                "SELECT {} FROM attempts WHERE msg_id = ?2 AND id = ?3 AND app_id = ?1",
                rows::ATTEMPT_COLUMNS
            );
            conn.prepare_cached(&sql)?
                .query_row(keys, rows::attempt)
                .optional()
        })
        .await
    }

    async fn list_message_deliveries(
        &self,
        app: &AppId,
        msg: &MessageId,
        page: &Page,
    ) -> Result<Vec<Delivery>> {
        let mut select = Select::new();
        select
            .when("d.app_id = ?", app.as_str().to_owned())
            .when("d.msg_id = ?", msg.as_str().to_owned());
        let (sql, params) = select.finish(
            &format!("SELECT {} FROM deliveries d", rows::DELIVERY_COLUMNS),
            "d.endpoint_id",
            page,
        );
        self.read(move |conn| query_all(conn, &sql, params, rows::delivery))
            .await
    }

    async fn list_endpoint_deliveries(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        filter: &DeliveryFilter,
        page: &Page,
    ) -> Result<Vec<(Delivery, Message)>> {
        let mut select = Select::new();
        select
            .when("d.app_id = ?", app.as_str().to_owned())
            .when("d.endpoint_id = ?", endpoint.as_str().to_owned());
        if let Some(status) = filter.status {
            select.when("d.status = ?", status.code());
        }
        select.created("d.created_at", filter.before, filter.after);
        let (sql, params) = select.finish(
            &format!(
                "SELECT {}, {} FROM deliveries d JOIN messages m ON m.app_id = d.app_id AND m.id = d.msg_id",
                rows::DELIVERY_COLUMNS,
                rows::MESSAGE_COLUMNS
            ),
            "d.msg_id",
            page,
        );
        self.read(move |conn| {
            query_all(conn, &sql, params, |row| {
                Ok((
                    rows::delivery(row)?,
                    rows::message_at(row, rows::DELIVERY_WIDTH)?,
                ))
            })
        })
        .await
    }

    async fn endpoint_stats(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<StatusCounts> {
        let (app, endpoint) = (app.as_str().to_owned(), endpoint.as_str().to_owned());
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT status, COUNT(*) FROM deliveries WHERE app_id = ?1 AND endpoint_id = ?2 AND created_at >= ?3 AND created_at < ?4 GROUP BY status",
            )?;
            let rows = stmt.query_map(
                params![app, endpoint, since.map(ms).unwrap_or(i64::MIN), until.map(ms).unwrap_or(i64::MAX)],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )?;
            let mut counts = StatusCounts::default();
            for row in rows {
                let (status, n) = row?;
                let n = n as u64;
                match Status::from_code(status) {
                    Some(Status::Success) => counts.success = n,
                    Some(Status::Pending) => counts.pending = n,
                    Some(Status::Fail) => counts.fail = n,
                    Some(Status::Sending) => counts.sending = n,
                    None => {}
                }
            }
            Ok(counts)
        })
        .await
    }
}

fn message_conditions(select: &mut Select, filter: &MessageFilter) {
    if let Some(types) = &filter.event_types {
        select.when(
            "m.event_type IN (SELECT value FROM json_each(?))",
            json(types),
        );
    }
    if let Some(channel) = &filter.channel {
        select.when(
            "EXISTS (SELECT 1 FROM json_each(m.channels) WHERE json_each.value = ?)",
            channel.clone(),
        );
    }
    if let Some(tag) = &filter.tag {
        select.when(
            "EXISTS (SELECT 1 FROM json_each(m.tags) WHERE json_each.value = ?)",
            tag.clone(),
        );
    }
    select.created("m.created_at", filter.before, filter.after);
}

/// Endpoints with deliveries waiting that one poll visits at most: each visit is two index
/// seeks, so a poll stays within a few milliseconds of the writer's time even when
/// thousands of endpoints have retries scheduled; the next poll goes on from where this
/// one stopped (a due delivery may then wait a few poll intervals longer).
const TURNS_PER_POLL: usize = 1024;

/// The due deliveries a poll may lease. First those whose lease ran out, oldest first, on
/// `deliveries_leased`: deliveries queued in memory longer than a lease (behind a slow
/// endpoint), or ones a process gave up or left behind. Then endpoint by
/// endpoint: the endpoints with deliveries waiting are visited in id order after
/// `request.after` and then from the start (one seek each, on `deliveries_waiting`), each
/// giving up to its room, oldest due first, until `request.limit`, or until
/// `TURNS_PER_POLL` endpoints were visited. Returns them, and the last endpoint visited.
fn due_by_turns(
    conn: &Connection,
    request: &LeaseRequest,
) -> rusqlite::Result<(Vec<DueDelivery>, Option<EndpointId>)> {
    let columns = format!("{}, {}", rows::DELIVERY_COLUMNS, rows::MESSAGE_COLUMNS);
    let due_row = |row: &rusqlite::Row<'_>| {
        Ok(DueDelivery {
            delivery: rows::delivery(row)?,
            message: rows::message_at(row, rows::DELIVERY_WIDTH)?,
            generation: 0,
        })
    };
    let mut due = Vec::new();
    let mut taken: HashMap<EndpointId, usize> = HashMap::new();
    let room_of = |endpoint: &EndpointId, taken: &HashMap<EndpointId, usize>| {
        request
            .room
            .get(endpoint)
            .copied()
            .unwrap_or(request.per_endpoint)
            .saturating_sub(taken.get(endpoint).copied().unwrap_or(0))
    };
    let mut expired = conn.prepare_cached(&format!(
        "SELECT {columns} FROM deliveries d JOIN messages m ON m.app_id = d.app_id AND m.id = d.msg_id WHERE d.status = 1 AND d.leased = 1 AND d.next_attempt_at <= ?1 ORDER BY d.next_attempt_at LIMIT ?2",
    ))?;
    // Leased again whatever their endpoint's room: most are still held in memory by a
    // slow endpoint's queue (longer than a lease), and leasing them again is what keeps
    // them from every later poll; the worker skips those it holds. They use up the
    // endpoint's room for the turns below.
    for row in expired.query_map(params![ms(request.now), request.limit as i64], due_row)? {
        let row = row?;
        *taken.entry(row.delivery.endpoint_id.clone()).or_default() += 1;
        due.push(row);
    }

    let mut next_endpoint = conn.prepare_cached(
        "SELECT endpoint_id FROM deliveries WHERE status = 1 AND leased = 0 AND endpoint_id > ?1 ORDER BY endpoint_id LIMIT 1",
    )?;
    let mut due_of = conn.prepare_cached(&format!(
        "SELECT {columns} FROM deliveries d JOIN messages m ON m.app_id = d.app_id AND m.id = d.msg_id WHERE d.status = 1 AND d.leased = 0 AND d.endpoint_id = ?1 AND d.next_attempt_at <= ?2 ORDER BY d.next_attempt_at LIMIT ?3",
    ))?;
    let start = request
        .after
        .as_ref()
        .map_or(String::new(), |e| e.as_str().to_owned());
    // The turn goes round once: from `start` to the last endpoint, then from the first up
    // to `start` itself.
    let mut cursor = start.clone();
    let mut wrapped = start.is_empty();
    let mut visited = 0;
    let mut last_visited = None;
    while due.len() < request.limit && visited < TURNS_PER_POLL {
        let endpoint: Option<String> = next_endpoint
            .query_row([&cursor], |r| r.get(0))
            .optional()?;
        let endpoint = match endpoint {
            Some(e) if wrapped && !start.is_empty() && e > start => break,
            Some(e) => EndpointId::from_string(e),
            None if wrapped => break,
            None => {
                wrapped = true;
                cursor.clear();
                continue;
            }
        };
        let room = room_of(&endpoint, &taken).min(request.limit - due.len());
        if room > 0 {
            let rows = due_of.query_map(
                params![endpoint.as_str(), ms(request.now), room as i64],
                due_row,
            )?;
            for row in rows {
                due.push(row?);
            }
        }
        cursor = endpoint.as_str().to_owned();
        last_visited = Some(endpoint);
        visited += 1;
    }
    Ok((due, last_visited.or_else(|| request.after.clone())))
}

#[cfg(test)]
mod tests;
