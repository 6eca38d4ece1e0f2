//! The embedded store runs the conformance suite.

use super::*;

#[tokio::test]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: true,
        max_bytes: None,
    })
    .unwrap();
    store::conformance(Arc::new(store)).await;
}

/// A full store refuses the write that does not fit, whole, says the disk is full, and
/// keeps serving reads and everything written before.
#[tokio::test]
async fn a_full_store_refuses_writes_cleanly() {
    use chrono::Utc;
    use model::{Application, Message, MessageId};

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: false,
        max_bytes: Some(256 * 1024),
    })
    .unwrap();
    let app = store
        .create_app(Application {
            id: model::AppId::generate(),
            uid: None,
            name: "full".into(),
            rate_limit: None,
            metadata: Default::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    let payload: Arc<str> = Arc::from(format!("{{\"pad\": \"{}\"}}", "x".repeat(4000)));
    let mut stored = Vec::new();
    let full = loop {
        let message = Message {
            id: MessageId::generate(),
            app_id: app.id.clone(),
            event_id: None,
            event_type: "a.b".into(),
            payload: payload.clone(),
            channels: None,
            tags: None,
            origin: None,
            entity: None,
            previous: None,
            traceparent: None,
            payload_expires_at: None,
            created_at: Utc::now(),
        };
        match store
            .insert_message(store::NewMessage {
                owner: store::conformance::NODE_A,
                message: message.clone(),
                deliveries: store::Deliveries::Known(Vec::new()),
                idempotency_key: None,
            })
            .await
        {
            Ok(_) => stored.push(message.id),
            Err(err) => break (err, message.id),
        }
        assert!(stored.len() < 1000, "the limit is enforced");
    };
    let (StoreError::StorageFull(_), refused) = full else {
        panic!("storage full, not {:?}", full.0)
    };
    assert!(stored.len() > 10, "{} stored first", stored.len());
    assert!(
        store
            .get_message(&app.id, refused.as_str())
            .await
            .unwrap()
            .is_none()
    );
    for id in &stored {
        assert!(
            store
                .get_message(&app.id, id.as_str())
                .await
                .unwrap()
                .is_some()
        );
    }
}

/// Recover walks an endpoint's deliveries in chunks (one write each): every failed one in
/// the window is recovered, across chunk boundaries, and nothing else is touched.
#[tokio::test]
async fn recover_covers_every_chunk() {
    use model::{DeliveryId, Status};
    use store::conformance::{app, attempt_for, endpoint, message, t};
    use store::{AttemptRecord, Deliveries, DeliveryUpdate, NewDelivery, NewMessage};

    let dir = tempfile::tempdir().unwrap();
    let mut store = EmbeddedStore::open(EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: false,
        max_bytes: None,
    })
    .unwrap();
    store.recover_chunk = 4;
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/hook"))
        .await
        .unwrap();
    // 23 messages at t(1)..t(23); all but every fifth one fail.
    for i in 1..=23 {
        store
            .insert_message(NewMessage {
                owner: store::conformance::NODE_A,
                message: message(&a.id, None, t(i)),
                deliveries: Deliveries::Known(vec![NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e.id.clone(),
                    leased_until: None,
                }]),
                idempotency_key: None,
            })
            .await
            .unwrap();
    }
    let due = store
        .lease_due(LeaseRequest::new(
            store::conformance::NODE_A,
            t(30),
            t(40),
            100,
        ))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 23);
    let records = due
        .iter()
        .map(|d| {
            let i = d.message.created_at.timestamp() - t(0).timestamp();
            let status = if i % 5 == 0 {
                Status::Success
            } else {
                Status::Fail
            };
            AttemptRecord {
                generation: d.generation,
                attempt: attempt_for(d, status, t(31)),
                update: DeliveryUpdate {
                    status,
                    attempts: 1,
                    next_attempt_at: None,
                },
            }
        })
        .collect();
    store
        .record_attempts(store::conformance::NODE_A, records)
        .await
        .unwrap();

    // Created in [t(3), t(22)): 19 messages, of which 5, 10, 15 and 20 succeeded: 15 to
    // recover, in chunks of 4 deliveries.
    let recovered = store
        .recover(&a.id, &e.id, t(3), Some(t(22)), t(50))
        .await
        .unwrap();
    assert_eq!(recovered, 15);
    let due = store
        .lease_due(LeaseRequest::new(
            store::conformance::NODE_A,
            t(50),
            t(60),
            100,
        ))
        .await
        .unwrap()
        .due;
    let mut at: Vec<i64> = due
        .iter()
        .map(|d| d.message.created_at.timestamp() - t(0).timestamp())
        .collect();
    at.sort_unstable();
    let expected: Vec<i64> = (3..22).filter(|i| i % 5 != 0).collect();
    assert_eq!(at, expected);
    // Again: nothing is failed in that window any more.
    assert_eq!(
        store
            .recover(&a.id, &e.id, t(0), None, t(70))
            .await
            .unwrap(),
        // The ones outside the window: 1, 2, 22, 23.
        4
    );
}

