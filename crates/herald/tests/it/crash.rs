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
