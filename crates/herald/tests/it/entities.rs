//! Entity state: messages that name an `entityId` are compared with the entity's
//! previous snapshot. "New status", "status transition" and "case updated" (diff)
//! subscriptions on a case published five times; deletion; the snapshot chain under 16
//! concurrent publishers and across a restart.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{Herald, Received, Receiver, WAIT, verify};

fn case(key: &str, order: Value, product: Value, consumer: Option<Value>) -> Value {
    let mut case = json!({
        "guid": "989d0f73-f87a-4dfe-98eb-554a44233cef",
        "key": key,
        "orderData": order,
        "productData": product,
    });
    if let Some(consumer) = consumer {
        case["consumer"] = consumer;
    }
    case
}

#[tokio::test]
async fn status_and_diff_subscriptions_follow_the_case() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("repairs").await;
    // Fires whenever the status differs from the previous one (or there was none).
    herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/new-status"), "filter": {"$changed": "payload.key"}}),
        )
        .await;
    // Only `arrived` → `final`, carrying the previous status as `prevKey`.
    herald
        .endpoint(
            &app,
            json!({
                "url": receiver.url("/transition"),
                "filter": {"previous.key": "arrived", "payload.key": "final"},
                "transform": {"set": {"payload.prevKey": {"from": "previous.key"}}},
            }),
        )
        .await;
    // "Case updated": what changed, plus the guid.
    let diff_ep = herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/diff"), "payload": "diff", "diffKeep": ["guid"]}),
        )
        .await;
    assert_eq!(diff_ep["payload"], "diff");
    assert_eq!(diff_ep["diffKeep"], json!(["guid"]));
    let diff_secret = herald.secret(&app, &diff_ep).await;

    let order = json!({"refNo": "R1", "serial": "S1"});
    let product = json!({"model": "Cybertruck", "accessory": ["1180"]});
    let consumer = json!({"firstName": "Elon", "lastName": "Musk"});
    let steps = [
        // new: the first snapshot
        case(
            "new",
            order.clone(),
            product.clone(),
            Some(consumer.clone()),
        ),
        // arrived: the serial is removed
        case(
            "arrived",
            json!({"refNo": "R1"}),
            product.clone(),
            Some(consumer.clone()),
        ),
        // arrived again, nothing else changed
        case(
            "arrived",
            json!({"refNo": "R1"}),
            product.clone(),
            Some(consumer.clone()),
        ),
        // final: an accessory added (the array is sent whole)
        case(
            "final",
            json!({"refNo": "R1"}),
            json!({"model": "Cybertruck", "accessory": ["1180", "1190"]}),
            Some(consumer.clone()),
        ),
        // final again; the consumer is removed
        case(
            "final",
            json!({"refNo": "R1"}),
            json!({"model": "Cybertruck", "accessory": ["1180", "1190"]}),
            None,
        ),
    ];
    let mut published = Vec::new();
    for payload in &steps {
        let msg = herald
            .publish(
                &app,
                json!({"eventType": "case.updated", "entityId": payload["guid"], "entityType": "case", "payload": payload}),
            )
            .await;
        published.push(msg["id"].as_str().unwrap().to_owned());
    }
    // Deliveries to one endpoint may arrive in any order; put them in publish order.
    let publish_order = |r: &Received| {
        published
            .iter()
            .position(|id| id == r.header("webhook-id"))
            .expect("a published message")
    };

    let mut statuses = receiver.wait_for("/new-status", 3, WAIT).await;
    statuses.sort_by_key(publish_order);
    let transitions = receiver.wait_for("/transition", 1, WAIT).await;
    let mut diffs = receiver.wait_for("/diff", 4, WAIT).await;
    diffs.sort_by_key(publish_order);
    // Deliveries are decided at publish; a pause shows nothing more arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received_on("/new-status").len(), 3);
    assert_eq!(receiver.received_on("/transition").len(), 1);
    assert_eq!(receiver.received_on("/diff").len(), 4);

    let keys: Vec<Value> = statuses.iter().map(|r| r.json()["key"].clone()).collect();
    assert_eq!(keys, [json!("new"), json!("arrived"), json!("final")]);
    let transition = transitions[0].json();
    assert_eq!(
        (&transition["prevKey"], &transition["key"]),
        (&json!("arrived"), &json!("final"))
    );
    assert_eq!(transition["productData"], steps[3]["productData"]);

    let guid = "989d0f73-f87a-4dfe-98eb-554a44233cef";
    let bodies: Vec<Value> = diffs.iter().map(|r| r.json()).collect();
    assert_eq!(
        bodies[0], steps[0],
        "no previous snapshot: the full payload"
    );
    assert_eq!(
        bodies[1],
        json!({"guid": guid, "key": "arrived", "orderData": {"serial": null}})
    );
    assert_eq!(
        bodies[2],
        json!({"guid": guid, "key": "final", "productData": {"accessory": ["1180", "1190"]}})
    );
    assert_eq!(bodies[3], json!({"guid": guid, "consumer": null}));
    assert!(
        diffs.iter().all(|r| verify(r, &diff_secret)),
        "the signature covers the diff that was sent"
    );

    // The entity is deleted: that message still sees the previous snapshot, and the next
    // one about the same guid starts afresh.
    let gone = case(
        "closed",
        json!({"refNo": "R1"}),
        steps[4]["productData"].clone(),
        None,
    );
    let deleted = herald
        .publish(
            &app,
            json!({"eventType": "case.deleted", "entityId": guid, "entityType": "case", "entityDeleted": true, "payload": gone}),
        )
        .await;
    let again = case("new", order.clone(), product.clone(), None);
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "entityId": guid, "entityType": "case", "payload": again}),
        )
        .await;
    assert_eq!(msg["entityId"], guid);
    let id_of = |m: &Value| m["id"].as_str().unwrap().to_owned();
    let (deleted, again_id) = (id_of(&deleted), id_of(&msg));
    let diffs = receiver.wait_for("/diff", 6, WAIT).await;
    let diff_of = |id: &str| {
        diffs
            .iter()
            .find(|r| r.header("webhook-id") == id)
            .expect("delivered")
            .json()
    };
    assert_eq!(diff_of(&deleted), json!({"guid": guid, "key": "closed"}));
    assert_eq!(
        diff_of(&again_id),
        again,
        "after deletion: the full payload"
    );
    let statuses = receiver.wait_for("/new-status", 5, WAIT).await;
    let again_status = statuses
        .iter()
        .find(|r| r.header("webhook-id") == again_id)
        .expect("delivered");
    assert_eq!(again_status.json()["key"], "new");
}