/// A database written with a schema this build cannot migrate (an older Herald's than the
/// migrations reach, or a newer one's) is refused at open, saying why and what to do,
/// rather than failing on every write later.
#[tokio::test]
async fn a_database_with_another_schema_is_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    let config = EmbeddedConfig {
        path: path.clone(),
        sync_full: false,
        max_bytes: None,
    };
    drop(EmbeddedStore::open(config.clone()).unwrap());
    // Reopening the same version is fine.
    drop(EmbeddedStore::open(config.clone()).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 1;").unwrap();
    drop(conn);
    let Err(err) = EmbeddedStore::open(config.clone()) else {
        panic!("a schema 1 database was opened");
    };
    let text = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        text.contains("older Herald (schema 1")
            && text.contains("migrates from schema 2")
            && text.contains("empty data directory"),
        "{text}"
    );
    // A newer Herald's database is refused too, and left as it was.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA user_version = 99;").unwrap();
    drop(conn);
    let Err(err) = EmbeddedStore::open(config) else {
        panic!("a schema 99 database was opened");
    };
    let text = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        text.contains("newer Herald (schema 99") && text.contains("run that version"),
        "{text}"
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99);
}

/// The deliveries and attempts tables as schema 2 (Herald before the migration to 3)
/// created them; every other table is the same in both.
const SCHEMA_2_DELIVERIES_AND_ATTEMPTS: &str = "
CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    msg_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    status INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at INTEGER,
    leased INTEGER NOT NULL,
    trigger INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (msg_id, endpoint_id)
) WITHOUT ROWID;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 1;
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, msg_id);
CREATE TABLE attempts (
    id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    msg_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    url TEXT NOT NULL,
    status INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    error TEXT,
    trigger INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX attempts_msg ON attempts (msg_id, id);
CREATE INDEX attempts_endpoint ON attempts (endpoint_id, id);
";

/// A schema 2 database is migrated at open: its deliveries and attempts are all there
/// afterwards, read and written as before, with the tables keyed the new way.
#[tokio::test]
async fn a_schema_2_database_is_migrated_at_open() {
    use model::{DeliveryId, Status};
    use store::conformance::{app, attempt_for, endpoint, message, t};
    use store::{
        AttemptFilter, AttemptRecord, Deliveries, DeliveryUpdate, NewDelivery, NewMessage, Order,
        Page,
    };

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    let config = EmbeddedConfig {
        path: path.clone(),
        sync_full: false,
        max_bytes: None,
    };
    let page = || Page {
        limit: 50,
        cursor: None,
        order: Order::Ascending,
    };
    // Three messages to one endpoint: one delivered, one failed and due again at t(20),
    // one never attempted.
    let store = EmbeddedStore::open(config.clone()).unwrap();
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/hook"))
        .await
        .unwrap();
    let mut messages = Vec::new();
    for i in 1..=3 {
        let m = message(&a.id, None, t(i));
        messages.push(m.id.clone());
        store
            .insert_message(NewMessage {
                owner: store::conformance::NODE_A,
                message: m,
                deliveries: Deliveries::Known(vec![NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e.id.clone(),
                    leased_until: None,
                }]),
                idempotency_key: None,
            })
            .await
            .unwrap();
    }
    let due = store
        .lease_due(LeaseRequest::new(
            store::conformance::NODE_A,
            t(10),
            t(15),
            2,
        ))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 2);
    let outcomes = [(Status::Success, None), (Status::Fail, Some(t(20)))];
    let records = due
        .iter()
        .zip(outcomes)
        .map(|(d, (status, next_attempt_at))| AttemptRecord {
            generation: d.generation,
            attempt: attempt_for(d, status, t(11)),
            update: DeliveryUpdate {
                status: if next_attempt_at.is_some() {
                    Status::Pending
                } else {
                    status
                },
                attempts: 1,
                next_attempt_at,
            },
        })
        .collect();
    store
        .record_attempts(store::conformance::NODE_A, records)
        .await
        .unwrap();
    let attempts_before = store
        .list_attempts(&a.id, &AttemptFilter::default(), &page())
        .await
        .unwrap();
    assert_eq!(attempts_before.len(), 2);
    let mut deliveries_before = Vec::new();
    for m in &messages {
        deliveries_before.extend(
            store
                .list_message_deliveries(&a.id, m, &page())
                .await
                .unwrap(),
        );
    }
    drop(store);

    // Rewrite those two tables as schema 2 had them, rows and all.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         ALTER TABLE deliveries RENAME TO deliveries_now;
         ALTER TABLE attempts RENAME TO attempts_now;
         DROP INDEX deliveries_leased; DROP INDEX deliveries_waiting;
         DROP INDEX deliveries_endpoint; DROP INDEX attempts_endpoint;
         {SCHEMA_2_DELIVERIES_AND_ATTEMPTS}
         INSERT INTO deliveries SELECT id, msg_id, app_id, endpoint_id, status, attempts,
             next_attempt_at, leased, trigger, created_at, updated_at FROM deliveries_now;
         INSERT INTO attempts SELECT * FROM attempts_now;
         DROP TABLE deliveries_now; DROP TABLE attempts_now;
         ALTER TABLE endpoints DROP COLUMN revision;
         ALTER TABLE tokens DROP COLUMN capabilities;
         ALTER TABLE event_types DROP COLUMN enforce_schema;
         DROP INDEX messages_payload_expiry;
         ALTER TABLE messages DROP COLUMN expunged;
         DROP INDEX messages_previous;
         ALTER TABLE messages DROP COLUMN traceparent;
         ALTER TABLE messages DROP COLUMN payload_expires_at;
         PRAGMA user_version = 2;
         COMMIT;"
    ))
    .unwrap();
    drop(conn);

    let store = EmbeddedStore::open(config.clone()).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' AND tbl_name IN ('deliveries', 'attempts') ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(
        indexes,
        [
            "attempts_endpoint",
            "deliveries_endpoint",
            "deliveries_leased",
            "deliveries_waiting"
        ]
    );
    // Schema 4's indexes of pending deliveries: leased by lease end, waiting by endpoint.
    for (index, definition) in [
        (
            "deliveries_leased",
            "(next_attempt_at) WHERE status = 1 AND leased = 1",
        ),
        (
            "deliveries_waiting",
            "(endpoint_id, next_attempt_at) WHERE status = 1 AND leased = 0",
        ),
    ] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [index],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains(definition), "{sql}");
    }
    for (table, key) in [
        ("deliveries", "PRIMARY KEY (msg_id, endpoint_id)"),
        ("attempts", "PRIMARY KEY (msg_id, id)"),
    ] {
        let sql: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains(key) && sql.contains("WITHOUT ROWID"), "{sql}");
    }
    drop(conn);

    // Everything is there, and reads as it did.
    let attempts_after = store
        .list_attempts(&a.id, &AttemptFilter::default(), &page())
        .await
        .unwrap();
    assert_eq!(
        format!("{attempts_after:?}"),
        format!("{attempts_before:?}")
    );
    let attempt = &attempts_after[0];
    assert!(
        store
            .get_attempt(&a.id, &attempt.msg_id, &attempt.id)
            .await
            .unwrap()
            .is_some()
    );
    let mut deliveries_after = Vec::new();
    for m in &messages {
        deliveries_after.extend(
            store
                .list_message_deliveries(&a.id, m, &page())
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        format!("{deliveries_after:?}"),
        format!("{deliveries_before:?}")
    );
    // And the pipeline goes on: the failed one and the never attempted one come due,
    // and recording them finds their rows.
    let due = store
        .lease_due(LeaseRequest::new(
            store::conformance::NODE_A,
            t(30),
            t(35),
            10,
        ))
        .await
        .unwrap()
        .due;
    let mut due_messages: Vec<_> = due.iter().map(|d| d.message.id.clone()).collect();
    due_messages.sort();
    assert_eq!(due_messages, messages[1..].to_vec());
    let records = due
        .iter()
        .map(|d| AttemptRecord {
            generation: d.generation,
            attempt: attempt_for(d, Status::Success, t(31)),
            update: DeliveryUpdate {
                status: Status::Success,
                attempts: d.delivery.attempts + 1,
                next_attempt_at: None,
            },
        })
        .collect();
    store
        .record_attempts(store::conformance::NODE_A, records)
        .await
        .unwrap();
    assert!(
        store
            .lease_due(LeaseRequest::new(
                store::conformance::NODE_A,
                t(100),
                t(105),
                10
            ))
            .await
            .unwrap()
            .due
            .is_empty()
    );
    for m in &messages {
        let d = store
            .list_message_deliveries(&a.id, m, &page())
            .await
            .unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].status, Status::Success, "{m:?}");
    }
}

