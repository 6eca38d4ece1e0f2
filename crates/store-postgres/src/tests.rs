//! The PostgreSQL store against a real server: the conformance suite, opening one database
//! from several nodes at once, refusing a newer schema, and the rules several nodes rely
//! on under real concurrency (idempotency keys, entity chains, bounded polls).
//!
//! Each test creates a database of its own through `HERALD_TEST_DATABASE_URL` (a
//! superuser's URL; `scripts/postgres.sh` starts a throwaway server and exports it) and
//! drops it at the end. Without that variable the tests say so loudly and pass, except
//! under `CI=true`, where a missing service is a failure, never a skip.

use std::collections::HashMap;
use std::future::Future;

use store::conformance::{NODE_A, app, endpoint, message, t};
use store::{Deliveries, NewDelivery};

use super::*;

/// A database made for one test, dropped by `finish`.
struct TestDatabase {
    admin: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// A new empty database, or `None` when no server was given (outside CI).
    async fn create() -> Option<Self> {
        let admin = match std::env::var("HERALD_TEST_DATABASE_URL") {
            Ok(url) if !url.is_empty() => url,
            _ => {
                if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                    panic!(
                        "HERALD_TEST_DATABASE_URL is not set under CI: PostgreSQL must run \
                         (scripts/postgres.sh starts one)"
                    );
                }
                skipped_loudly();
                return None;
            }
        };
        let name = format!("herald_test_{:016x}", rand::random::<u64>());
        let client = connect(&admin).await;
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("the test server creates a database");
        let mut url = url::Url::parse(&admin).expect("HERALD_TEST_DATABASE_URL is a URL");
        url.set_path(&name);
        Some(Self {
            admin,
            name,
            url: url.to_string(),
        })
    }

    fn config(&self) -> PostgresConfig {
        PostgresConfig {
            url: self.url.clone(),
            max_connections: 8,
        }
    }

    /// Drops the database (and whatever connections are left to it), if it can.
    async fn finish(self) {
        let client = connect(&self.admin).await;
        if let Err(err) = client
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await
        {
            eprintln!("could not drop the test database {}: {err}", self.name);
        }
    }
}

/// Says on the terminal (past the test harness's capture of `eprintln!`) that the
/// PostgreSQL tests did not run: once in full, then one line per test.
fn skipped_loudly() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut err = std::io::stderr();
    ONCE.call_once(|| {
        let _ = writeln!(
            err,
            "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
             !! SKIPPED: HERALD_TEST_DATABASE_URL is not set, so the PostgreSQL    !!\n\
             !! store was NOT tested. Run: source scripts/postgres.sh &&           !!\n\
             !! start_postgres && cargo test -p store-postgres                     !!\n\
             !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
        );
    });
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        err,
        "SKIPPED {test}: no PostgreSQL (HERALD_TEST_DATABASE_URL unset)"
    );
}