#[tokio::test]
async fn filter_test_shows_previous_changed_and_diff() {
    let herald = Herald::start().await;
    let app = herald.app("preview").await;
    let ep = herald
        .endpoint(
            &app,
            json!({
                "url": "http://127.0.0.1:9/unused",
                "payload": "diff",
                "diffKeep": ["guid"],
                "transform": {"map": {"payload.key": {"repaired": "final"}}, "set": {"payload.prevKey": {"from": "previous.key"}}},
                "filter": {"$changed": "payload.key"},
            }),
        )
        .await;
    let path = format!(
        "/api/v1/app/{app}/endpoint/{}/filter/test",
        ep["id"].as_str().unwrap()
    );
    let out = herald
        .post(
            &path,
            json!({
                "eventType": "case.updated",
                "payload": {"guid": "g", "key": "repaired", "n": 1},
                "previous": {"guid": "g", "key": "arrived", "n": 1},
            }),
        )
        .await;
    assert_eq!(out["matches"], true, "{out}");
    assert_eq!(
        out["body"],
        json!({"guid": "g", "key": "final", "prevKey": "arrived"})
    );
    // The previous snapshot is mapped too, so `repaired` after `final` is no change.
    let out = herald
        .post(
            &path,
            json!({
                "eventType": "case.updated",
                "payload": {"guid": "g", "key": "repaired"},
                "previous": {"guid": "g", "key": "final"},
            }),
        )
        .await;
    assert_eq!(out["matches"], false, "{out}");
    assert_eq!(out["event"]["previous"]["key"], "final");

    // Bad entity input is refused with the field named.
    for (body, loc) in [
        (
            json!({"eventType": "a", "payload": {}, "entityDeleted": true}),
            "entityDeleted",
        ),
        (
            json!({"eventType": "a", "payload": {}, "entityId": ""}),
            "entityId",
        ),
        (
            json!({"eventType": "a", "payload": {}, "entityId": "x", "entityType": "no spaces"}),
            "entityType",
        ),
    ] {
        let (status, out) = herald
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/app/{app}/msg"),
                Some(body),
            )
            .await;
        assert_eq!(status, 422, "{out}");
        assert_eq!(out["detail"][0]["loc"], json!(["body", loc]), "{out}");
    }
    for (body, loc) in [
        (
            json!({"url": "http://127.0.0.1:9/", "diffKeep": ["guid"]}),
            "diffKeep",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "payload": "diff", "diffKeep": ["a..b"]}),
            "diffKeep",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "filter": {"$changed": "key"}}),
            "filter",
        ),
        (
            json!({"url": "http://127.0.0.1:9/", "payload": "partial"}),
            "payload",
        ),
    ] {
        let (status, out) = herald
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/app/{app}/endpoint"),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {out}");
        assert_eq!(out["detail"][0]["loc"][1], loc, "{body}: {out}");
    }
}