/// A group of writes shares one transaction, run first without savepoints: a write that
/// fails after changing rows (or panics) must still roll back alone, and every other
/// write of its group must commit, each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_rolls_back_alone_in_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let conn = rusqlite::Connection::open(dir.path().join("w.db")).unwrap();
    conn.execute_batch("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        .unwrap();
    let writer = writer::Writer::start(conn).unwrap();
    // A slow first write holds the writer, so everything sent meanwhile forms one group.
    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let started_tx = std::sync::Mutex::new(started_tx);
    let slow = {
        let writer = writer.clone();
        tokio::spawn(async move {
            writer
                .write(move |conn| {
                    let _ = started_tx.lock().unwrap().send(());
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    conn.execute("INSERT INTO t (k, v) VALUES (0, 'slow')", [])
                        .map_err(writer::backend)?;
                    Ok(())
                })
                .await
        })
    };
    started_rx.recv().unwrap();
    let mut writes = Vec::new();
    for k in 1..=40_i64 {
        let writer = writer.clone();
        writes.push(tokio::spawn(async move {
            writer
                .write(move |conn| {
                    // Each write counts its runs in the row it inserts.
                    conn.execute(
                        "INSERT INTO t (k, v) VALUES (?1, 'run') ON CONFLICT (k) DO UPDATE SET v = v || ' again'",
                        [k],
                    )
                    .map_err(writer::backend)?;
                    match k {
                        13 => Err(StoreError::Conflict("thirteen".into())),
                        27 => panic!("a bug in write 27"),
                        _ => Ok(k),
                    }
                })
                .await
        }));
    }
    slow.await.unwrap().unwrap();
    for (k, write) in (1..=40_i64).zip(writes) {
        let result = write.await.unwrap();
        match k {
            13 => assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}"),
            27 => assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}"),
            _ => assert_eq!(result.unwrap(), k),
        }
    }
    let rows: Vec<(i64, String)> = writer
        .write(|conn| {
            let mut stmt = conn
                .prepare("SELECT k, v FROM t ORDER BY k")
                .map_err(writer::backend)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(Iterator::collect)
                .map_err(writer::backend)?;
            Ok(rows)
        })
        .await
        .unwrap();
    let expected: Vec<(i64, String)> = (0..=40_i64)
        .filter(|k| *k != 13 && *k != 27)
        .map(|k| (k, if k == 0 { "slow" } else { "run" }.to_owned()))
        .collect();
    assert_eq!(rows, expected);
}