/// A connection of its own to `url`.
async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to the test server at {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Runs `test` on a fresh database (skipped without a server, see the module's comment),
/// then drops the database, whether the test passed or not.
async fn with_database<F, Fut>(test: F)
where
    F: FnOnce(PostgresConfig) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let outcome = tokio::spawn(test(db.config())).await;
    db.finish().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_passes_the_conformance_suite() {
    with_database(|config| async move {
        let store = PostgresStore::open(config).await.unwrap();
        store::conformance(Arc::new(store)).await;
    })
    .await;
}

/// With a pool of one connection every call still completes: no call holds a connection
/// while it waits for another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_one_connection_passes_the_conformance_suite() {
    with_database(|config| async move {
        let store = PostgresStore::open(PostgresConfig {
            max_connections: 1,
            ..config
        })
        .await
        .unwrap();
        store::conformance(Arc::new(store)).await;
    })
    .await;
}

/// Several nodes starting together on an empty database: each opens it, the schema is
/// applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_opening_one_database_at_once_apply_the_schema_once() {
    with_database(|config| async move {
        let opens: Vec<_> = (0..4)
            .map(|_| tokio::spawn(PostgresStore::open(config.clone())))
            .collect();
        for open in opens {
            open.await.unwrap().unwrap();
        }
        let client = connect(&config.url).await;
        let versions: Vec<i32> = client
            .query("SELECT version FROM herald_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, (1..=migrate::SCHEMA_VERSION).collect::<Vec<_>>());
    })
    .await;
}

/// A database a newer Herald migrated is refused, with what to do.
#[tokio::test]
async fn a_newer_schema_is_refused() {
    with_database(|config| async move {
        drop(PostgresStore::open(config.clone()).await.unwrap());
        let client = connect(&config.url).await;
        client
            .execute(
                "INSERT INTO herald_schema (version) VALUES ($1)",
                &[&(migrate::SCHEMA_VERSION + 1)],
            )
            .await
            .unwrap();
        let err = match PostgresStore::open(config).await {
            Ok(_) => panic!("a newer schema was opened"),
            Err(err) => err,
        };
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        assert!(text.contains("newer Herald"), "{text}");
        assert!(text.contains("run that version of Herald"), "{text}");
    })
    .await;
}

/// Connections the server ends (an administrator, a restart) are `Unavailable` for the
/// calls that were using them, and are replaced by new ones: the store keeps working.
#[tokio::test]
async fn lost_connections_are_unavailable_then_replaced() {
    with_database(|config| async move {
        let store = PostgresStore::open(config.clone()).await.unwrap();
        let a = store.create_app(app(Some("lost"))).await.unwrap();
        let admin = connect(&config.url).await;
        let ended: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'herald'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(ended >= 1);
        // Each pooled connection may fail one call before the pool sees it closed.
        let mut found = None;
        for _ in 0..=config.max_connections {
            match store.list_apps(None, &page(10)).await {
                Ok(apps) => {
                    found = Some(apps);
                    break;
                }
                Err(StoreError::Unavailable(_)) => {}
                Err(other) => panic!("a lost connection is Unavailable, not {other:?}"),
            }
        }
        assert_eq!(found.expect("a new connection serves").len(), 1);
        assert_eq!(store.get_app(a.id.as_str()).await.unwrap(), Some(a));
    })
    .await;
}

#[test]
fn the_config_never_shows_a_password() {
    for url in [
        "postgres://herald:s3cret@db:5432/herald",
        "postgres://herald@db/herald?password=s3cret&sslmode=disable",
        "host=db user=herald password=s3cret dbname=herald",
    ] {
        let shown = format!(
            "{:?}",
            PostgresConfig {
                url: url.into(),
                max_connections: 1
            }
        );
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}

/// A URL that reaches no server is `Unavailable`, and says so soon.
#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let result = PostgresStore::open(PostgresConfig {
        url: format!("postgres://herald@127.0.0.1:{port}/herald"),
        max_connections: 1,
    })
    .await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{:?}",
        result.err()
    );
}

