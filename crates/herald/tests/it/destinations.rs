//! The destination policy (SSRF guard): with the default configuration, loopback
//! destinations in every spelling are refused before a packet is sent, for HTTP and AMQP,
//! and recorded as failed attempts; `--https-only` refuses plain http. Only loopback
//! addresses are used: a refused destination is never contacted, and an allowed one is
//! the test's own receiver.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Herald, Receiver, WAIT};

async fn attempts_of(herald: &Herald, app: &str, endpoint: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/app/{app}/attempt/endpoint/{}",
        endpoint["id"].as_str().unwrap()
    );
    herald
        .until(&path, WAIT, |b| !b["data"].as_array().unwrap().is_empty())
        .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn loopback_in_any_spelling_is_refused_by_default() {
    let herald = Herald::start_strict(&["--retry-schedule", "1s"]).await;
    let receiver = Receiver::start().await;
    let port = url::Url::parse(&receiver.url("/")).unwrap().port().unwrap();
    let app = herald.app("ssrf").await;
    let destinations = [
        format!("http://127.0.0.1:{port}/ipv4"),
        format!("http://localhost:{port}/name"),
        format!("http://[::1]:{port}/ipv6"),
        format!("http://2130706433:{port}/decimal"),
        format!("http://0x7f.1:{port}/hex"),
        format!("http://127.1:{port}/short"),
        format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
        format!("http://0.0.0.0:{port}/unspecified"),
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        format!("amqp://guest:guest@localhost:{port}/%2f"),
    ];
    let mut endpoints = Vec::new();
    for url in &destinations {
        endpoints.push(herald.endpoint(&app, json!({"url": url})).await);
    }
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 1}}))
        .await;

    for (url, endpoint) in destinations.iter().zip(&endpoints) {
        let attempts = attempts_of(&herald, &app, endpoint).await;
        let attempt = &attempts[0];
        assert_eq!(attempt["status"], 2, "{url}: {attempt}");
        assert_eq!(attempt["errorKind"], "refused", "{url}: {attempt}");
        let why = attempt["response"].as_str().unwrap();
        assert!(
            why.contains("loopback") || why.contains("unspecified"),
            "{url}: {why}"
        );
    }
    // Refused is final: no retry comes after the 1 s schedule.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for (url, endpoint) in destinations.iter().zip(&endpoints) {
        assert_eq!(attempts_of(&herald, &app, endpoint).await.len(), 1, "{url}");
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn https_only_refuses_plain_http_even_when_the_range_is_allowed() {
    let herald = Herald::start_with(&["--https-only"]).await;
    let receiver = Receiver::start().await;
    let app = herald.app("tls-only").await;
    let endpoint = herald
        .endpoint(&app, json!({"url": receiver.url("/plain")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let attempts = attempts_of(&herald, &app, &endpoint).await;
    assert_eq!(attempts[0]["errorKind"], "refused");
    assert!(
        attempts[0]["response"]
            .as_str()
            .unwrap()
            .contains("only https"),
        "{}",
        attempts[0]
    );
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn denying_every_range_refuses_even_allowed_loopback_without_resolving() {
    // The test harness allows loopback; the deny list wins over it.
    let herald = Herald::start_with(&["--deny-destination", "0.0.0.0/0,::/0"]).await;
    let receiver = Receiver::start().await;
    let port = url::Url::parse(&receiver.url("/")).unwrap().port().unwrap();
    let app = herald.app("nowhere").await;
    let destinations = [
        receiver.url("/ip"),
        format!("http://localhost:{port}/name"),
        format!("amqp://guest:guest@localhost:{port}/%2f"),
    ];
    let mut endpoints = Vec::new();
    for url in &destinations {
        endpoints.push(herald.endpoint(&app, json!({"url": url})).await);
    }
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    for (url, endpoint) in destinations.iter().zip(&endpoints) {
        let attempts = attempts_of(&herald, &app, endpoint).await;
        assert_eq!(attempts[0]["errorKind"], "refused", "{url}");
        // Host names are refused before they are resolved.
        let why = attempts[0]["response"].as_str().unwrap();
        assert!(why.contains("every destination is denied"), "{url}: {why}");
    }
    assert!(receiver.received().is_empty());
}
