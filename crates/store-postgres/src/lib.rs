//! The shared backend: the `Store` trait on PostgreSQL, for several Herald nodes on one
//! database. A pool of connections (deadpool-postgres over tokio-postgres, no ORM), the
//! schema applied at open under an advisory lock (`migrate.rs`), and every call's writes
//! in one transaction, most of them one statement; concurrent plain publishes share one
//! statement and one commit (`group.rs`).
//!
//! What several nodes decide together is decided by the database: leases with
//! `FOR UPDATE SKIP LOCKED` and fenced writes (`leases.rs`), idempotency keys and entity
//! snapshots by row locks in the ingest transaction (`ingest.rs`), throttles, failure
//! streaks and the admin token by single atomic statements, endpoint updates by
//! compare-and-set on their revision. Applications and each application's endpoints are
//! cached for under a second (`cache.rs`). Row mapping is in `rows.rs`, error mapping in
//! `error.rs`.

mod cache;
mod error;
mod group;
mod ingest;
mod leases;
mod migrate;
mod purge;
mod query;
mod redrive;
mod rows;
mod wake;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use model::{
    ApiToken, AppId, Application, Attempt, AttemptId, Delivery, Endpoint, EndpointId, EventType,
    Message, MessageId, Status, TokenId,
};
use store::{
    AttemptFilter, AttemptRecord, DeliveryFilter, Inserted, LeaseRequest, Leased, LeasedDelivery,
    MessageFilter, NewMessage, NodeId, Page, Result, StatusCounts, Store, StoreError,
};
use tokio::sync::Notify;
use tokio_postgres::NoTls;

use self::cache::Cache;
use self::error::conflict;
use self::leases::Fenced;
use self::query::{Select, execute, row, rows as query_rows};
use self::rows::{all, get, json, ms, refs};

/// How long opening a connection may take before the database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a call waits for a free connection before the store counts as unavailable.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// Settings of the PostgreSQL store.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A connection URL (`postgres://user:password@host:port/database?options`) or a
    /// key=value connection string.
    pub url: String,
    /// Connections in the pool at most.
    pub max_connections: usize,
}

/// Shows the URL without its password.
impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &without_password(&self.url))
            .field("max_connections", &self.max_connections)
            .finish()
    }
}

/// A connection URL or string with its password, wherever it is given, as `***`.
fn without_password(url: &str) -> String {
    let mut shown = model::destination::masked_url(url).into_owned();
    let mut from = 0;
    while let Some(at) = shown[from..].find("password=") {
        let start = from + at + "password=".len();
        let end = shown[start..]
            .find(|c: char| c == '&' || c.is_whitespace())
            .map_or(shown.len(), |n| start + n);
        shown.replace_range(start..end, "***");
        from = start + 3;
    }
    shown
}

/// The PostgreSQL store, shared by every node that opens the same database.
pub struct PostgresStore {
    pool: Pool,
    /// Plain publishes, written in groups (group commit).
    group: group::Group,
    /// `get_app`, by the key asked for (id or uid).
    apps: Arc<Cache<String, Application>>,
    /// `app_endpoints`, by application.
    endpoints: Arc<Cache<AppId, Arc<Vec<Endpoint>>>>,
    /// Woken when another node (or this one) announced due work.
    work: Arc<Notify>,
    /// Listens for other nodes' notices, and sends this node's (`wake.rs`).
    listener: wake::Listener,
}

impl PostgresStore {
    /// Connects, applies the embedded migrations under a PostgreSQL advisory lock (several
    /// nodes may start together), refuses a database whose schema is newer than this build
    /// knows with a clear message saying to run that version of Herald.
    pub async fn open(config: PostgresConfig) -> Result<Self, StoreError> {
        let mut pg: tokio_postgres::Config = config.url.parse().map_err(error::map)?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        if pg.get_application_name().is_none() {
            pg.application_name("herald");
        }
        migrate::migrate(&pg).await?;
        let apps = Arc::new(Cache::new());
        let endpoints = Arc::new(Cache::new());
        let work = Arc::new(Notify::new());
        let listener = wake::Listener::start(pg.clone(), work.clone(), {
            let (apps, endpoints) = (apps.clone(), endpoints.clone());
            move |topic| match topic {
                wake::Topic::Apps => apps.invalidate(),
                wake::Topic::Endpoints => endpoints.invalidate(),
                wake::Topic::Work => {}
            }
        });
        let manager = Manager::from_config(
            pg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(Arc::new(e)))?;
        Ok(Self {
            group: group::Group::start(pool.clone()),
            pool,
            apps,
            endpoints,
            work,
            listener,
        })
    }