/// A poll visits at most `TURNS_PER_POLL` endpoints with deliveries waiting, however
/// many there are, and says where it stopped; the next poll goes on from there.
#[tokio::test]
async fn a_poll_visits_a_bounded_number_of_endpoints_and_the_next_goes_on() {
    use store::LeaseRequest;
    use store::conformance::{app, endpoints_in_turn_order, message_to_each, t};

    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: false,
        max_bytes: None,
    })
    .unwrap();
    let a = store.create_app(app(None)).await.unwrap();
    let n = TURNS_PER_POLL + 6;
    let ids = endpoints_in_turn_order(&store, &a.id, n).await;
    message_to_each(&store, &a.id, &ids, t(1)).await;
    let request = |after: Option<EndpointId>| LeaseRequest {
        after,
        per_endpoint: 1,
        ..LeaseRequest::new(store::conformance::NODE_A, t(10), t(100), 10 * n)
    };
    let first = store.lease_due(request(None)).await.unwrap();
    assert_eq!(first.due.len(), TURNS_PER_POLL);
    assert_eq!(first.resume_after.as_ref(), Some(&ids[TURNS_PER_POLL - 1]));
    let second = store.lease_due(request(first.resume_after)).await.unwrap();
    let rest: Vec<_> = second.due.iter().map(|d| &d.delivery.endpoint_id).collect();
    assert_eq!(rest, ids[TURNS_PER_POLL..].iter().collect::<Vec<_>>());
}

