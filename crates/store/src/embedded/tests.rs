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