    /// Tells every node (this one too) about `topic`, after the write that caused it
    /// committed (`wake.rs`).
    fn announce(&self, topic: wake::Topic) {
        self.listener.announce(topic);
    }

    /// The creation time of the attempt of `endpoint` that `sql` finds, reading from `at`
    /// on (`$1` the endpoint, `$2` the time, `$3` the first attempt id that can have been
    /// made then: ids sort by creation time, so the index on (endpoint_id, id) is read
    /// only from there).
    async fn attempt_time(
        &self,
        sql: &str,
        endpoint: &EndpointId,
        at: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        let client = self.client().await?;
        let found = row(
            &client,
            sql,
            &[
                &endpoint.as_str(),
                &ms(at),
                &AttemptId::floor_at(at).as_str(),
            ],
        )
        .await
        .map_err(error::map)?;
        Self::time_of(found)
    }

    /// A connection from the pool.
    async fn client(&self) -> Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(error::pool)
    }

    /// Rows of a statement built at run time.
    async fn select<T>(
        &self,
        (sql, params): (String, Vec<rows::Param>),
        map: impl Fn(&tokio_postgres::Row) -> Result<T>,
    ) -> Result<Vec<T>> {
        let client = self.client().await?;
        let found = query_rows(&client, &sql, &refs(&params))
            .await
            .map_err(error::map)?;
        all(&found, map)
    }

    /// The row of `sql` (columns `columns` substituted for `{}`), if any, mapped by `map`.
    async fn one<T>(
        &self,
        sql: &str,
        columns: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        map: impl Fn(&tokio_postgres::Row) -> Result<T>,
    ) -> Result<Option<T>> {
        let sql = sql.replacen("{}", columns, 1);
        let client = self.client().await?;
        row(&client, &sql, params)
            .await
            .map_err(error::map)?
            .map(|r| map(&r))
            .transpose()
    }

    /// Whether `app` has an endpoint `id`, read on the caller's connection (a second
    /// one from the pool could wait for the caller's own to come back).
    async fn endpoint_exists(
        client: &deadpool_postgres::Object,
        app: &str,
        id: &str,
    ) -> Result<bool> {
        let found = row(
            client,
            "SELECT 1 FROM endpoints WHERE app_id = $1 AND id = $2",
            &[&app, &id],
        )
        .await
        .map_err(error::map)?;
        Ok(found.is_some())
    }

    /// One time column of an optional row.
    fn time_of(found: Option<tokio_postgres::Row>) -> Result<Option<DateTime<Utc>>> {
        found.map(|r| rows::time(get(&r, 0)?)).transpose()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn create_app(&self, app: Application) -> Result<Application> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO applications (id, uid, name, rate_limit, metadata, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &app.id.as_str(),
                &app.uid,
                &app.name,
                &app.rate_limit.map(i64::from),
                &json(&app.metadata)?,
                &ms(app.created_at),
                &ms(app.updated_at),
            ],
        )
        .await
        .map_err(conflict("an application with this uid already exists"))?;
        self.apps.invalidate();
        self.announce(wake::Topic::Apps);
        Ok(app)
    }

    async fn get_app(&self, id_or_uid: &str) -> Result<Option<Application>> {
        let key = id_or_uid.to_owned();
        if let Some(hit) = self.apps.get(&key) {
            return Ok(Some(hit));
        }
        let ticket = self.apps.ticket();
        let sql = format!(
            "SELECT {} FROM applications WHERE id = $1 OR uid = $1 ORDER BY (id = $1) DESC LIMIT 1",
            rows::APP_COLUMNS
        );
        let client = self.client().await?;
        let found = row(&client, &sql, &[&id_or_uid])
            .await
            .map_err(error::map)?
            .map(|r| rows::app(&r))
            .transpose()?;
        if let Some(app) = &found {
            self.apps.keep(key, app.clone(), ticket);
        }
        Ok(found)
    }

    async fn list_apps(&self, search: Option<&str>, page: &Page) -> Result<Vec<Application>> {
        let head = format!("SELECT {} FROM applications", rows::APP_COLUMNS);
        let mut select = Select::new();
        if let Some(search) = search {
            // `lower` of ASCII only, as the embedded store (SQLite's `lower`).
            select.when(
                "(strpos(translate(name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), ?) > 0 \
                  OR strpos(translate(coalesce(uid, ''), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), ?) > 0 \
                  OR strpos(lower(id), ?) > 0)",
                search.to_ascii_lowercase(),
            );
        }
        self.select(select.finish(&head, "id", page), rows::app)
            .await
    }

    async fn update_app(&self, app: Application) -> Result<Application> {
        let client = self.client().await?;
        let changed = execute(
            &client,
            "UPDATE applications SET uid = $2, name = $3, rate_limit = $4, metadata = $5, updated_at = $6 WHERE id = $1",
            &[
                &app.id.as_str(),
                &app.uid,
                &app.name,
                &app.rate_limit.map(i64::from),
                &json(&app.metadata)?,
                &ms(app.updated_at),
            ],
        )
        .await
        .map_err(conflict("an application with this uid already exists"))?;
        self.apps.invalidate();
        self.announce(wake::Topic::Apps);
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(app)
    }

    async fn delete_app(&self, id: &AppId) -> Result<()> {
        let id = id.as_str();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        let deleted = execute(&tx, "DELETE FROM applications WHERE id = $1", &[&id])
            .await
            .map_err(error::map)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        // Deliveries and attempts are found through the application's messages (their
        // keys start with the message id), before the messages go.
        for sql in [
            "DELETE FROM throttles WHERE endpoint_id IN (SELECT id FROM endpoints WHERE app_id = $1)",
            "DELETE FROM attempts WHERE app_id = $1 AND msg_id IN (SELECT id FROM messages WHERE app_id = $1)",
            "DELETE FROM deliveries WHERE app_id = $1 AND msg_id IN (SELECT id FROM messages WHERE app_id = $1)",
            "DELETE FROM messages WHERE app_id = $1",
            "DELETE FROM endpoints WHERE app_id = $1",
            "DELETE FROM idempotency_keys WHERE app_id = $1",
            "DELETE FROM entities WHERE app_id = $1",
            "DELETE FROM tokens WHERE app_id = $1",
            "DELETE FROM failing_endpoints WHERE app_id = $1",
        ] {
            execute(&tx, sql, &[&id]).await.map_err(error::map)?;
        }
        tx.commit().await.map_err(error::map)?;
        self.apps.invalidate();
        self.endpoints.invalidate();
        self.announce(wake::Topic::Apps);
        self.announce(wake::Topic::Endpoints);
        Ok(())
    }

    async fn create_event_type(&self, et: EventType) -> Result<EventType> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO event_types (name, description, archived, deprecated, feature_flag, group_name, schemas, created_at, updated_at, enforce_schema) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &et.name,
                &et.description,
                &et.archived,
                &et.deprecated,
                &et.feature_flag,
                &et.group_name,
                &et.schemas.as_ref().map(|s| s.to_string()),
                &ms(et.created_at),
                &ms(et.updated_at),
                &et.enforce_schema,
            ],
        )
        .await
        .map_err(conflict("an event type with this name already exists"))?;
        Ok(et)
    }

    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>> {
        self.one(
            "SELECT {} FROM event_types WHERE name = $1",
            rows::EVENT_TYPE_COLUMNS,
            &[&name],
            rows::event_type,
        )
        .await
    }

    async fn list_event_types(
        &self,
        page: &Page,
        include_archived: bool,
    ) -> Result<Vec<EventType>> {
        let mut select = Select::new();
        if !include_archived {
            select.when("archived = ?", false);
        }
        let head = format!("SELECT {} FROM event_types", rows::EVENT_TYPE_COLUMNS);
        self.select(select.finish(&head, "name", page), rows::event_type)
            .await
    }

    async fn update_event_type(&self, et: EventType) -> Result<EventType> {
        let client = self.client().await?;
        let changed = execute(
            &client,
            "UPDATE event_types SET description = $2, archived = $3, deprecated = $4, feature_flag = $5, group_name = $6, schemas = $7, updated_at = $8, enforce_schema = $9 WHERE name = $1",
            &[
                &et.name,
                &et.description,
                &et.archived,
                &et.deprecated,
                &et.feature_flag,
                &et.group_name,
                &et.schemas.as_ref().map(|s| s.to_string()),
                &ms(et.updated_at),
                &et.enforce_schema,
            ],
        )
        .await
        .map_err(error::map)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(et)
    }

    async fn delete_event_type(&self, name: &str) -> Result<()> {
        let client = self.client().await?;
        let deleted = execute(&client, "DELETE FROM event_types WHERE name = $1", &[&name])
            .await
            .map_err(error::map)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_endpoint(&self, endpoint: Endpoint) -> Result<Endpoint> {
        let params = rows::endpoint_params(&endpoint)?;
        let sql = format!(
            "INSERT INTO endpoints ({}) VALUES ({})",
            rows::ENDPOINT_COLUMNS,
            (1..=params.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        // The application stays until the endpoint is stored (a concurrent delete waits).
        let app = row(
            &tx,
            "SELECT 1 FROM applications WHERE id = $1 FOR KEY SHARE",
            &[&endpoint.app_id.as_str()],
        )
        .await
        .map_err(error::map)?;
        if app.is_none() {
            return Err(StoreError::NotFound);
        }
        execute(&tx, &sql, &refs(&params))
            .await
            .map_err(conflict("an endpoint with this uid already exists"))?;
        tx.commit().await.map_err(error::map)?;
        self.endpoints.invalidate();
        self.announce(wake::Topic::Endpoints);
        Ok(endpoint)
    }

    async fn get_endpoint(&self, app: &AppId, id_or_uid: &str) -> Result<Option<Endpoint>> {
        self.one(
            "SELECT {} FROM endpoints WHERE app_id = $1 AND (id = $2 OR uid = $2) ORDER BY (id = $2) DESC LIMIT 1",
            rows::ENDPOINT_COLUMNS,
            &[&app.as_str(), &id_or_uid],
            rows::endpoint,
        )
        .await
    }

    async fn list_endpoints(&self, app: &AppId, page: &Page) -> Result<Vec<Endpoint>> {
        let mut select = Select::new();
        select.when("app_id = ?", app.as_str().to_owned());
        let head = format!("SELECT {} FROM endpoints", rows::ENDPOINT_COLUMNS);
        self.select(select.finish(&head, "id", page), rows::endpoint)
            .await
    }

    async fn app_endpoints(&self, app: &AppId) -> Result<Arc<Vec<Endpoint>>> {
        if let Some(hit) = self.endpoints.get(app) {
            return Ok(hit);
        }
        let ticket = self.endpoints.ticket();
        let sql = format!(
            "SELECT {} FROM endpoints WHERE app_id = $1 ORDER BY id",
            rows::ENDPOINT_COLUMNS
        );
        let client = self.client().await?;
        let found = query_rows(&client, &sql, &[&app.as_str()])
            .await
            .map_err(error::map)?;
        let endpoints = Arc::new(all(&found, rows::endpoint)?);
        self.endpoints.keep(app.clone(), endpoints.clone(), ticket);
        Ok(endpoints)
    }

    async fn update_endpoint(&self, endpoint: Endpoint, expected: u64) -> Result<Endpoint> {
        let mut endpoint = endpoint;
        endpoint.revision = expected + 1;
        let (sql, params) = rows::endpoint_update(&endpoint, expected)?;
        let client = self.client().await?;
        let changed = execute(&client, sql, &refs(&params))
            .await
            .map_err(conflict("an endpoint with this uid already exists"))?;
        if changed == 0 {
            return Err(
                if Self::endpoint_exists(&client, endpoint.app_id.as_str(), endpoint.id.as_str())
                    .await?
                {
                    StoreError::Changed
                } else {
                    StoreError::NotFound
                },
            );
        }
        self.endpoints.invalidate();
        self.announce(wake::Topic::Endpoints);
        Ok(endpoint)
    }

    async fn disable_endpoint(
        &self,
        app: &AppId,
        id: &EndpointId,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let client = self.client().await?;
        // One statement: the endpoint is disabled and its failure streak ends together.
        let flipped = row(
            &client,
            "WITH flipped AS ( \
                 UPDATE endpoints SET disabled = TRUE, updated_at = $3, revision = revision + 1 \
                 WHERE app_id = $1 AND id = $2 AND NOT disabled RETURNING id \
             ), ended AS ( \
                 DELETE FROM failing_endpoints WHERE endpoint_id IN (SELECT id FROM flipped) \
             ) \
             SELECT count(*) FROM flipped",
            &[&app.as_str(), &id.as_str(), &ms(at)],
        )
        .await
        .map_err(error::map)?;
        let changed: i64 = match flipped {
            Some(r) => rows::get(&r, 0)?,
            None => 0,
        };
        if changed == 0 {
            return if Self::endpoint_exists(&client, app.as_str(), id.as_str()).await? {
                Ok(false)
            } else {
                Err(StoreError::NotFound)
            };
        }
        self.endpoints.invalidate();
        self.announce(wake::Topic::Endpoints);
        Ok(true)
    }

    async fn delete_endpoint(&self, app: &AppId, id: &EndpointId) -> Result<()> {
        let (app, id) = (app.as_str(), id.as_str());
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        let deleted = execute(
            &tx,
            "DELETE FROM endpoints WHERE app_id = $1 AND id = $2",
            &[&app, &id],
        )
        .await
        .map_err(error::map)?;
        if deleted == 0 {
            return Err(StoreError::NotFound);
        }
        for table in ["deliveries", "attempts", "failing_endpoints", "throttles"] {
            execute(
                &tx,
                &format!("DELETE FROM {table} WHERE endpoint_id = $1"),
                &[&id],
            )
            .await
            .map_err(error::map)?;
        }
        tx.commit().await.map_err(error::map)?;
        self.endpoints.invalidate();
        self.announce(wake::Topic::Endpoints);
        Ok(())
    }

    async fn insert_message(&self, new: NewMessage) -> Result<Inserted> {
        self.insert(new).await
    }

    async fn get_message(&self, app: &AppId, id_or_event_id: &str) -> Result<Option<Message>> {
        let client = self.client().await?;
        ingest::get_message_in(&client, app.as_str(), id_or_event_id).await
    }

    async fn list_messages(
        &self,
        app: &AppId,
        filter: &MessageFilter,
        page: &Page,
    ) -> Result<Vec<Message>> {
        let mut select = Select::new();
        select.when("m.app_id = ?", app.as_str().to_owned());
        if let Some(types) = &filter.event_types {
            select.when("m.event_type = ANY(?)", types.clone());
        }
        if let Some(channel) = &filter.channel {
            select.when("? = ANY(m.channels)", channel.clone());
        }
        if let Some(tag) = &filter.tag {
            select.when("? = ANY(m.tags)", tag.clone());
        }
        select.created("m.created_at", filter.before, filter.after);
        let head = format!("SELECT {} FROM messages m", rows::MESSAGE_COLUMNS);
        self.select(select.finish(&head, "m.id", page), rows::message)
            .await
    }

    async fn lease_due(&self, request: LeaseRequest) -> Result<Leased> {
        self.lease(request).await
    }

    async fn renew(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        until: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        self.fenced(Fenced::Renew, owner, deliveries, until).await
    }

    async fn release(
        &self,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        now: DateTime<Utc>,
    ) -> Result<Vec<usize>> {
        let stale = self.fenced(Fenced::Release, owner, deliveries, now).await?;
        if stale.len() < deliveries.len() {
            self.announce(wake::Topic::Work);
        }
        Ok(stale)
    }

    async fn record_attempts(
        &self,
        owner: NodeId,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<usize>> {
        self.record(owner, records).await
    }

    async fn resend(
        &self,
        app: &AppId,
        msg: &MessageId,
        endpoint: &EndpointId,
        now: DateTime<Utc>,
    ) -> Result<Delivery> {
        self.not_expunged(app, msg).await?;
        let delivery = self.resend_one(app, msg, endpoint, now).await?;
        self.announce(wake::Topic::Work);
        Ok(delivery)
    }

    async fn recover(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let recovered = self
            .recover_failed(app, endpoint, since, until, now)
            .await?;
        if recovered > 0 {
            self.announce(wake::Topic::Work);
        }
        Ok(recovered)
    }

    async fn woken(&self) {
        self.work.notified().await;
    }

    async fn prune_idempotency_keys(&self, created_before: DateTime<Utc>) -> Result<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM idempotency_keys WHERE created_at < $1",
            &[&ms(created_before)],
        )
        .await
        .map_err(error::map)
    }

    async fn prune_entities(&self, updated_before: DateTime<Utc>) -> Result<u64> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM entities WHERE updated_at < $1",
            &[&ms(updated_before)],
        )
        .await
        .map_err(error::map)
    }

    async fn purge_messages(&self, request: store::PurgeRequest) -> Result<store::Purged> {
        self.purge(request).await
    }

    async fn expire_payloads(&self, now: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.expire(now, limit).await
    }

    async fn throttle_slot(
        &self,
        endpoint: &EndpointId,
        per_second: u32,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        // The rule of `store::next_slot`, applied in one statement: the start handed out
        // is the later of the endpoint's next free start and now, and the next free start
        // moves one spacing past it.
        if per_second == 0 {
            return Ok(now);
        }
        let spacing = 1_000_000_000 / i64::from(per_second);
        let now_ns = now
            .timestamp_nanos_opt()
            .ok_or_else(|| error::backend_msg(format!("{now} cannot be paced")))?;
        let client = self.client().await?;
        let start: i64 = row(
            &client,
            "INSERT INTO throttles (endpoint_id, next_start_ns) VALUES ($1, $2::bigint + $3::bigint) \
             ON CONFLICT (endpoint_id) DO UPDATE SET next_start_ns = GREATEST(throttles.next_start_ns, $2::bigint) + $3::bigint \
             RETURNING next_start_ns - $3::bigint",
            &[&endpoint.as_str(), &now_ns, &spacing],
        )
        .await
        .map_err(error::map)?
        .map(|r| get(&r, 0))
        .transpose()?
        .ok_or_else(|| error::backend_msg("pacing an endpoint returned no row"))?;
        Ok(Utc.timestamp_nanos(start))
    }

    async fn mark_failing(
        &self,
        app: &AppId,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<DateTime<Utc>> {
        let client = self.client().await?;
        let found = row(
            &client,
            "INSERT INTO failing_endpoints (endpoint_id, app_id, failing_since) VALUES ($1, $2, $3) \
             ON CONFLICT (endpoint_id) DO UPDATE SET failing_since = LEAST(failing_endpoints.failing_since, EXCLUDED.failing_since) \
             RETURNING failing_since",
            &[&endpoint.as_str(), &app.as_str(), &ms(since)],
        )
        .await
        .map_err(error::map)?;
        Self::time_of(found)?
            .ok_or_else(|| error::backend_msg("marking an endpoint failing returned no row"))
    }

    async fn success_since(
        &self,
        endpoint: &EndpointId,
        since: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>> {
        // Backwards from the newest, stopping at the first success.
        self.attempt_time(
            "SELECT created_at FROM attempts WHERE endpoint_id = $1 AND id >= $3 AND status = 0 AND created_at >= $2 ORDER BY id DESC LIMIT 1",
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
            "SELECT created_at FROM attempts WHERE endpoint_id = $1 AND id >= $3 AND status = 2 AND error IS DISTINCT FROM 'refused' AND created_at > $2 ORDER BY id LIMIT 1",
            endpoint,
            after,
        )
        .await
    }

    async fn clear_failing(&self, endpoint: &EndpointId) -> Result<()> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM failing_endpoints WHERE endpoint_id = $1",
            &[&endpoint.as_str()],
        )
        .await
        .map_err(error::map)?;
        Ok(())
    }

    async fn failing_endpoints(&self) -> Result<Vec<(EndpointId, DateTime<Utc>)>> {
        let client = self.client().await?;
        let found = query_rows(
            &client,
            "SELECT endpoint_id, failing_since FROM failing_endpoints ORDER BY endpoint_id",
            &[],
        )
        .await
        .map_err(error::map)?;
        all(&found, |r| {
            Ok((EndpointId::from_string(get(r, 0)?), rows::time(get(r, 1)?)?))
        })
    }

    async fn endpoints_needing_attention(&self, limit: usize) -> Result<store::Attention> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let failing = query_rows(
            &client,
            &format!(
                "SELECT {}, (SELECT failing_since FROM failing_endpoints f WHERE f.endpoint_id = endpoints.id) AS since \
                 FROM endpoints WHERE id IN (SELECT endpoint_id FROM failing_endpoints) ORDER BY since, id LIMIT $1",
                rows::ENDPOINT_COLUMNS
            ),
            &[&limit],
        )
        .await
        .map_err(error::map)?;
        let disabled = query_rows(
            &client,
            &format!(
                "SELECT {} FROM endpoints WHERE disabled ORDER BY updated_at DESC, id LIMIT $1",
                rows::ENDPOINT_COLUMNS
            ),
            &[&limit],
        )
        .await
        .map_err(error::map)?;
        Ok(store::Attention {
            failing: all(&failing, |r| {
                Ok((
                    rows::endpoint(r)?,
                    rows::time(get(r, rows::ENDPOINT_WIDTH)?)?,
                ))
            })?,
            disabled: all(&disabled, rows::endpoint)?,
        })
    }

    async fn expunge_content(
        &self,
        app: &AppId,
        msg: &MessageId,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;
        let changed = execute(
            &tx,
            "UPDATE messages SET payload = '{}', expunged = TRUE WHERE app_id = $1 AND id = $2",
            &[&app.as_str(), &msg.as_str()],
        )
        .await
        .map_err(error::map)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        execute(
            &tx,
            "UPDATE deliveries SET status = 2, leased = 0, lease_owner = NULL, next_attempt_at = NULL, updated_at = $2 \
             WHERE msg_id = $1 AND status = 1",
            &[&msg.as_str(), &ms(now)],
        )
        .await
        .map_err(error::map)?;
        tx.commit().await.map_err(error::map)
    }

    async fn expunge_response(
        &self,
        app: &AppId,
        msg: &MessageId,
        attempt: &AttemptId,
    ) -> Result<()> {
        let client = self.client().await?;
        let changed = execute(
            &client,
            "UPDATE attempts SET response = '' WHERE msg_id = $1 AND id = $2 AND app_id = $3",
            &[&msg.as_str(), &attempt.as_str(), &app.as_str()],
        )
        .await
        .map_err(error::map)?;
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn figures(&self, now: DateTime<Utc>) -> Result<store::StoreFigures> {
        let client = self.client().await?;
        let found = row(
            &client,
            "SELECT (SELECT COUNT(*) FROM deliveries WHERE status = 1 AND leased = 1) \
                  + (SELECT COUNT(*) FROM deliveries WHERE status = 1 AND leased = 0), \
                    w.n, w.oldest, pg_database_size(current_database()) \
             FROM (SELECT COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM deliveries \
                   WHERE status = 1 AND leased = 0 AND next_attempt_at <= $1) w",
            &[&ms(now)],
        )
        .await
        .map_err(error::map)?
        .ok_or_else(|| error::backend_msg("no figures"))?;
        let count = |i: usize| -> u64 { found.get::<_, i64>(i).max(0) as u64 };
        Ok(store::StoreFigures {
            pending: count(0),
            waiting_due: count(1),
            oldest_waiting_due: found.get::<_, Option<i64>>(2).map(rows::time).transpose()?,
            size_bytes: count(3),
        })
    }

    async fn ready(&self) -> Result<()> {
        let client = self.client().await?;
        let standby = row(&client, "SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(error::map)?
            .is_some_and(|r| r.get::<_, bool>(0));
        if standby {
            return Err(StoreError::Unavailable(Arc::new(std::io::Error::other(
                "the database is a read-only standby",
            ))));
        }
        Ok(())
    }

    async fn admin_token_digest(&self, proposed: &str) -> Result<String> {
        let client = self.client().await?;
        let kept = row(
            &client,
            "INSERT INTO settings (key, value) VALUES ('admin_token_sha256', $1) ON CONFLICT (key) DO NOTHING RETURNING value",
            &[&proposed],
        )
        .await
        .map_err(error::map)?;
        // Another node's value, when it was first: read by a statement of its own, which
        // sees what was committed before it began.
        let kept = match kept {
            Some(kept) => kept,
            None => row(
                &client,
                "SELECT value FROM settings WHERE key = 'admin_token_sha256'",
                &[],
            )
            .await
            .map_err(error::map)?
            .ok_or_else(|| error::backend_msg("the admin token's digest vanished"))?,
        };
        get(&kept, 0)
    }

    async fn create_token(&self, token: ApiToken) -> Result<ApiToken> {
        let client = self.client().await?;
        execute(
            &client,
            "INSERT INTO tokens (digest, id, app_id, created_at, expires_at, revoked_at, capabilities) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &token.digest,
                &token.id.as_str(),
                &token.app_id.as_str(),
                &ms(token.created_at),
                &ms(token.expires_at),
                &token.revoked_at.map(ms),
                &token.capabilities.bits(),
            ],
        )
        .await
        .map_err(conflict("this token already exists"))?;
        Ok(token)
    }

    async fn token_by_digest(&self, digest: &str) -> Result<Option<ApiToken>> {
        self.one(
            "SELECT {} FROM tokens WHERE digest = $1",
            rows::TOKEN_COLUMNS,
            &[&digest],
            rows::token,
        )
        .await
    }

    async fn list_tokens(&self, app: &AppId) -> Result<Vec<ApiToken>> {
        let sql = format!(
            "SELECT {} FROM tokens WHERE app_id = $1 ORDER BY id DESC",
            rows::TOKEN_COLUMNS
        );
        let client = self.client().await?;
        let found = query_rows(&client, &sql, &[&app.as_str()])
            .await
            .map_err(error::map)?;
        all(&found, rows::token)
    }

    async fn revoke_token(&self, app: &AppId, id: &TokenId, at: DateTime<Utc>) -> Result<()> {
        let client = self.client().await?;
        let found = execute(
            &client,
            "UPDATE tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE app_id = $1 AND id = $2",
            &[&app.as_str(), &id.as_str(), &ms(at)],
        )
        .await
        .map_err(error::map)?;
        if found == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
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
        if let Some(endpoint) = &filter.endpoint_id {
            select.when("endpoint_id = ?", endpoint.as_str().to_owned());
        }
        if let Some(status) = filter.status {
            select.when("status = ?", rows::int(status.code())?);
        }
        select.created("created_at", filter.before, filter.after);
        let head = format!("SELECT {} FROM attempts", rows::ATTEMPT_COLUMNS);
        self.select(select.finish(&head, "id", page), rows::attempt)
            .await
    }

    async fn get_attempt(
        &self,
        app: &AppId,
        msg: &MessageId,
        id: &AttemptId,
    ) -> Result<Option<Attempt>> {
        self.one(
            "SELECT {} FROM attempts WHERE msg_id = $2 AND id = $3 AND app_id = $1",
            rows::ATTEMPT_COLUMNS,
            &[&app.as_str(), &msg.as_str(), &id.as_str()],
            rows::attempt,
        )
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
        let head = format!("SELECT {} FROM deliveries d", rows::DELIVERY_COLUMNS);
        self.select(select.finish(&head, "d.endpoint_id", page), rows::delivery)
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
            select.when("d.status = ?", rows::int(status.code())?);
        }
        select.created("d.created_at", filter.before, filter.after);
        let head = format!(
            "SELECT {}, {} FROM deliveries d JOIN messages m ON m.app_id = d.app_id AND m.id = d.msg_id",
            rows::DELIVERY_COLUMNS,
            rows::MESSAGE_COLUMNS
        );
        self.select(select.finish(&head, "d.msg_id", page), |r| {
            Ok((
                rows::delivery(r)?,
                rows::message_at(r, rows::DELIVERY_WIDTH)?,
            ))
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
        let client = self.client().await?;
        let found = query_rows(
            &client,
            "SELECT status, count(*) FROM deliveries WHERE app_id = $1 AND endpoint_id = $2 AND created_at >= $3 AND created_at < $4 GROUP BY status",
            &[
                &app.as_str(),
                &endpoint.as_str(),
                &since.map_or(i64::MIN, ms),
                &until.map_or(i64::MAX, ms),
            ],
        )
        .await
        .map_err(error::map)?;
        let mut counts = StatusCounts::default();
        for r in &found {
            let (status, n): (i32, i64) = (get(r, 0)?, get(r, 1)?);
            let n = rows::unsigned::<u64>(n)?;
            match Status::from_code(i64::from(status)) {
                Some(Status::Success) => counts.success = n,
                Some(Status::Pending) => counts.pending = n,
                Some(Status::Fail) => counts.fail = n,
                Some(Status::Sending) => counts.sending = n,
                None => {}
            }
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod tests;