/// The embedded store is one process's: a second open of its folder is refused, naming
/// the process that has it, before anything is read or written; and the leases the last
/// process left behind are released when the folder is opened again.
#[tokio::test]
async fn one_process_per_data_directory_and_its_leases_come_back_at_open() {
    use store::conformance::{NODE_A, app, endpoint, message, t};
    use store::{Deliveries, LeaseRequest, NewDelivery, NewMessage};

    let dir = tempfile::tempdir().unwrap();
    let config = EmbeddedConfig {
        path: dir.path().join("herald.db"),
        sync_full: false,
        max_bytes: None,
    };
    let store = EmbeddedStore::open(config.clone()).unwrap();
    assert_eq!(store.released_at_open(), 0);
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    store
        .insert_message(NewMessage {
            message: message(&a.id, None, t(1)),
            owner: NODE_A,
            deliveries: Deliveries::Known(vec![NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: e.id.clone(),
                leased_until: Some(t(1000)),
            }]),
            idempotency_key: None,
        })
        .await
        .unwrap();
    let files = |dir: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|f| {
                let f = f.unwrap();
                (f.file_name(), f.metadata().unwrap().len())
            })
            .collect();
        names.sort();
        names
    };
    let before = files(dir.path());
    match EmbeddedStore::open(config.clone()) {
        Err(OpenError::InUse { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
        Err(other) => panic!("in use, not {other}"),
        Ok(_) => panic!("a second open of a folder in use succeeded"),
    }
    assert_eq!(
        files(dir.path()),
        before,
        "the refused open changed nothing"
    );
    drop(store);

    let store = EmbeddedStore::open(config).unwrap();
    assert_eq!(store.released_at_open(), 1);
    let due = store
        .lease_due(LeaseRequest::new(NODE_A, t(2), t(100), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 1, "a lease left behind is due at once");
}
