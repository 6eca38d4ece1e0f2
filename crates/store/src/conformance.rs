//! The conformance suite every `Store` backend must pass. Each backend's tests call
//! `conformance(store)` on a fresh, empty store; a backend difference shows up here as a
//! failing check, not as a code-review argument.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use model::{
    AppId, Application, Attempt, AttemptId, DeliveryId, Endpoint, EndpointId, EventType, Message,
    MessageId, Secret, Status, Trigger,
};

use crate::{
    AttemptFilter, AttemptRecord, Deliveries, DeliveryFilter, DeliveryUpdate, DueDelivery,
    FIRST_GENERATION, Inserted, LeaseRequest, LeasedDelivery, MessageFilter, NewDelivery,
    NewMessage, NodeId, Order, Page, PurgeRequest, Purged, Store, StoreError,
};

/// Two nodes sharing one store.
pub const NODE_A: NodeId = NodeId(1);
pub const NODE_B: NodeId = NodeId(2);

/// How a lease-holder names a delivery it leased.
pub fn leased(due: &DueDelivery) -> LeasedDelivery {
    LeasedDelivery {
        msg_id: due.delivery.msg_id.clone(),
        endpoint_id: due.delivery.endpoint_id.clone(),
        generation: due.generation,
    }
}

/// Runs every check against `store`, which must be empty. Panics on the first failure.
pub async fn conformance(store: Arc<dyn Store>) {
    applications(&*store).await;
    event_types(&*store).await;
    endpoints(&*store).await;
    messages_and_deliveries(&*store).await;
    endpoints_take_turns_at_lease(&*store).await;
    entity_snapshots(&*store).await;
    tokens(&*store).await;
    failing_endpoints(&*store).await;
    needing_attention(&*store).await;
    admin_token_digest(&*store).await;
    leases_are_owned_and_fenced(&*store).await;
    two_nodes_never_hold_one_delivery(store.clone()).await;
    failure_streaks_are_shared(&*store).await;
    throttles_are_shared(&*store).await;
    endpoint_updates_are_compare_and_set(&*store).await;
    figures(&*store).await;
    expunged_content(&*store).await;
    retention(&*store).await;
}

pub fn t(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
}

fn page(limit: usize) -> Page {
    Page {
        limit,
        cursor: None,
        order: Order::Ascending,
    }
}

pub fn app(uid: Option<&str>) -> Application {
    Application {
        id: AppId::generate(),
        uid: uid.map(str::to_owned),
        name: "Acme".into(),
        rate_limit: None,
        metadata: BTreeMap::from([("plan".into(), "gold".into())]),
        created_at: t(0),
        updated_at: t(0),
    }
}

pub fn endpoint(app: &AppId, url: &str) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        app_id: app.clone(),
        uid: None,
        url: url.into(),
        description: String::new(),
        version: 1,
        rate_limit: None,
        disabled: false,
        filter_types: None,
        channels: None,
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
        secret: Secret::from_string("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()),
        retired_secrets: Vec::new(),
        created_at: t(0),
        updated_at: t(0),
        revision: 1,
    }
}

pub fn message(app: &AppId, event_id: Option<&str>, at: DateTime<Utc>) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: app.clone(),
        event_id: event_id.map(str::to_owned),
        event_type: "order.created".into(),
        payload: Arc::from(r#"{"a": 1,  "b":[2]}"#),
        channels: Some(vec!["eu".into()]),
        tags: None,
        origin: Some("acct-1".into()),
        entity: None,
        previous: None,
        traceparent: None,
        payload_expires_at: None,
        created_at: at,
    }
}