/// Publishes `from..to` as updates to one entity, 16 at a time.
/// Checks that the deliveries `got` (each body an update with its `key` and the previous
/// update's `prevKey`) form one chain through every distinct delivery; returns how many
/// distinct deliveries there were, and how many repeats.
pub(crate) fn one_chain(got: &[Received]) -> (usize, usize) {
    let mut seen = HashSet::new();
    let mut next: HashMap<Option<String>, String> = HashMap::new();
    for r in got {
        if !seen.insert(r.header("webhook-id").to_owned()) {
            continue;
        }
        let body = r.json();
        let key = body["key"].as_str().unwrap().to_owned();
        let prev = body["prevKey"].as_str().map(str::to_owned);
        if let Some(other) = next.insert(prev.clone(), key.clone()) {
            panic!("{other} and {key} both claim to follow {prev:?}");
        }
    }
    // Following the chain from the first update visits every update once.
    let mut at = None;
    let mut visited = 0;
    while let Some(key) = next.get(&at) {
        visited += 1;
        at = Some(key.clone());
    }
    assert_eq!(visited, seen.len(), "one chain through all the updates");
    (seen.len(), got.len() - seen.len())
}

pub(crate) async fn publish_updates(herald: &Herald, app: &str, from: usize, to: usize) {
    futures::stream::iter(from..to)
        .map(|i| {
            herald.publish(
                app,
                json!({"eventType": "item.updated", "entityId": "item-1", "payload": {"key": format!("v{i}")}}),
            )
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn concurrent_updates_form_one_chain_across_a_restart() {
    let mut herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("chain").await;
    herald
        .endpoint(
            &app,
            json!({
                "url": receiver.url("/chain"),
                "transform": {"set": {"payload.prevKey": {"from": "previous.key"}}},
            }),
        )
        .await;
    publish_updates(&herald, &app, 0, 500).await;
    assert!(herald.terminate(), "SIGTERM exits with success");
    let data_dir = herald.data_dir.clone();
    let restarted = Herald::start_in(&data_dir, &[]).await;
    publish_updates(&restarted, &app, 500, 1000).await;

    // At least once: a restart may repeat a delivery, with the same webhook-id, so wait
    // for 1,000 distinct ones.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let got = loop {
        let got = receiver.received_on("/chain");
        let distinct: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        if distinct.len() >= 1000 || tokio::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (distinct, duplicates) = one_chain(&got);
    assert_eq!(distinct, 1000, "every update delivered");
    eprintln!("chain: 1000 updates, {duplicates} duplicate deliveries after the restart");
    drop(restarted);
    drop(herald);
}
