//! Retention through the binary: what is past it goes, with its attempts, and what a
//! pending delivery still needs stays until the delivery is done; under a steady load a
//! short retention keeps the store's size flat.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::metrics::{scrape_until, value};
use crate::support::{Herald, Receiver, TOKEN, WAIT, http_client};

/// Waits until GET `path` answers `status`.
async fn until_status(herald: &Herald, path: &str, status: StatusCode) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (got, body) = herald.call(Method::GET, path, None).await;
        if got == status {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never answered {status}: {got} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn id(value: &Value) -> &str {
    value["id"].as_str().unwrap()
}

#[tokio::test]
async fn retention_removes_what_is_old_and_keeps_what_is_pending() {
    let herald = Herald::start_with(&["--retention", "2s", "--retry-schedule", "1h"]).await;
    let up = Receiver::start().await;
    let down = Receiver::start().await;
    down.set_status(503);
    let app = herald.app("kept-a-while").await;
    herald
        .endpoint(&app, json!({"url": up.url("/up"), "filterTypes": ["a.up"]}))
        .await;
    let failing = herald
        .endpoint(
            &app,
            json!({"url": down.url("/down"), "filterTypes": ["a.down"]}),
        )
        .await;

    let pending = herald
        .publish(&app, json!({"eventType": "a.down", "payload": {"n": 1}}))
        .await;
    down.wait_for("/down", 1, WAIT).await;
    let delivered = herald
        .publish(&app, json!({"eventType": "a.up", "payload": {"n": 2}}))
        .await;
    up.wait_for("/up", 1, WAIT).await;
    let msg = |m: &Value| format!("/api/v1/app/{app}/msg/{}", id(m));

    // The delivered message goes, and its attempts with it; it was accepted after the
    // pending one, so the pending one was judged and kept.
    until_status(&herald, &msg(&delivered), StatusCode::NOT_FOUND).await;
    let attempts = format!("/api/v1/app/{app}/attempt/endpoint/{}", id(&failing));
    let listed = herald.get(&attempts).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let kept = herald.get(&msg(&pending)).await;
    assert_eq!(kept["payload"], json!({"n": 1}));
    let metrics = scrape_until(&herald, |text| {
        value(
            text,
            "herald_retention_removed_total",
            &[("what", "messages")],
        )
        .unwrap_or(0.0)
            >= 1.0
    })
    .await;
    assert!(
        value(
            &metrics,
            "herald_retention_removed_total",
            &[("what", "attempts")]
        )
        .unwrap()
            >= 1.0
    );

    // Once its delivery succeeds, the pending one goes too.
    down.set_status(200);
    herald
        .post(
            &format!("{}/endpoint/{}/resend", msg(&pending), id(&failing)),
            json!({}),
        )
        .await;
    down.wait_for("/down", 2, WAIT).await;
    until_status(&herald, &msg(&pending), StatusCode::NOT_FOUND).await;
    let listed = herald.get(&attempts).await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    // The application and its endpoints are not messages: they stay.
    herald
        .get(&format!("/api/v1/app/{app}/endpoint/{}", id(&failing)))
        .await;
}

/// The embedded store's files: the database and its write-ahead log.
fn store_bytes(data_dir: &Path) -> u64 {
    ["herald.db", "herald.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(data_dir.join(name)).ok())
        .map(|m| m.len())
        .sum()
}

#[tokio::test]
async fn a_steady_load_with_a_short_retention_keeps_the_store_size_flat() {
    const SECONDS: u64 = 30;
    const PER_SECOND: u64 = 200;
    let herald = Herald::start_with(&["--retention", "3s"]).await;
    let receiver = Receiver::start().await;
    let app = herald.app("steady").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/steady")}))
        .await;
    // 1 KiB payloads at a steady rate, from a task of their own.
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let publisher = {
        let (stop, published) = (stop.clone(), published.clone());
        let url = herald.url(&format!("/api/v1/app/{app}/msg"));
        tokio::spawn(async move {
            let client = http_client();
            let filler = "x".repeat(1024);
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / PER_SECOND));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let response = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"eventType": "a.b", "payload": {"filler": filler}}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                published.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut sizes = Vec::new();
    for _ in 0..SECONDS {
        tokio::time::sleep(Duration::from_secs(1)).await;
        sizes.push(store_bytes(&herald.data_dir));
    }
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    let published = published.load(Ordering::Relaxed);
    receiver.wait_for("/steady", published as usize, WAIT).await;
    let removed = value(
        &scrape_until(&herald, |_| true).await,
        "herald_retention_removed_total",
        &[("what", "messages")],
    )
    .unwrap() as u64;

    // Retention (3 s) and a pass a second: after the first ten seconds the store holds a
    // few seconds of messages and reuses the pages freed by the ones removed.
    let warm = *sizes[8..15].iter().max().unwrap();
    let last = *sizes[SECONDS as usize - 5..].iter().max().unwrap();
    let database = std::fs::metadata(herald.data_dir.join("herald.db"))
        .unwrap()
        .len();
    eprintln!(
        "store size by second (bytes): {sizes:?}; {published} messages published, \
         {removed} removed; the database {database} bytes and its log the rest"
    );
    assert!(
        last <= warm + warm / 5,
        "the store grew from {warm} to {last} bytes: {sizes:?}"
    );
    assert!(
        published >= SECONDS * PER_SECOND / 2,
        "{published} published"
    );
    // All but the last few seconds' messages were removed; kept, they would have taken at
    // least a KiB each.
    assert!(
        removed + 8 * PER_SECOND >= published,
        "{removed} of {published} removed"
    );
    assert!(
        database < published * 1024 / 2,
        "{database} bytes for {published} messages"
    );
}

/// Svix's `payloadRetentionPeriod` (days, 5 to 90) is taken, or refused with where and
/// why; its expiry is the store's (`conformance::retention`: days cannot pass in a test).
#[tokio::test]
async fn a_payload_retention_period_is_taken_or_refused_with_the_reason() {
    let herald = Herald::start().await;
    let app = herald.app("kept-briefly").await;
    let path = format!("/api/v1/app/{app}/msg");
    for days in [4, 91] {
        let (status, body) = herald
            .call(
                Method::POST,
                &path,
                Some(json!({"eventType": "a.b", "payload": {}, "payloadRetentionPeriod": days})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", "payloadRetentionPeriod"]),
            "{body}"
        );
        assert!(
            body["detail"][0]["msg"]
                .as_str()
                .unwrap()
                .contains("5 to 90 days"),
            "{body}"
        );
    }
    let (status, body) = herald
        .call(
            Method::POST,
            &path,
            Some(json!({"eventType": "a.b", "payload": {"n": 1}, "payloadRetentionPeriod": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let kept = herald
        .get(&format!("{path}/{}", body["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        kept["payload"],
        json!({"n": 1}),
        "kept until its days are over"
    );
}