async fn applications(store: &dyn Store) {
    let a = store.create_app(app(Some("acme"))).await.unwrap();
    assert_eq!(store.get_app(a.id.as_str()).await.unwrap(), Some(a.clone()));
    assert_eq!(store.get_app("acme").await.unwrap(), Some(a.clone()));
    assert!(store.get_app("nope").await.unwrap().is_none());
    assert!(matches!(
        store.create_app(app(Some("acme"))).await,
        Err(StoreError::Conflict(_))
    ));

    let mut more = Vec::new();
    for _ in 0..4 {
        more.push(store.create_app(app(None)).await.unwrap().id);
    }
    let first = store.list_apps(None, &page(2)).await.unwrap();
    assert_eq!(
        first.len(),
        3,
        "a page returns limit + 1 rows when there are more"
    );
    let rest = store
        .list_apps(
            None,
            &Page {
                limit: 10,
                cursor: Some(first[1].id.as_str().to_owned()),
                order: Order::Ascending,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 3);
    let desc = store
        .list_apps(
            None,
            &Page {
                limit: 10,
                cursor: None,
                order: Order::Descending,
            },
        )
        .await
        .unwrap();
    assert_eq!(desc.first().map(|a| &a.id), more.last());

    // Search: a part of the name, uid or id, whatever the case of its letters.
    let mut shop = app(Some("north-shop"));
    shop.name = "Northwind Traders".into();
    let shop = store.create_app(shop).await.unwrap();
    for (needle, found) in [
        ("WIND", true),
        ("th-sh", true),
        (&shop.id.as_str()[4..], true),
        ("traders ltd", false),
        ("%", false),
    ] {
        let got = store.list_apps(Some(needle), &page(10)).await.unwrap();
        let ids: Vec<_> = got.iter().map(|a| &a.id).collect();
        assert_eq!(ids == [&shop.id], found, "{needle:?}: {ids:?}");
    }
    let few = store.list_apps(Some("a"), &page(1)).await.unwrap();
    assert_eq!(few.len(), 2, "search pages like a listing");

    let mut renamed = a.clone();
    renamed.name = "Acme Inc".into();
    renamed.updated_at = t(5);
    store.update_app(renamed.clone()).await.unwrap();
    assert_eq!(store.get_app("acme").await.unwrap(), Some(renamed));
    let mut clash = store.get_app(more[0].as_str()).await.unwrap().unwrap();
    clash.uid = Some("acme".into());
    assert!(matches!(
        store.update_app(clash).await,
        Err(StoreError::Conflict(_))
    ));

    store.delete_app(&more[0]).await.unwrap();
    assert!(store.get_app(more[0].as_str()).await.unwrap().is_none());
    assert!(matches!(
        store.delete_app(&more[0]).await,
        Err(StoreError::NotFound)
    ));
}

async fn event_types(store: &dyn Store) {
    let et = EventType {
        name: "order.created".into(),
        description: "An order was created".into(),
        archived: false,
        deprecated: false,
        feature_flag: None,
        group_name: None,
        schemas: Some(serde_json::json!({"1": {"type": "object"}})),
        enforce_schema: true,
        created_at: t(0),
        updated_at: t(0),
    };
    store.create_event_type(et.clone()).await.unwrap();
    assert!(matches!(
        store.create_event_type(et.clone()).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_event_type("order.created").await.unwrap(),
        Some(et.clone())
    );
    let mut archived = et.clone();
    archived.name = "order.deleted".into();
    archived.archived = true;
    store.create_event_type(archived).await.unwrap();
    assert_eq!(
        store
            .list_event_types(&page(10), false)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.list_event_types(&page(10), true).await.unwrap().len(),
        2
    );
    // Every field is kept by an update, the enforcement flag too.
    let mut relaxed = et.clone();
    relaxed.enforce_schema = false;
    relaxed.updated_at = t(1);
    store.update_event_type(relaxed.clone()).await.unwrap();
    assert_eq!(
        store.get_event_type("order.created").await.unwrap(),
        Some(relaxed)
    );
    store.delete_event_type("order.deleted").await.unwrap();
    assert!(
        store
            .get_event_type("order.deleted")
            .await
            .unwrap()
            .is_none()
    );
}

async fn endpoints(store: &dyn Store) {
    let a = store.create_app(app(None)).await.unwrap();
    assert!(store.app_endpoints(&a.id).await.unwrap().is_empty());
    let mut e = endpoint(&a.id, "http://127.0.0.1:1/hook");
    e.uid = Some("main".into());
    e.filter_types = Some(vec!["order.created".into()]);
    e.headers = BTreeMap::from([("x-team".into(), "blue".into())]);
    e.filter = Some(serde_json::json!({"payload.status": {"$in": ["final", "closed"]}}));
    e.name = Some("Main".into());
    e.transform = Some(serde_json::json!({"map": {"payload.status": {"repaired": "final"}}}));
    e.method = model::Method::Put;
    e.envelope = model::Envelope::Standard;
    e.party = Some("partner-7".into());
    let e = store.create_endpoint(e).await.unwrap();
    assert_eq!(
        store.get_endpoint(&a.id, "main").await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(
        store.get_endpoint(&a.id, e.id.as_str()).await.unwrap(),
        Some(e.clone())
    );
    assert_eq!(*store.app_endpoints(&a.id).await.unwrap(), vec![e.clone()]);

    let other = store.create_app(app(None)).await.unwrap();
    assert!(
        store
            .get_endpoint(&other.id, e.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    let mut dup = endpoint(&a.id, "http://127.0.0.1:2/");
    dup.uid = Some("main".into());
    assert!(matches!(
        store.create_endpoint(dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .create_endpoint(endpoint(&AppId::generate(), "http://x/"))
            .await,
        Err(StoreError::NotFound)
    ));

    // A 410 Gone disables an endpoint once; `app_endpoints` (cached or not) sees it at once.
    let gone = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:4/"))
        .await
        .unwrap();
    assert_eq!(store.app_endpoints(&a.id).await.unwrap().len(), 2);
    assert!(
        store
            .disable_endpoint(&a.id, &gone.id, t(50))
            .await
            .unwrap()
    );
    assert!(
        !store
            .disable_endpoint(&a.id, &gone.id, t(51))
            .await
            .unwrap(),
        "disabling a disabled endpoint changes nothing"
    );
    let mut disabled = gone.clone();
    disabled.disabled = true;
    disabled.updated_at = t(50);
    disabled.revision += 1;
    assert!(
        store
            .app_endpoints(&a.id)
            .await
            .unwrap()
            .contains(&disabled)
    );
    assert_eq!(
        store.get_endpoint(&a.id, gone.id.as_str()).await.unwrap(),
        Some(disabled)
    );
    for (app_id, id) in [(&other.id, &gone.id), (&a.id, &EndpointId::generate())] {
        assert!(matches!(
            store.disable_endpoint(app_id, id, t(52)).await,
            Err(StoreError::NotFound)
        ));
    }
    store.delete_endpoint(&a.id, &gone.id).await.unwrap();

    let mut changed = e.clone();
    changed.disabled = true;
    changed.url = "http://127.0.0.1:3/".into();
    let changed = store
        .update_endpoint(changed.clone(), e.revision)
        .await
        .unwrap();
    assert_eq!(
        *store.app_endpoints(&a.id).await.unwrap(),
        vec![changed.clone()],
        "app_endpoints reflects completed writes"
    );
    assert_eq!(
        store.list_endpoints(&a.id, &page(10)).await.unwrap().len(),
        1
    );
    store.delete_endpoint(&a.id, &e.id).await.unwrap();
    assert!(store.app_endpoints(&a.id).await.unwrap().is_empty());
    assert!(matches!(
        store.delete_endpoint(&a.id, &e.id).await,
        Err(StoreError::NotFound)
    ));
}

pub fn attempt_for(due: &crate::DueDelivery, status: Status, at: DateTime<Utc>) -> Attempt {
    Attempt {
        id: AttemptId::generate(),
        delivery_id: due.delivery.id.clone(),
        msg_id: due.message.id.clone(),
        app_id: due.message.app_id.clone(),
        endpoint_id: due.delivery.endpoint_id.clone(),
        url: "http://127.0.0.1:1/hook".into(),
        status,
        response_status_code: if status == Status::Success { 200 } else { 500 },
        response: "ok".into(),
        response_duration_ms: 3,
        error: None,
        trigger: due.delivery.trigger,
        created_at: at,
    }
}

async fn messages_and_deliveries(store: &dyn Store) {
    let a = store.create_app(app(None)).await.unwrap();
    let e1 = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    let e2 = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:2/"))
        .await
        .unwrap();

    // Ingest: one message, two deliveries, the first already leased to the caller.
    let m = message(&a.id, Some("evt-1"), t(10));
    let inserted = store
        .insert_message(NewMessage {
            owner: NODE_A,
            message: m.clone(),
            deliveries: Deliveries::Known(vec![
                NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e1.id.clone(),
                    leased_until: Some(t(70)),
                },
                NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e2.id.clone(),
                    leased_until: None,
                },
            ]),
            idempotency_key: Some("key-1".into()),
        })
        .await
        .unwrap();
    assert!(matches!(
        inserted,
        Inserted::Created { previous: None, ref deliveries } if deliveries.len() == 2
    ));
    let stored = store
        .get_message(&a.id, m.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, m);
    assert_eq!(
        &*stored.payload, r#"{"a": 1,  "b":[2]}"#,
        "payload bytes are kept exactly"
    );
    assert_eq!(
        store.get_message(&a.id, "evt-1").await.unwrap(),
        Some(m.clone())
    );

    // The same idempotency key returns the first message and writes nothing.
    let again = store
        .insert_message(NewMessage {
            owner: NODE_A,
            message: message(&a.id, None, t(11)),
            deliveries: Deliveries::Known(vec![]),
            idempotency_key: Some("key-1".into()),
        })
        .await
        .unwrap();
    assert!(matches!(again, Inserted::Existing(ref earlier) if earlier.id == m.id));
    // A duplicate eventId is a conflict, and nothing of it is stored.
    let dup = message(&a.id, Some("evt-1"), t(12));
    assert!(matches!(
        store
            .insert_message(NewMessage {
                owner: NODE_A,
                message: dup.clone(),
                deliveries: Deliveries::Known(vec![NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e1.id.clone(),
                    leased_until: None,
                }]),
                idempotency_key: Some("key-2".into()),
            })
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .get_message(&a.id, dup.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    let listed = store
        .list_messages(&a.id, &MessageFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let by_channel = MessageFilter {
        channel: Some("us".into()),
        ..Default::default()
    };
    assert!(
        store
            .list_messages(&a.id, &by_channel, &page(10))
            .await
            .unwrap()
            .is_empty()
    );
    let by_type = MessageFilter {
        event_types: Some(vec!["order.created".into()]),
        after: Some(t(9)),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_messages(&a.id, &by_type, &page(10))
            .await
            .unwrap()
            .len(),
        1
    );

    // Only the unleased delivery is due; leasing it hides it until the lease ends.
    let due = store
        .lease_due(LeaseRequest::new(NODE_A, t(10), t(40), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].delivery.endpoint_id, e2.id);
    assert_eq!(due[0].message, m);
    assert!(
        store
            .lease_due(LeaseRequest::new(NODE_A, t(39), t(99), 10))
            .await
            .unwrap()
            .due
            .is_empty()
    );
    // A lease that ran out makes the delivery due again, under a new generation.
    let first = due;
    let due = store
        .lease_due(LeaseRequest::new(NODE_A, t(40), t(100), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 1);
    assert!(due[0].generation > first[0].generation);

    // A failed attempt with a retry, then a success.
    store
        .record_attempts(
            NODE_A,
            vec![AttemptRecord {
                generation: due[0].generation,
                attempt: attempt_for(&due[0], Status::Fail, t(41)),
                update: DeliveryUpdate {
                    status: Status::Pending,
                    attempts: 1,
                    next_attempt_at: Some(t(46)),
                },
            }],
        )
        .await
        .unwrap();
    assert!(
        store
            .lease_due(LeaseRequest::new(NODE_A, t(45), t(200), 10))
            .await
            .unwrap()
            .due
            .is_empty()
    );
    let retry = store
        .lease_due(LeaseRequest::new(NODE_A, t(46), t(200), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].delivery.attempts, 1);
    store
        .record_attempts(
            NODE_A,
            vec![AttemptRecord {
                generation: retry[0].generation,
                attempt: attempt_for(&retry[0], Status::Success, t(47)),
                update: DeliveryUpdate {
                    status: Status::Success,
                    attempts: 2,
                    next_attempt_at: None,
                },
            }],
        )
        .await
        .unwrap();
    let attempts = store
        .list_attempts(
            &a.id,
            &AttemptFilter {
                msg_id: Some(m.id.clone()),
                ..Default::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert_eq!(
        attempts.iter().map(|a| a.status).collect::<Vec<_>>(),
        vec![Status::Fail, Status::Success]
    );
    assert_eq!(
        store
            .get_attempt(&a.id, &m.id, &attempts[0].id)
            .await
            .unwrap(),
        Some(attempts[0].clone())
    );
    let failed_only = AttemptFilter {
        endpoint_id: Some(e2.id.clone()),
        status: Some(Status::Fail),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_attempts(&a.id, &failed_only, &page(10))
            .await
            .unwrap()
            .len(),
        1
    );

    // The delivery leased at ingest, released by its holder, is due again.
    let ingested = LeasedDelivery {
        msg_id: m.id.clone(),
        endpoint_id: e1.id.clone(),
        generation: FIRST_GENERATION,
    };
    assert_eq!(
        store.release(NODE_A, &[ingested], t(48)).await.unwrap(),
        Vec::<usize>::new()
    );
    let back = store
        .lease_due(LeaseRequest::new(NODE_A, t(48), t(300), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].delivery.endpoint_id, e1.id);
    store
        .release(NODE_A, &[leased(&back[0])], t(49))
        .await
        .unwrap();
    let back = store
        .lease_due(LeaseRequest::new(NODE_A, t(49), t(300), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(back.len(), 1);
    store
        .record_attempts(
            NODE_A,
            vec![AttemptRecord {
                generation: back[0].generation,
                attempt: attempt_for(&back[0], Status::Fail, t(50)),
                update: DeliveryUpdate {
                    status: Status::Fail,
                    attempts: 8,
                    next_attempt_at: None,
                },
            }],
        )
        .await
        .unwrap();

    let deliveries = store
        .list_message_deliveries(&a.id, &m.id, &page(10))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 2);
    let stats = store
        .endpoint_stats(&a.id, &e1.id, None, None)
        .await
        .unwrap();
    assert_eq!((stats.fail, stats.success, stats.pending), (1, 0, 0));
    let to_e1 = store
        .list_endpoint_deliveries(&a.id, &e1.id, &DeliveryFilter::default(), &page(10))
        .await
        .unwrap();
    assert_eq!(to_e1.len(), 1);
    assert_eq!(to_e1[0].1.id, m.id);

    // Recover makes failed deliveries since a time pending again, for a manual attempt.
    assert_eq!(
        store
            .recover(&a.id, &e1.id, t(11), None, t(60))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .recover(&a.id, &e1.id, t(0), None, t(60))
            .await
            .unwrap(),
        1
    );
    let recovered = store
        .lease_due(LeaseRequest::new(NODE_A, t(60), t(400), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].delivery.trigger, Trigger::Manual);
    assert_eq!(recovered[0].delivery.attempts, 0);

    // Resend: an existing delivery is reset; a missing one is created.
    let resent = store.resend(&a.id, &m.id, &e2.id, t(70)).await.unwrap();
    assert_eq!(
        (resent.status, resent.trigger),
        (Status::Pending, Trigger::Manual)
    );
    let e3 = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:3/"))
        .await
        .unwrap();
    store.resend(&a.id, &m.id, &e3.id, t(70)).await.unwrap();
    assert_eq!(
        store
            .list_message_deliveries(&a.id, &m.id, &page(10))
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        store
            .resend(&a.id, &MessageId::generate(), &e3.id, t(70))
            .await,
        Err(StoreError::NotFound)
    ));

    assert_eq!(store.prune_idempotency_keys(t(11)).await.unwrap(), 1);
    let fresh = message(&a.id, None, t(71));
    assert!(matches!(
        store
            .insert_message(NewMessage {
                owner: NODE_A,
                message: fresh,
                deliveries: Deliveries::Known(vec![]),
                idempotency_key: Some("key-1".into()),
            })
            .await,
        Ok(Inserted::Created { .. })
    ));

    // Deleting the application removes everything of it.
    store.delete_app(&a.id).await.unwrap();
    assert!(
        store
            .get_message(&a.id, m.id.as_str())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .lease_due(LeaseRequest::new(NODE_A, t(10_000), t(10_001), 10))
            .await
            .unwrap()
            .due
            .is_empty()
    );
    let _ = Duration::zero();
}

/// `n` new endpoints of `app`, sorted by id: the order in which a poll's turns visit them.
pub async fn endpoints_in_turn_order(store: &dyn Store, app: &AppId, n: usize) -> Vec<EndpointId> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let e = store
            .create_endpoint(endpoint(app, "https://example.com/hook"))
            .await
            .unwrap();
        ids.push(e.id);
    }
    ids.sort_by(|x, y| x.as_str().cmp(y.as_str()));
    ids
}

/// Stores a message of `app` created `at`, with an unleased delivery (due `at`) to each
/// of `endpoints`.
pub async fn message_to_each(
    store: &dyn Store,
    app: &AppId,
    endpoints: &[EndpointId],
    at: DateTime<Utc>,
) -> MessageId {
    let m = message(app, None, at);
    let id = m.id.clone();
    store
        .insert_message(NewMessage {
            owner: NODE_A,
            message: m,
            deliveries: Deliveries::Known(
                endpoints
                    .iter()
                    .map(|e| NewDelivery {
                        id: DeliveryId::generate(),
                        endpoint_id: e.clone(),
                        leased_until: None,
                    })
                    .collect(),
            ),
            idempotency_key: None,
        })
        .await
        .unwrap();
    id
}

/// A poll's lease lets endpoints take turns: each gives at most its room, oldest due
/// first; an endpoint without room is passed over; the turns start after `after` and
/// wrap around, so the endpoints a full poll did not reach come first in the next.
async fn endpoints_take_turns_at_lease(store: &dyn Store) {
    let a = store.create_app(app(Some("turns"))).await.unwrap();
    let ids = endpoints_in_turn_order(store, &a.id, 3).await;
    // Four messages, each to every endpoint: four due deliveries per endpoint.
    let mut msgs = Vec::new();
    for i in 1..=4 {
        msgs.push(message_to_each(store, &a.id, &ids, t(i)).await);
    }
    let lease =
        |limit: usize, per_endpoint: usize, room: &[(usize, usize)], after: Option<usize>| {
            LeaseRequest {
                owner: NODE_A,
                now: t(100),
                leased_until: t(200),
                limit,
                per_endpoint,
                room: room.iter().map(|&(i, n)| (ids[i].clone(), n)).collect(),
                after: after.map(|i| ids[i].clone()),
            }
        };
    let leased = |due: Vec<crate::DueDelivery>| {
        due.iter()
            .map(|d| {
                let e = ids
                    .iter()
                    .position(|e| *e == d.delivery.endpoint_id)
                    .unwrap();
                let m = msgs.iter().position(|m| *m == d.delivery.msg_id).unwrap();
                assert_eq!(d.message.id, d.delivery.msg_id);
                (e, m)
            })
            .collect::<Vec<_>>()
    };

    // Two per endpoint; the third has no room.
    let due = store
        .lease_due(lease(10, 2, &[(2, 0)], None))
        .await
        .unwrap()
        .due;
    assert_eq!(leased(due), [(0, 0), (0, 1), (1, 0), (1, 1)]);
    // After the first endpoint: the second, the third (room for one), then the first;
    // the limit of 4 ends the turn there.
    let got = store
        .lease_due(lease(4, 2, &[(2, 1)], Some(0)))
        .await
        .unwrap();
    assert_eq!(got.resume_after.as_ref(), Some(&ids[0]));
    assert_eq!(leased(got.due), [(1, 2), (1, 3), (2, 0), (0, 2)]);
    // Whatever is left, after the first endpoint: the second has nothing left.
    let due = store
        .lease_due(lease(10, 10, &[], Some(0)))
        .await
        .unwrap()
        .due;
    assert_eq!(leased(due), [(2, 1), (2, 2), (2, 3), (0, 3)]);
    assert!(
        store
            .lease_due(lease(10, 10, &[], None))
            .await
            .unwrap()
            .due
            .is_empty()
    );
    // Once their leases have run out (at t(200)), all twelve are leased again, whatever
    // the endpoints' room: a process may still hold them.
    let expired = store
        .lease_due(LeaseRequest {
            room: ids.iter().map(|e| (e.clone(), 0)).collect(),
            ..LeaseRequest::new(NODE_A, t(200), t(300), 100)
        })
        .await
        .unwrap()
        .due;
    assert_eq!(expired.len(), 12);
    store.delete_app(&a.id).await.unwrap();
}

/// Entity snapshots: each message about an entity sees the payload of the one stored
/// before it, the deliveries are decided from that snapshot inside the same write, a
/// deletion drops the snapshot, and pruning drops old ones.
async fn entity_snapshots(store: &dyn Store) {
    let a = store.create_app(app(Some("entities"))).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    let about = |id: &str, kind: Option<&str>, deleted: bool, payload: &str, at: i64| {
        let mut m = message(&a.id, None, t(at));
        m.payload = Arc::from(payload);
        m.entity = Some(model::EntityRef {
            entity_type: kind.map(str::to_owned),
            id: id.to_owned(),
            deleted,
        });
        m
    };
    let insert = |m: Message| {
        let endpoint_id = e.id.clone();
        async move {
            let seen = Arc::new(std::sync::Mutex::new(None));
            let seen_in = seen.clone();
            let inserted = store
                .insert_message(NewMessage {
                    owner: NODE_A,
                    message: m.clone(),
                    // Deliver only when the payload differs from the snapshot.
                    deliveries: Deliveries::FromPrevious(Box::new(move |previous| {
                        *seen_in.lock().unwrap() = previous.map(str::to_owned);
                        if previous == Some(&*m.payload) {
                            Vec::new()
                        } else {
                            vec![NewDelivery {
                                id: DeliveryId::generate(),
                                endpoint_id: endpoint_id.clone(),
                                leased_until: None,
                            }]
                        }
                    })),
                    idempotency_key: None,
                })
                .await
                .unwrap();
            let Inserted::Created {
                previous,
                deliveries,
            } = inserted
            else {
                panic!("created")
            };
            let seen = seen.lock().unwrap().clone();
            assert_eq!(
                previous.as_deref(),
                seen.as_deref(),
                "decided on the same snapshot"
            );
            (previous.map(|p| p.to_string()), deliveries.len())
        }
    };

    assert_eq!(
        insert(about("c-1", None, false, r#"{"s":"new"}"#, 1)).await,
        (None, 1)
    );
    let m2 = about("c-1", None, false, r#"{"s":"arrived"}"#, 2);
    assert_eq!(insert(m2.clone()).await, (Some(r#"{"s":"new"}"#.into()), 1));
    // The same payload again: the decision sees it and creates no delivery.
    assert_eq!(
        insert(about("c-1", None, false, r#"{"s":"arrived"}"#, 3)).await,
        (Some(r#"{"s":"arrived"}"#.into()), 0)
    );
    // Another type with the same id is another entity.
    assert_eq!(
        insert(about("c-1", Some("order"), false, r#"{"s":"x"}"#, 4)).await,
        (None, 1)
    );
    // The previous snapshot is kept with the message.
    let stored = store
        .get_message(&a.id, m2.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.previous.as_deref(), Some(r#"{"s":"new"}"#));
    assert_eq!(stored.entity, m2.entity);

    // Deletion: delivered with its previous snapshot, then the snapshot is gone.
    assert_eq!(
        insert(about("c-1", None, true, r#"{"s":"gone"}"#, 5)).await,
        (Some(r#"{"s":"arrived"}"#.into()), 1)
    );
    assert_eq!(
        insert(about("c-1", None, false, r#"{"s":"new"}"#, 6)).await,
        (None, 1)
    );

    // Pruning drops snapshots not updated since the cut-off: c-1 was updated at 6, the
    // `order` entity at 4.
    assert_eq!(store.prune_entities(t(5)).await.unwrap(), 1);
    assert_eq!(
        insert(about("c-1", Some("order"), false, r#"{"s":"y"}"#, 7)).await,
        (None, 1)
    );
    assert_eq!(
        insert(about("c-1", None, false, r#"{"s":"z"}"#, 8)).await,
        (Some(r#"{"s":"new"}"#.into()), 1)
    );
    store.delete_app(&a.id).await.unwrap();
}

/// Application tokens: found by digest with their capabilities, listed per application,
/// revoked once, gone with their application.
async fn tokens(store: &dyn Store) {
    let a = store.create_app(app(Some("tokens"))).await.unwrap();
    let b = store.create_app(app(Some("tokens-b"))).await.unwrap();
    let token = |app: &AppId, digest: &str, at: i64| model::ApiToken {
        id: model::TokenId::generate(),
        app_id: app.clone(),
        digest: digest.to_owned(),
        created_at: t(at),
        expires_at: t(at + 3600),
        revoked_at: None,
        capabilities: model::Capabilities::ALL,
    };
    let first = store.create_token(token(&a.id, "d1", 1)).await.unwrap();
    let second = store.create_token(token(&a.id, "d2", 2)).await.unwrap();
    let other = store.create_token(token(&b.id, "d3", 3)).await.unwrap();
    assert!(matches!(
        store.create_token(token(&b.id, "d1", 4)).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.token_by_digest("d1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.token_by_digest("nope").await.unwrap(), None);
    let viewer = model::Capabilities::of([model::Capability::ViewBase]);
    let view_only = store
        .create_token(model::ApiToken {
            capabilities: viewer,
            ..token(&b.id, "d4", 4)
        })
        .await
        .unwrap();
    assert_eq!(
        store
            .token_by_digest("d4")
            .await
            .unwrap()
            .unwrap()
            .capabilities,
        viewer
    );
    let listed = store.list_tokens(&a.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].id, second.id, "newest first");

    // Revocation: only through the token's own application; the first time is kept.
    assert!(matches!(
        store.revoke_token(&b.id, &first.id, t(10)).await,
        Err(StoreError::NotFound)
    ));
    store.revoke_token(&a.id, &first.id, t(10)).await.unwrap();
    store.revoke_token(&a.id, &first.id, t(20)).await.unwrap();
    let revoked = store.token_by_digest("d1").await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(t(10)));
    assert!(!revoked.is_valid(t(11)));
    assert!(second.is_valid(t(3)));
    assert!(!second.is_valid(t(2 + 3600)), "expired");

    store.delete_app(&a.id).await.unwrap();
    assert_eq!(store.token_by_digest("d2").await.unwrap(), None);
    assert_eq!(store.token_by_digest("d3").await.unwrap(), Some(other));
    assert_eq!(store.token_by_digest("d4").await.unwrap(), Some(view_only));
    store.delete_app(&b.id).await.unwrap();
}

/// Endpoint health: the first failure time is kept until cleared; deleting the
/// application forgets its endpoints.
async fn failing_endpoints(store: &dyn Store) {
    let a = store.create_app(app(Some("failing"))).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    assert!(store.failing_endpoints().await.unwrap().is_empty());
    assert_eq!(
        store.mark_failing(&a.id, &e.id, t(10)).await.unwrap(),
        t(10)
    );
    assert_eq!(
        store.mark_failing(&a.id, &e.id, t(20)).await.unwrap(),
        t(10),
        "a streak already recorded keeps its start"
    );
    assert_eq!(
        store.failing_endpoints().await.unwrap(),
        vec![(e.id.clone(), t(10))],
        "the first failure counts"
    );
    store.clear_failing(&e.id).await.unwrap();
    assert!(store.failing_endpoints().await.unwrap().is_empty());
    store.mark_failing(&a.id, &e.id, t(25)).await.unwrap();
    assert!(store.disable_endpoint(&a.id, &e.id, t(26)).await.unwrap());
    assert!(
        store.failing_endpoints().await.unwrap().is_empty(),
        "disabling ends the streak"
    );
    store.mark_failing(&a.id, &e.id, t(30)).await.unwrap();
    store.delete_app(&a.id).await.unwrap();
    assert!(store.failing_endpoints().await.unwrap().is_empty());
}

/// Endpoints needing attention, across applications: failing ones by the start of their
/// streak, disabled ones by their last change, each kind up to the limit.
async fn needing_attention(store: &dyn Store) {
    let a = store.create_app(app(Some("attention-a"))).await.unwrap();
    let b = store.create_app(app(Some("attention-b"))).await.unwrap();
    let mut made = Vec::new();
    for owner in [&a.id, &a.id, &b.id, &b.id] {
        made.push(
            store
                .create_endpoint(endpoint(owner, "http://127.0.0.1:1/"))
                .await
                .unwrap(),
        );
    }
    store.mark_failing(&b.id, &made[2].id, t(5)).await.unwrap();
    store.mark_failing(&a.id, &made[0].id, t(7)).await.unwrap();
    assert!(
        store
            .disable_endpoint(&a.id, &made[1].id, t(8))
            .await
            .unwrap()
    );
    assert!(
        store
            .disable_endpoint(&b.id, &made[3].id, t(9))
            .await
            .unwrap()
    );
    let mine = |id: &EndpointId| made.iter().any(|e| &e.id == id);
    let seen = store.endpoints_needing_attention(100).await.unwrap();
    let failing: Vec<_> = seen
        .failing
        .iter()
        .filter(|(e, _)| mine(&e.id))
        .map(|(e, since)| (e.id.clone(), e.app_id.clone(), *since))
        .collect();
    assert_eq!(
        failing,
        vec![
            (made[2].id.clone(), b.id.clone(), t(5)),
            (made[0].id.clone(), a.id.clone(), t(7)),
        ],
        "oldest streak first, with each endpoint's application"
    );
    let disabled: Vec<_> = seen
        .disabled
        .iter()
        .filter(|e| mine(&e.id))
        .map(|e| (e.id.clone(), e.disabled))
        .collect();
    assert_eq!(
        disabled,
        vec![(made[3].id.clone(), true), (made[1].id.clone(), true)],
        "most recently disabled first"
    );
    let one = store.endpoints_needing_attention(1).await.unwrap();
    assert_eq!((one.failing.len(), one.disabled.len()), (1, 1));
    store.delete_app(&a.id).await.unwrap();
    store.delete_app(&b.id).await.unwrap();
}

/// An app with one endpoint and `n` messages to it, each with one delivery due at t(10),
/// not leased.
/// The figures `/metrics` shows count pending and waiting deliveries (measured as the
/// change the new ones make: earlier cases left deliveries behind).
async fn figures(store: &dyn Store) {
    let before = store.figures(t(100)).await.unwrap();
    assert!(before.size_bytes > 0);
    due_deliveries(store, 3).await;
    let after = store.figures(t(100)).await.unwrap();
    assert_eq!(after.pending, before.pending + 3);
    assert_eq!(after.waiting_due, before.waiting_due + 3);
    assert!(after.oldest_waiting_due.is_some_and(|d| d <= t(10)));
    // Not yet due at an earlier `now`.
    let earlier = store.figures(t(5)).await.unwrap();
    assert_eq!(earlier.pending, after.pending);
    assert!(earlier.waiting_due < after.waiting_due);
}

/// An expunged payload is `{}`, its pending deliveries fail, and it is never sent again;
/// an attempt's response can be emptied.
async fn expunged_content(store: &dyn Store) {
    let (app_id, e, messages) = due_deliveries(store, 2).await;
    let (gone, kept) = (&messages[0], &messages[1]);
    // An attempt of the kept one, to empty its response.
    let due = store
        .lease_due(LeaseRequest::new(NODE_A, t(10), t(40), 1000))
        .await
        .unwrap()
        .due;
    let kept_due = due
        .iter()
        .find(|d| d.delivery.msg_id == kept.id)
        .expect("the kept message's delivery is due");
    let record = record(kept_due, Status::Fail, t(11));
    let attempt_id = record.attempt.id.clone();
    store.record_attempts(NODE_A, vec![record]).await.unwrap();

    store
        .expunge_content(&app_id, &gone.id, t(50))
        .await
        .unwrap();
    let got = store
        .get_message(&app_id, gone.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&*got.payload, "{}");
    let still = store
        .get_message(&app_id, kept.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.payload, kept.payload, "only that message");
    assert!(matches!(
        store.resend(&app_id, &gone.id, &e.id, t(60)).await,
        Err(StoreError::Conflict(_))
    ));
    // Its failed delivery is not recovered; the kept one's is (it failed too, and is due
    // again at its retry, so recover makes it due now).
    assert_eq!(
        store
            .recover(&app_id, &e.id, t(0), None, t(70))
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        store
            .expunge_content(&app_id, &MessageId::generate(), t(50))
            .await,
        Err(StoreError::NotFound)
    ));

    store
        .expunge_response(&app_id, &kept.id, &attempt_id)
        .await
        .unwrap();
    let attempt = store
        .get_attempt(&app_id, &kept.id, &attempt_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempt.response, "");
    assert!(matches!(
        store.expunge_response(&app_id, &gone.id, &attempt_id).await,
        Err(StoreError::NotFound)
    ));
}

async fn due_deliveries(store: &dyn Store, n: usize) -> (AppId, Endpoint, Vec<Message>) {
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    let mut messages = Vec::new();
    for _ in 0..n {
        let m = message(&a.id, None, t(10));
        store
            .insert_message(NewMessage {
                message: m.clone(),
                owner: NODE_A,
                deliveries: Deliveries::Known(vec![NewDelivery {
                    id: DeliveryId::generate(),
                    endpoint_id: e.id.clone(),
                    leased_until: None,
                }]),
                idempotency_key: None,
            })
            .await
            .unwrap();
        messages.push(m);
    }
    (a.id, e, messages)
}

fn record(due: &DueDelivery, status: Status, at: DateTime<Utc>) -> AttemptRecord {
    let done = status == Status::Success;
    AttemptRecord {
        attempt: attempt_for(due, status, at),
        update: DeliveryUpdate {
            status: if done {
                Status::Success
            } else {
                Status::Pending
            },
            attempts: due.delivery.attempts + 1,
            next_attempt_at: (!done).then(|| at + Duration::seconds(5)),
        },
        generation: due.generation,
    }
}

/// A lease belongs to one node and one generation: only that pair may record, release or
/// renew it; a live lease is never leased again; one that ran out is taken over under a
/// new generation, and its old holder's late writes are refused, leaving the new holder's
/// state as it is.
async fn leases_are_owned_and_fenced(store: &dyn Store) {
    let (app_id, e, messages) = due_deliveries(store, 1).await;
    let m = &messages[0];
    let lease = |node, now, until| LeaseRequest::new(node, t(now), t(until), 10);
    let a = store.lease_due(lease(NODE_A, 10, 40)).await.unwrap().due;
    assert_eq!(a.len(), 1);
    assert!(
        store
            .lease_due(lease(NODE_B, 20, 80))
            .await
            .unwrap()
            .due
            .is_empty(),
        "a live lease is never leased again"
    );

    // Another node cannot write under A's lease.
    let refused = vec![0];
    assert_eq!(
        store
            .record_attempts(NODE_B, vec![record(&a[0], Status::Success, t(21))])
            .await
            .unwrap(),
        refused
    );
    assert_eq!(
        store
            .release(NODE_B, &[leased(&a[0])], t(21))
            .await
            .unwrap(),
        refused
    );
    assert_eq!(
        store.renew(NODE_B, &[leased(&a[0])], t(99)).await.unwrap(),
        refused
    );

    // A renews its lease: no one takes it at the old end.
    assert!(
        store
            .renew(NODE_A, &[leased(&a[0])], t(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .lease_due(lease(NODE_B, 50, 110))
            .await
            .unwrap()
            .due
            .is_empty()
    );

    // A freezes; its lease runs out and B takes the delivery over, under a new generation.
    let b = store.lease_due(lease(NODE_B, 60, 120)).await.unwrap().due;
    assert_eq!(b.len(), 1);
    assert!(b[0].generation > a[0].generation);
    assert_eq!(
        store
            .record_attempts(NODE_B, vec![record(&b[0], Status::Fail, t(61))])
            .await
            .unwrap(),
        Vec::<usize>::new()
    );

    // A wakes up: its record, release and renew are refused and change nothing.
    assert_eq!(
        store
            .record_attempts(NODE_A, vec![record(&a[0], Status::Success, t(62))])
            .await
            .unwrap(),
        refused
    );
    assert_eq!(
        store
            .release(NODE_A, &[leased(&a[0])], t(62))
            .await
            .unwrap(),
        refused
    );
    assert_eq!(
        store.renew(NODE_A, &[leased(&a[0])], t(500)).await.unwrap(),
        refused
    );
    let deliveries = store
        .list_message_deliveries(&app_id, &m.id, &page(10))
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(
        (
            deliveries[0].status,
            deliveries[0].attempts,
            deliveries[0].next_attempt_at
        ),
        (Status::Pending, 1, Some(t(66))),
        "the live node's state stands"
    );
    let attempts = store
        .list_attempts(&app_id, &AttemptFilter::default(), &page(10))
        .await
        .unwrap();
    let attempts: Vec<_> = attempts
        .iter()
        .filter(|x| x.endpoint_id == e.id)
        .map(|x| (x.status, x.created_at))
        .collect();
    assert_eq!(
        attempts,
        vec![(Status::Fail, t(61))],
        "only B's attempt is recorded"
    );

    // The same node is fenced too: its own earlier generation is stale after a new lease.
    let again = store.lease_due(lease(NODE_B, 66, 70)).await.unwrap().due;
    assert_eq!(again.len(), 1);
    let newer = store.lease_due(lease(NODE_B, 70, 130)).await.unwrap().due;
    assert_eq!(newer.len(), 1);
    assert_eq!(
        store
            .record_attempts(NODE_B, vec![record(&again[0], Status::Success, t(71))])
            .await
            .unwrap(),
        refused
    );
    assert!(
        store
            .record_attempts(NODE_B, vec![record(&newer[0], Status::Success, t(72))])
            .await
            .unwrap()
            .is_empty()
    );
    // Recorded: no longer leased, so nothing more can be written under any lease.
    assert_eq!(
        store
            .renew(NODE_B, &[leased(&newer[0])], t(500))
            .await
            .unwrap(),
        refused
    );
    store.delete_app(&app_id).await.unwrap();
}

/// Two nodes polling one store at once never lease the same delivery.
async fn two_nodes_never_hold_one_delivery(store: Arc<dyn Store>) {
    let (app_id, _, messages) = due_deliveries(&*store, 60).await;
    let poll = |node: NodeId| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..30 {
                let due = store
                    .lease_due(LeaseRequest::new(node, t(20), t(100), 3))
                    .await
                    .unwrap()
                    .due;
                mine.extend(due.into_iter().map(|d| d.delivery.msg_id));
                tokio::task::yield_now().await;
            }
            mine
        })
    };
    let (a, b) = (poll(NODE_A), poll(NODE_B));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let mut all: Vec<_> = a
        .iter()
        .chain(&b)
        .map(|id| id.as_str().to_owned())
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "a delivery was leased by both nodes");
    assert_eq!(
        all.len(),
        messages.len(),
        "every due delivery was leased once"
    );
    store.delete_app(&app_id).await.unwrap();
}

/// A failure streak is one per endpoint, whichever node sees the failures, and a success
/// any node recorded is visible to the others.
async fn failure_streaks_are_shared(store: &dyn Store) {
    let (app_id, e, _) = due_deliveries(store, 2).await;
    assert_eq!(
        store.mark_failing(&app_id, &e.id, t(10)).await.unwrap(),
        t(10)
    );
    assert_eq!(
        store.mark_failing(&app_id, &e.id, t(20)).await.unwrap(),
        t(10),
        "the second node joins the streak the first one started"
    );
    assert_eq!(store.success_since(&e.id, t(10)).await.unwrap(), None);
    let due = store
        .lease_due(LeaseRequest::new(NODE_B, t(20), t(80), 10))
        .await
        .unwrap()
        .due;
    assert_eq!(due.len(), 2);
    store
        .record_attempts(
            NODE_B,
            vec![
                record(&due[0], Status::Success, t(25)),
                record(&due[1], Status::Fail, t(28)),
            ],
        )
        .await
        .unwrap();
    let again = store
        .lease_due(LeaseRequest::new(NODE_A, t(40), t(90), 10))
        .await
        .unwrap()
        .due;
    store
        .record_attempts(NODE_A, vec![record(&again[0], Status::Fail, t(41))])
        .await
        .unwrap();
    assert_eq!(
        store.success_since(&e.id, t(10)).await.unwrap(),
        Some(t(25))
    );
    assert_eq!(store.success_since(&e.id, t(26)).await.unwrap(), None);
    assert_eq!(
        store.failure_after(&e.id, t(25)).await.unwrap(),
        Some(t(28)),
        "the streak began again with the first failure after the success"
    );
    assert_eq!(
        store.failure_after(&e.id, t(28)).await.unwrap(),
        Some(t(41))
    );
    assert_eq!(store.failure_after(&e.id, t(41)).await.unwrap(), None);
    store.delete_app(&app_id).await.unwrap();
}

/// Starts handed out for one throttled endpoint are spaced by the rate, whichever node
/// asks; another endpoint is not held up.
async fn throttles_are_shared(store: &dyn Store) {
    let (e1, e2) = (EndpointId::generate(), EndpointId::generate());
    let ms = |n: i64| t(1000) + Duration::milliseconds(n);
    let mut starts = Vec::new();
    for _ in 0..4 {
        starts.push(store.throttle_slot(&e1, 4, t(1000)).await.unwrap());
    }
    assert_eq!(starts, vec![ms(0), ms(250), ms(500), ms(750)]);
    assert_eq!(store.throttle_slot(&e2, 4, t(1000)).await.unwrap(), ms(0));
    assert_eq!(
        store.throttle_slot(&e1, 4, t(1003)).await.unwrap(),
        t(1003),
        "an idle endpoint starts at once"
    );
}

/// Two editors of one endpoint never lose each other's change silently.
async fn endpoint_updates_are_compare_and_set(store: &dyn Store) {
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    let mut first = e.clone();
    first.description = "first".into();
    let mut second = e.clone();
    second.description = "second".into();
    let first = store.update_endpoint(first, e.revision).await.unwrap();
    assert!(first.revision > e.revision);
    assert!(matches!(
        store.update_endpoint(second.clone(), e.revision).await,
        Err(StoreError::Changed)
    ));
    let stored = store
        .get_endpoint(&a.id, e.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.description, "first");
    assert_eq!(stored.revision, first.revision);
    // Disabling is a write too: an editor who read before it must read again.
    assert!(store.disable_endpoint(&a.id, &e.id, t(5)).await.unwrap());
    assert!(matches!(
        store.update_endpoint(second.clone(), first.revision).await,
        Err(StoreError::Changed)
    ));
    let stored = store
        .get_endpoint(&a.id, e.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.disabled);
    assert!(matches!(
        store
            .update_endpoint(endpoint(&a.id, "http://127.0.0.1:9/"), 1)
            .await,
        Err(StoreError::NotFound)
    ));
    store.delete_app(&a.id).await.unwrap();
}

/// The first digest proposed is the one every later caller gets.
async fn admin_token_digest(store: &dyn Store) {
    let first = "a".repeat(64);
    assert_eq!(store.admin_token_digest(&first).await.unwrap(), first);
    assert_eq!(
        store.admin_token_digest(&"b".repeat(64)).await.unwrap(),
        first
    );
}

/// Retention removes an application's messages older than the cutoff with their
/// deliveries and attempts, and keeps those still needed: a delivery pending, an entity's
/// snapshot, the previous snapshot of a pending message. Batches are bounded, and an
/// idempotency key whose message is gone is free again.
async fn retention(store: &dyn Store) {
    let a = store.create_app(app(None)).await.unwrap();
    let e = store
        .create_endpoint(endpoint(&a.id, "http://127.0.0.1:1/"))
        .await
        .unwrap();
    // A message accepted at `t(at)` (its id's time), about `entity`, with a delivery or
    // not, its payload to expire at `expires` if given.
    let insert = |at: i64,
                  entity: Option<&str>,
                  deliver: bool,
                  key: Option<&str>,
                  expires: Option<DateTime<Utc>>| {
        let mut m = message(&a.id, None, t(at));
        m.id = MessageId::floor_at(t(at));
        m.payload_expires_at = expires;
        m.entity = entity.map(|id| model::EntityRef {
            entity_type: None,
            id: id.to_owned(),
            deleted: false,
        });
        let deliveries = if deliver {
            vec![NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: e.id.clone(),
                leased_until: None,
            }]
        } else {
            Vec::new()
        };
        let new = NewMessage {
            message: m.clone(),
            owner: NODE_A,
            deliveries: Deliveries::Known(deliveries),
            idempotency_key: key.map(str::to_owned),
        };
        async move {
            let inserted = store.insert_message(new).await.unwrap();
            assert!(matches!(inserted, Inserted::Created { .. }), "{inserted:?}");
            m
        }
    };
    // Attempts the deliveries of `messages` once: `Success`, or `Fail` for good.
    let finish = |messages: Vec<MessageId>, status: Status, at: i64| async move {
        let due = store
            .lease_due(LeaseRequest::new(NODE_A, t(at), t(at + 30), 10_000))
            .await
            .unwrap()
            .due;
        let records: Vec<_> = due
            .iter()
            .filter(|d| messages.contains(&d.delivery.msg_id))
            .map(|d| AttemptRecord {
                attempt: attempt_for(d, status, t(at)),
                update: DeliveryUpdate {
                    status,
                    attempts: d.delivery.attempts + 1,
                    next_attempt_at: None,
                },
                generation: d.generation,
            })
            .collect();
        assert_eq!(records.len(), messages.len(), "every delivery was due");
        store.record_attempts(NODE_A, records).await.unwrap();
    };
    let purge = |before: i64, after: Option<MessageId>, max_messages: usize, max_rows: usize| {
        store.purge_messages(PurgeRequest {
            app: a.id.clone(),
            before: t(before),
            after,
            max_messages,
            max_rows,
        })
    };
    let app_id = &a.id;
    let exists = |m: MessageId| async move {
        store
            .get_message(app_id, m.as_str())
            .await
            .unwrap()
            .is_some()
    };

    let delivered = insert(1, None, true, Some("key-1"), None).await;
    let pending = insert(2, None, true, None, None).await;
    let failed = insert(3, None, true, None, None).await;
    let unsubscribed = insert(4, None, false, None, None).await;
    // Entity x: its first message is the previous snapshot of the second, still pending.
    let x1 = insert(5, Some("x"), true, None, None).await;
    let x2 = insert(6, Some("x"), true, None, None).await;
    // Entity y: both delivered; the second is the snapshot.
    let y1 = insert(7, Some("y"), true, None, None).await;
    let y2 = insert(8, Some("y"), true, None, None).await;
    let recent = insert(60, None, true, None, None).await;
    finish(
        vec![
            delivered.id.clone(),
            x1.id.clone(),
            y1.id.clone(),
            y2.id.clone(),
            recent.id.clone(),
        ],
        Status::Success,
        100,
    )
    .await;
    finish(vec![failed.id.clone()], Status::Fail, 200).await;

    let purged = purge(10, None, 100, 10_000).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            messages: 4,
            deliveries: 3,
            attempts: 3,
            kept: 4,
            next: None,
            busy: false,
        }
    );
    for (m, kept) in [
        (&delivered, false),
        (&pending, true),
        (&failed, false),
        (&unsubscribed, false),
        (&x1, true),
        (&x2, true),
        (&y1, false),
        (&y2, true),
        (&recent, true),
    ] {
        assert_eq!(exists(m.id.clone()).await, kept, "{}", m.id.as_str());
    }
    let attempts = store
        .list_attempts(
            &a.id,
            &AttemptFilter {
                msg_id: Some(delivered.id.clone()),
                ..AttemptFilter::default()
            },
            &page(10),
        )
        .await
        .unwrap();
    assert!(attempts.is_empty(), "its attempts went with it");
    assert!(
        store
            .list_message_deliveries(&a.id, &delivered.id, &page(10))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_endpoint(&a.id, e.id.as_str())
            .await
            .unwrap()
            .map(|e| e.id),
        Some(e.id.clone()),
        "endpoints stay"
    );

    // Once the pending ones finish, they and x's previous snapshot go; snapshots stay.
    finish(
        vec![pending.id.clone(), x2.id.clone()],
        Status::Success,
        300,
    )
    .await;
    let purged = purge(10, None, 100, 10_000).await.unwrap();
    assert_eq!((purged.messages, purged.kept), (2, 2));
    assert!(!exists(pending.id.clone()).await && !exists(x1.id.clone()).await);
    assert!(exists(x2.id.clone()).await && exists(y2.id.clone()).await);

    // The idempotency key of a message that is gone is free again.
    let again = insert(30, None, false, Some("key-1"), None).await;
    assert!(exists(again.id).await);

    // Batches are bounded by messages and by rows, and say where the next one starts.
    let mut old = Vec::new();
    for at in 40..45 {
        old.push(insert(at, None, true, None, None).await.id);
    }
    finish(old.clone(), Status::Success, 400).await;
    // The first four: x's and y's snapshots (kept), the keyed one at 30, the one at 40.
    let first = purge(50, None, 4, 10_000).await.unwrap();
    assert_eq!((first.messages, first.kept), (2, 2), "{first:?}");
    assert!(first.next.is_some());
    let second = purge(50, first.next, 100, 2).await.unwrap();
    assert_eq!(
        (second.messages, second.deliveries, second.attempts),
        (1, 1, 1),
        "one message's rows reach the bound: {second:?}"
    );
    let mut after = second.next;
    let mut rest = 0;
    while after.is_some() {
        let batch = purge(50, after, 100, 10_000).await.unwrap();
        rest += batch.messages;
        after = batch.next;
    }
    assert_eq!(rest, 3);
    for id in old {
        assert!(!exists(id).await);
    }
    assert!(exists(recent.id.clone()).await, "within retention");

    // A publisher's retention of the payload (Svix's payloadRetentionPeriod): expunged at
    // its time once nothing pending needs it; an entity's snapshot keeps its payload.
    let done = insert(900, None, true, None, Some(t(1000))).await;
    let waiting = insert(901, None, true, None, Some(t(1000))).await;
    let snapshot = insert(902, Some("z"), false, None, Some(t(1000))).await;
    let plain = insert(903, None, false, None, Some(t(1000))).await;
    finish(vec![done.id.clone()], Status::Success, 950).await;
    let payload = |m: MessageId| async move {
        store
            .get_message(app_id, m.as_str())
            .await
            .unwrap()
            .expect("still there")
            .payload
            .to_string()
    };
    assert_eq!(
        store.expire_payloads(t(999), 10).await.unwrap(),
        0,
        "not yet"
    );
    assert_eq!(
        store.expire_payloads(t(1000), 1).await.unwrap(),
        1,
        "bounded"
    );
    assert_eq!(store.expire_payloads(t(1000), 10).await.unwrap(), 1);
    assert_eq!(store.expire_payloads(t(1000), 10).await.unwrap(), 0, "once");
    assert_eq!(payload(done.id.clone()).await, "{}");
    assert_eq!(payload(plain.id.clone()).await, "{}");
    assert_eq!(
        payload(waiting.id.clone()).await,
        &*waiting.payload,
        "pending"
    );
    assert_eq!(
        payload(snapshot.id.clone()).await,
        &*snapshot.payload,
        "a snapshot"
    );
    assert!(matches!(
        store.resend(&a.id, &done.id, &e.id, t(1001)).await,
        Err(StoreError::Conflict(_))
    ));
}
