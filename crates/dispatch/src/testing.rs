//! Entities for the crate's tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use model::{AppId, Application, Endpoint, EndpointId, Message, MessageId, Secret};
use store::Store;
use store_sqlite::{EmbeddedConfig, EmbeddedStore};

/// An endpoint of `app_x` at `http://127.0.0.1/`, subscribed to `types` and `channels`
/// (all when `None`).
pub(crate) fn endpoint(
    types: Option<&[&str]>,
    channels: Option<&[&str]>,
    disabled: bool,
) -> Endpoint {
    let list = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
    Endpoint {
        id: EndpointId::generate(),
        app_id: AppId::from_string("app_x".into()),
        uid: None,
        url: "http://127.0.0.1/".into(),
        description: String::new(),
        version: 1,
        rate_limit: None,
        disabled,
        filter_types: list(types),
        channels: list(channels),
        metadata: BTreeMap::new(),
        headers: BTreeMap::new(),
        filter: None,
        transform: None,
        name: None,
        method: model::Method::Post,
        envelope: model::Envelope::Raw,
        party: None,
        payload_mode: model::PayloadMode::Full,
        diff_keep: Vec::new(),
        secret: Secret::from_string(String::new()),
        retired_secrets: vec![],
        created_at: Utc::now(),
        updated_at: Utc::now(),
        revision: 1,
    }
}

/// A message of `app_x` with an empty payload.
pub(crate) fn message(event_type: &str, channels: Option<&[&str]>) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: AppId::from_string("app_x".into()),
        event_id: None,
        event_type: event_type.into(),
        payload: Arc::from("{}"),
        channels: channels.map(|v| v.iter().map(|s| s.to_string()).collect()),
        tags: None,
        origin: None,
        entity: None,
        previous: None,
        traceparent: None,
        payload_expires_at: None,
        created_at: Utc::now(),
    }
}

/// An embedded store in `dir` with one application in it.
pub(crate) async fn store_with_app(dir: &std::path::Path) -> (Arc<dyn Store>, Application) {
    let store: Arc<dyn Store> = Arc::new(
        EmbeddedStore::open(EmbeddedConfig {
            path: dir.join("herald.db"),
            sync_full: true,
            max_bytes: None,
        })
        .unwrap(),
    );
    let app = store
        .create_app(Application {
            id: AppId::generate(),
            uid: None,
            name: "acme".into(),
            rate_limit: None,
            metadata: Default::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        })
        .await
        .unwrap();
    (store, app)
}