/// Many nodes publishing with one idempotency key at once: exactly one message is stored,
/// and every other call gets it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_holds_across_concurrent_inserts() {
    with_database(|config| async move {
        let store = Arc::new(PostgresStore::open(config).await.unwrap());
        let (a, e) = app_with_endpoint(&store).await;
        let inserts: Vec<_> = (0..8)
            .map(|_| {
                let (store, app, endpoint) = (store.clone(), a.id.clone(), e.id.clone());
                tokio::spawn(async move {
                    store
                        .insert_message(NewMessage {
                            message: message(&app, None, t(1)),
                            owner: NODE_A,
                            deliveries: Deliveries::Known(vec![NewDelivery {
                                id: model::DeliveryId::generate(),
                                endpoint_id: endpoint,
                                leased_until: None,
                            }]),
                            idempotency_key: Some("same".into()),
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut created = Vec::new();
        let mut existing = Vec::new();
        for insert in inserts {
            match insert.await.unwrap() {
                Inserted::Created { .. } => created.push(()),
                Inserted::Existing(m) => existing.push(m.id),
            }
        }
        assert_eq!(created.len(), 1);
        let stored = store
            .list_messages(&a.id, &MessageFilter::default(), &page(100))
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert!(existing.iter().all(|id| *id == stored[0].id));
        let due = store
            .lease_due(LeaseRequest::new(NODE_A, t(10), t(100), 100))
            .await
            .unwrap();
        assert_eq!(due.due.len(), 1, "one delivery, of the one message stored");
    })
    .await;
}

/// The group writer waits for more only for publishers that have shown they come
/// together: never for a lone publisher waiting for each answer, and, for a steady stream
/// of concurrent ones, for as many as its last group held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_waits_only_for_concurrent_publishers() {
    with_database(|config| async move {
        let store = Arc::new(PostgresStore::open(config).await.unwrap());
        let (a, e) = app_with_endpoint(&store).await;
        let publish = |store: Arc<PostgresStore>, app, endpoint| async move {
            let m = message(&app, None, t(1));
            store
                .insert_message(leased_to_a(m, endpoint))
                .await
                .unwrap();
        };
        // One publisher, one publish after another, for longer than the rate's window.
        let started = std::time::Instant::now();
        let mut alone = 0;
        while alone < 50 || started.elapsed() < std::time::Duration::from_millis(200) {
            publish(store.clone(), a.id.clone(), e.id.clone()).await;
            alone += 1;
        }
        assert_eq!(store.group.written(), alone, "a group each");
        assert_eq!(store.group.lingered(), 0, "a lone publisher never waits");

        // Sixteen publishers, each publishing one after another.
        let publishers: Vec<_> = (0..16)
            .map(|_| {
                let (store, app, endpoint) = (store.clone(), a.id.clone(), e.id.clone());
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let mut sent = 0;
                    while sent < 50 || started.elapsed() < std::time::Duration::from_millis(300) {
                        publish(store.clone(), app.clone(), endpoint.clone()).await;
                        sent += 1;
                    }
                    sent
                })
            })
            .collect();
        let mut together = 0;
        for publisher in publishers {
            together += publisher.await.unwrap();
        }
        let groups = store.group.written() - alone;
        assert!(
            store.group.lingered() > 0,
            "a steady stream waits for its group"
        );
        assert!(
            groups * 4 <= together,
            "{groups} groups for {together} publishes"
        );
        let stored = store
            .list_messages(&a.id, &MessageFilter::default(), &page(10_000))
            .await
            .unwrap();
        assert_eq!(stored.len(), alone + together, "every publish stored");
    })
    .await;
}

/// Concurrent plain publishes share statements (group commit); a duplicate `eventId` in a
/// group fails alone, and every other message is stored exactly as given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_share_statements_and_fail_alone() {
    with_database(|config| async move {
        let store = Arc::new(PostgresStore::open(config).await.unwrap());
        let (a, e) = app_with_endpoint(&store).await;
        let inserts: Vec<_> = (0..60)
            .map(|i| {
                let (store, app, endpoint) = (store.clone(), a.id.clone(), e.id.clone());
                tokio::spawn(async move {
                    let event_id = match i {
                        7 | 41 => Some("dup".to_owned()),
                        _ => Some(format!("evt-{i}")),
                    };
                    let mut m = message(&app, None, t(1));
                    m.event_id = event_id;
                    m.tags = Some(vec!["t1".into(), "t2".into()]);
                    let inserted = store.insert_message(leased_to_a(m.clone(), endpoint)).await;
                    (m, inserted)
                })
            })
            .collect();
        let mut conflicts = 0;
        for insert in inserts {
            let (m, inserted) = insert.await.unwrap();
            match inserted {
                Ok(Inserted::Created { .. }) => {
                    let stored = store.get_message(&a.id, m.id.as_str()).await.unwrap();
                    assert_eq!(stored, Some(m), "stored exactly as given");
                }
                Err(StoreError::Conflict(_)) => conflicts += 1,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(conflicts, 1, "one of the two messages with one eventId");
        let stored = store
            .list_messages(&a.id, &MessageFilter::default(), &page(100))
            .await
            .unwrap();
        assert_eq!(stored.len(), 59);
        assert!(
            store.group.written() < 60,
            "{} statements for 60 publishes",
            store.group.written()
        );
    })
    .await;
}

/// Concurrent messages about one entity form one chain: each saw the snapshot of exactly
/// one other (or none, the first), and no two saw the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_messages_about_one_entity_form_one_chain() {
    with_database(|config| async move {
        let store = Arc::new(PostgresStore::open(config).await.unwrap());
        let a = store.create_app(app(None)).await.unwrap();
        let n = 12;
        let inserts: Vec<_> = (0..n)
            .map(|i| {
                let (store, app) = (store.clone(), a.id.clone());
                tokio::spawn(async move {
                    let mut m = message(&app, None, t(i));
                    m.payload = Arc::from(format!("{{\"n\":{i}}}"));
                    m.entity = Some(model::EntityRef {
                        entity_type: None,
                        id: "e-1".into(),
                        deleted: false,
                    });
                    let inserted = store
                        .insert_message(NewMessage {
                            message: m.clone(),
                            owner: NODE_A,
                            deliveries: Deliveries::FromPrevious(Box::new(|_| Vec::new())),
                            idempotency_key: None,
                        })
                        .await
                        .unwrap();
                    let Inserted::Created { previous, .. } = inserted else {
                        panic!("created")
                    };
                    (m.payload.to_string(), previous.map(|p| p.to_string()))
                })
            })
            .collect();
        let mut links = Vec::new();
        for insert in inserts {
            links.push(insert.await.unwrap());
        }
        let firsts = links.iter().filter(|(_, p)| p.is_none()).count();
        assert_eq!(firsts, 1, "one message came first: {links:?}");
        let mut previous: Vec<_> = links.iter().filter_map(|(_, p)| p.clone()).collect();
        previous.sort();
        let before = previous.len();
        previous.dedup();
        assert_eq!(before, previous.len(), "two messages saw one snapshot");
        // Following the chain from the first reaches every message.
        let next: HashMap<_, _> = links
            .iter()
            .filter_map(|(m, p)| p.clone().map(|p| (p, m.clone())))
            .collect();
        let mut at = links.iter().find(|(_, p)| p.is_none()).unwrap().0.clone();
        let mut length = 1;
        while let Some(following) = next.get(&at) {
            at = following.clone();
            length += 1;
        }
        assert_eq!(length, n);
    })
    .await;
}

/// A poll visits at most `TURNS_PER_POLL` endpoints with deliveries waiting, however many
/// there are, and says where it stopped; the next poll goes on from there.
#[tokio::test]
async fn a_poll_visits_a_bounded_number_of_endpoints_and_the_next_goes_on() {
    use leases::TURNS_PER_POLL;
    use store::conformance::{endpoints_in_turn_order, message_to_each};

    with_database(|config| async move {
        let store = PostgresStore::open(config).await.unwrap();
        let a = store.create_app(app(None)).await.unwrap();
        let n = TURNS_PER_POLL + 6;
        let ids = endpoints_in_turn_order(&store, &a.id, n).await;
        message_to_each(&store, &a.id, &ids, t(1)).await;
        let request = |after: Option<EndpointId>| LeaseRequest {
            after,
            per_endpoint: 1,
            ..LeaseRequest::new(NODE_A, t(10), t(100), 10 * n)
        };
        let first = store.lease_due(request(None)).await.unwrap();
        assert_eq!(first.due.len(), TURNS_PER_POLL);
        assert_eq!(first.resume_after.as_ref(), Some(&ids[TURNS_PER_POLL - 1]));
        let order: Vec<_> = first.due.iter().map(|d| &d.delivery.endpoint_id).collect();
        assert_eq!(order, ids[..TURNS_PER_POLL].iter().collect::<Vec<_>>());
        let second = store.lease_due(request(first.resume_after)).await.unwrap();
        let rest: Vec<_> = second.due.iter().map(|d| &d.delivery.endpoint_id).collect();
        assert_eq!(rest, ids[TURNS_PER_POLL..].iter().collect::<Vec<_>>());
    })
    .await;
}

/// Another node's endpoint write reaches this node's cache within a second.
#[tokio::test]
async fn another_nodes_endpoint_write_is_seen_within_a_second() {
    with_database(|config| async move {
        let here = PostgresStore::open(config.clone()).await.unwrap();
        let there = PostgresStore::open(config).await.unwrap();
        let (a, e) = app_with_endpoint(&here).await;
        assert_eq!(here.app_endpoints(&a.id).await.unwrap().len(), 1);
        assert!(there.disable_endpoint(&a.id, &e.id, t(5)).await.unwrap());
        tokio::time::sleep(cache::TTL + Duration::from_millis(50)).await;
        assert!(here.app_endpoints(&a.id).await.unwrap()[0].disabled);
    })
    .await;
}

/// An application with one endpoint (whose URL nothing calls).
async fn app_with_endpoint(store: &PostgresStore) -> (model::Application, model::Endpoint) {
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    (a, e)
}

/// A plain publish of `message` with one delivery to `endpoint`, leased to `NODE_A`.
fn leased_to_a(message: model::Message, endpoint: model::EndpointId) -> NewMessage {
    NewMessage {
        message,
        owner: NODE_A,
        deliveries: Deliveries::Known(vec![NewDelivery {
            id: model::DeliveryId::generate(),
            endpoint_id: endpoint,
            leased_until: Some(t(100)),
        }]),
        idempotency_key: None,
    }
}

fn page(limit: usize) -> Page {
    Page {
        limit,
        cursor: None,
        order: store::Order::Ascending,
    }
}

/// A resend on one node wakes the other's poller (LISTEN/NOTIFY), and an endpoint written
/// on one node is gone from the other's cache as soon as the notice arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_resend_wakes_this_node() {
    with_database(|config| async move {
        let here = Arc::new(PostgresStore::open(config.clone()).await.unwrap());
        let there = PostgresStore::open(config).await.unwrap();
        let (a, e) = app_with_endpoint(&there).await;
        let m = message(&a.id, None, t(1));
        there
            .insert_message(NewMessage {
                message: m.clone(),
                owner: NODE_A,
                deliveries: Deliveries::Known(Vec::new()),
                idempotency_key: None,
            })
            .await
            .unwrap();
        // The listener is up once a first notice arrives: announce until one does.
        let ready = {
            let here = here.clone();
            tokio::spawn(async move { here.woken().await })
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ready.is_finished() {
            assert!(std::time::Instant::now() < deadline, "no wake-up arrived");
            there.announce(wake::Topic::Work);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let woken = {
            let here = here.clone();
            tokio::spawn(async move { here.woken().await })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        there.resend(&a.id, &m.id, &e.id, t(2)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), woken)
            .await
            .expect("the resend woke the other node")
            .unwrap();
    })
    .await;
}

/// One node purges at a time: while another holds the purge lock, a batch changes
/// nothing and says so, and the same batch runs once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_purges_at_a_time() {
    with_database(|config| async move {
        let url = config.url.clone();
        let store = PostgresStore::open(config).await.unwrap();
        let a = store.create_app(app(None)).await.unwrap();
        let mut old = message(&a.id, None, t(1));
        old.id = model::MessageId::floor_at(t(1));
        store
            .insert_message(NewMessage {
                message: old.clone(),
                owner: NODE_A,
                deliveries: Deliveries::Known(Vec::new()),
                idempotency_key: None,
            })
            .await
            .unwrap();
        let request = store::PurgeRequest {
            app: a.id.clone(),
            before: t(10),
            after: None,
            max_messages: 10,
            max_rows: 100,
        };
        let mut other = connect(&url).await;
        let holding = other.transaction().await.unwrap();
        holding
            .execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&super::purge::LOCK_KEY],
            )
            .await
            .unwrap();
        let purged = store.purge_messages(request.clone()).await.unwrap();
        assert!(purged.busy && purged.messages == 0, "{purged:?}");
        assert!(
            store
                .get_message(&a.id, old.id.as_str())
                .await
                .unwrap()
                .is_some()
        );
        holding.rollback().await.unwrap();
        let purged = store.purge_messages(request).await.unwrap();
        assert_eq!((purged.busy, purged.messages), (false, 1), "{purged:?}");
    })
    .await;
}
