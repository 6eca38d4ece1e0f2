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
    crate::conformance(Arc::new(store)).await;
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
            created_at: Utc::now(),
        };
        match store
            .insert_message(crate::NewMessage {
                message: message.clone(),
                deliveries: crate::Deliveries::Known(Vec::new()),
                idempotency_key: None,
            })
            .await
        {
            Ok(_) => stored.push(message.id),
            Err(err) => break (err, message.id),
        }
        assert!(stored.len() < 1000, "the limit is enforced");
    };
    let (StoreError::Backend(cause), refused) = full else {
        panic!("a backend error")
    };
    let io = cause
        .downcast_ref::<std::io::Error>()
        .unwrap_or_else(|| panic!("an io error, not {cause:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::StorageFull);
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
    use crate::conformance::{app, attempt_for, endpoint, message, t};
    use crate::{AttemptRecord, Deliveries, DeliveryUpdate, NewDelivery, NewMessage};
    use model::{DeliveryId, Status};

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
    let due = store.lease_due(t(30), t(40), 100).await.unwrap();
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
                attempt: attempt_for(d, status, t(31)),
                update: DeliveryUpdate {
                    status,
                    attempts: 1,
                    next_attempt_at: None,
                },
            }
        })
        .collect();
    store.record_attempts(records).await.unwrap();

    // Created in [t(3), t(22)): 19 messages, of which 5, 10, 15 and 20 succeeded: 15 to
    // recover, in chunks of 4 deliveries.
    let recovered = store
        .recover(&a.id, &e.id, t(3), Some(t(22)), t(50))
        .await
        .unwrap();
    assert_eq!(recovered, 15);
    let due = store.lease_due(t(50), t(60), 100).await.unwrap();
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

/// A database written with another schema (an older Herald's) is refused at open, saying
/// why and what to do, rather than failing on every write later.
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
    let Err(err) = EmbeddedStore::open(config) else {
        panic!("a schema 1 database was opened");
    };
    let text = std::error::Error::source(&err).unwrap().to_string();
    assert!(
        text.contains("schema 1") && text.contains("empty data directory"),
        "{text}"
    );
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
