//! Crash test: publish continuously, `kill -9` Herald mid-stream, restart it on the same
//! data directory, and check every message that got a 2xx reaches the receiver.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;

use crate::support::{Herald, Receiver, TOKEN};

#[tokio::test]
async fn every_accepted_message_is_delivered_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let args = ["--retry-schedule", "500ms,500ms,500ms,500ms,500ms"];
    let mut herald = Herald::start_in(tmp.path(), &args).await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/crash")}))
        .await;

    let accepted = Arc::new(Mutex::new(HashSet::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = herald.url(&format!("/api/v1/app/{app}/msg"));
    let mut publishers = Vec::new();
    for worker in 0..8 {
        let (accepted, stop, url) = (accepted.clone(), stop.clone(), url.clone());
        publishers.push(tokio::spawn(async move {
            let client = crate::support::http_client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"eventType": "a.b", "payload": {"worker": worker, "n": n}}))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        accepted
                            .lock()
                            .await
                            .insert(body["id"].as_str().unwrap().to_owned());
                    }
                    // Refused or cut off by the kill: not accepted, so not owed.
                    _ => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    // Let traffic flow, then kill -9 in the middle of it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    herald.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        p.await.unwrap();
    }
    let accepted = accepted.lock().await.clone();
    assert!(
        accepted.len() > 100,
        "enough traffic before the kill: {}",
        accepted.len()
    );

    let _restarted = Herald::start_in(tmp.path(), &args).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let delivered: HashSet<String> = receiver
            .received_on("/crash")
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 {
            let total = receiver.received_on("/crash").len();
            eprintln!(
                "crash test: accepted {}, delivered {} unique, {} duplicates (at-least-once)",
                accepted.len(),
                delivered.len(),
                total - delivered.len()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted messages never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes `n` messages to `url`, 16 at a time; returns the ids that got a 2xx.
async fn publish_burst(url: String, n: usize, tag: &str) -> HashSet<String> {
    use futures::StreamExt;
    let client = crate::support::http_client();
    futures::stream::iter(0..n)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&json!({"eventType": "a.b", "payload": {"phase": tag, "n": i}}))
                    .send()
                    .await
                    .ok()?;
                if !r.status().is_success() {
                    return None;
                }
                let body: serde_json::Value = r.json().await.ok()?;
                Some(body["id"].as_str()?.to_owned())
            }
        })
        .buffer_unordered(16)
        .filter_map(|id| async move { id })
        .collect()
        .await
}

#[tokio::test]
async fn kills_during_ingest_attempts_and_retries_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Retries every 500 ms for about 20 s: none runs out during the test.
    let schedule = vec!["500ms"; 40].join(",");
    let args = ["--retry-schedule", schedule.as_str()];
    let steady = Receiver::start().await;
    let flaky = Receiver::start().await;
    flaky.set_status(500);
    let mut herald = Herald::start_in(tmp.path(), &args).await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": steady.url("/steady")}))
        .await;
    herald
        .endpoint(&app, json!({"url": flaky.url("/flaky")}))
        .await;
    let mut accepted = HashSet::new();

    // 1. During ingest: kill while a burst is being published.
    {
        let url = herald.url(&format!("/api/v1/app/{app}/msg"));
        let publishing = publish_burst(url, 3000, "ingest");
        tokio::pin!(publishing);
        let killed_at = tokio::time::sleep(Duration::from_millis(700));
        tokio::select! {
            ids = &mut publishing => accepted.extend(ids),
            () = killed_at => {}
        }
        herald.kill();
        // Whatever the burst had accepted before the kill is owed; the rest failed.
        accepted.extend(publishing.await);
    }
    let kills_during_ingest = accepted.len();

    // 2. During attempts: kill right after a burst, with deliveries queued and in flight.
    let mut herald = Herald::start_in(tmp.path(), &args).await;
    let url = herald.url(&format!("/api/v1/app/{app}/msg"));
    accepted.extend(publish_burst(url, 1000, "attempts").await);
    herald.kill();

    // 3. During retries: the flaky receiver has failed everything so far; wait until
    // retries are being made, then kill.
    let herald3 = Herald::start_in(tmp.path(), &args).await;
    let before = flaky.received().len();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while flaky.received().len() < before + 200 {
        assert!(tokio::time::Instant::now() < deadline, "retries under way");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut herald3 = herald3;
    herald3.kill();

    // Recovery: every accepted message reaches both endpoints, at least once.
    flaky.set_status(200);
    let _restarted = Herald::start_in(tmp.path(), &args).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for (receiver, path) in [(&steady, "/steady"), (&flaky, "/flaky")] {
        loop {
            let got = receiver.received_on(path);
            let delivered: HashSet<String> = got
                .iter()
                .filter(|r| r.status == 200)
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            let missing = accepted.difference(&delivered).count();
            if missing == 0 {
                let successes = got.iter().filter(|r| r.status == 200).count();
                eprintln!(
                    "crash test ({path}): 3 kills (ingest, attempts, retries); accepted {} \
                     ({kills_during_ingest} of them from the burst the first kill cut), delivered all, lost 0, \
                     duplicates {}",
                    accepted.len(),
                    successes - delivered.len()
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path}: {missing} accepted messages never delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    drop(herald);
}

#[tokio::test]
async fn a_full_store_answers_507_keeps_running_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let herald = Herald::start_in(tmp.path(), &["--max-store-size", "512KiB"]).await;
    let (status, _) = herald
        .call(reqwest::Method::GET, "/api/v1/health/ready", None)
        .await;
    assert_eq!(
        status,
        reqwest::StatusCode::NO_CONTENT,
        "ready while there is room"
    );
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/full")}))
        .await;
    let pad = "x".repeat(2000);
    let mut accepted = HashSet::new();
    let mut refused = None;
    for n in 0..2000 {
        let (status, body) = herald
            .call(
                reqwest::Method::POST,
                &format!("/api/v1/app/{app}/msg"),
                Some(json!({"eventType": "a.b", "eventId": format!("e{n}"), "payload": {"pad": pad}})),
            )
            .await;
        if status.is_success() {
            accepted.insert(body["id"].as_str().unwrap().to_owned());
        } else {
            refused = Some((n, status, body));
            break;
        }
    }
    let (n, status, body) = refused.expect("the store fills up");
    assert_eq!(status, reqwest::StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["code"], "storage_full");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("Nothing was stored"),
        "{body}"
    );
    // Herald keeps running: it answers reads, and the refused message was not stored.
    let (status, _) = herald
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/app/{app}/msg/e{n}"),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);
    herald.get(&format!("/api/v1/app/{app}")).await;
    // Alive, but not ready for publishes: a load balancer sends them elsewhere.
    let (status, _) = herald
        .call(reqwest::Method::GET, "/api/v1/health", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let (status, body) = herald
        .call(reqwest::Method::GET, "/api/v1/health/ready", None)
        .await;
    assert_eq!(status, reqwest::StatusCode::INSUFFICIENT_STORAGE, "{body}");
    assert_eq!(body["code"], "storage_full");
    // Every accepted message reaches the receiver.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let delivered: HashSet<String> = receiver
            .received_on("/full")
            .iter()
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        let missing = accepted.difference(&delivered).count();
        if missing == 0 {
            eprintln!(
                "full store: {} accepted before the first 507, all delivered",
                accepted.len()
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} accepted messages never delivered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
