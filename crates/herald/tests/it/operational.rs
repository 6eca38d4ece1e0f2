//! Operational webhooks and auto-disable: an endpoint failing continuously for
//! `--auto-disable-after` is disabled, and the operator's application (uid
//! `herald-operator`) receives `endpoint.disabled` and `message.attempt.exhausted`,
//! signed like any delivery.

use std::time::Duration;

use serde_json::json;

use crate::support::{Herald, Receiver, WAIT, verify};

#[tokio::test]
async fn a_failing_endpoint_is_disabled_and_the_operator_is_told() {
    let herald = Herald::start_with(&[
        "--retry-schedule",
        "200ms,200ms",
        "--auto-disable-after",
        "2s",
    ])
    .await;
    let failing = Receiver::start().await;
    failing.set_status(500);
    let operator = Receiver::start().await;
    // The operator subscribes by creating the operator application and an endpoint.
    herald
        .post(
            "/api/v1/app",
            json!({"name": "Operator", "uid": "herald-operator"}),
        )
        .await;
    let ops = herald
        .endpoint("herald-operator", json!({"url": operator.url("/ops")}))
        .await;
    let ops_secret = herald.secret("herald-operator", &ops).await;

    let app = herald.app("shop").await;
    let ep = herald
        .endpoint(&app, json!({"url": failing.url("/down"), "uid": "orders"}))
        .await;
    let ep_path = format!("/api/v1/app/{app}/endpoint/{}", ep["id"].as_str().unwrap());
    let first = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "eventId": "o-1", "payload": {"n": 0}}),
        )
        .await;
    // The operator's morning check lists it as failing, with why, across applications.
    // (The streak is marked as the attempt's record is written: both are waited for.)
    let seen = herald
        .until("/api/v1/endpoint-health", WAIT, |b| {
            b["failing"].as_array().is_some_and(|f| !f.is_empty())
                && !b["failing"][0]["lastFailure"].is_null()
        })
        .await;
    let item = &seen["failing"][0];
    assert_eq!(item["appId"], app);
    assert_eq!(item["appUid"], "shop");
    assert_eq!(item["endpoint"]["id"], ep["id"]);
    assert!(item["failingSince"].as_str().unwrap().ends_with('Z'));
    assert_eq!(item["lastFailure"]["responseStatusCode"], 500);
    assert_eq!(item["lastFailure"]["msgId"], first["id"]);
    // It is the operator's view: an application's token may not read it.
    let tenant = herald
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    let (status, _) = herald
        .call_as(
            reqwest::Method::GET,
            "/api/v1/endpoint-health",
            None,
            tenant["token"].as_str(),
            &[],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    // Keep it failing until Herald gives up on it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut n = 1;
    while herald.get(&ep_path).await["disabled"] == false {
        assert!(tokio::time::Instant::now() < deadline, "disabled in time");
        herald
            .publish(
                &app,
                json!({"eventType": "order.created", "payload": {"n": n}}),
            )
            .await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let events = operator.wait_for("/ops", 2, WAIT).await;
    assert!(events.iter().all(|e| verify(e, &ops_secret)), "signed");
    let bodies: Vec<serde_json::Value> = events.iter().map(|e| e.json()).collect();
    let exhausted = bodies
        .iter()
        .find(|b| b["type"] == "message.attempt.exhausted" && b["data"]["msgId"] == first["id"])
        .expect("the first message's delivery ran out of retries");
    assert_eq!(exhausted["data"]["appId"], app);
    assert_eq!(exhausted["data"]["appUid"], "shop");
    assert_eq!(exhausted["data"]["msgEventId"], "o-1");
    assert_eq!(exhausted["data"]["endpointId"], ep["id"]);
    assert_eq!(exhausted["data"]["lastAttempt"]["responseStatusCode"], 500);
    let disabled_at = std::time::Instant::now();
    let disabled = loop {
        let got = operator.received_on("/ops");
        if let Some(event) = got
            .iter()
            .map(|e| e.json())
            .find(|b| b["type"] == "endpoint.disabled")
        {
            break event;
        }
        assert!(disabled_at.elapsed() < WAIT, "endpoint.disabled arrives");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(disabled["data"]["endpointId"], ep["id"]);
    assert_eq!(disabled["data"]["endpointUid"], "orders");
    assert_eq!(disabled["data"]["reason"], "failing");
    let seen = herald.get("/api/v1/endpoint-health").await;
    assert_eq!(seen["disabled"][0]["endpoint"]["id"], ep["id"]);
    assert_eq!(seen["disabled"][0]["endpoint"]["disabled"], true);
    assert!(
        disabled["data"]["failSince"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    // Disabled: new messages no longer go to it.
    let before = failing.received().len();
    herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": "after"}}),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let late: Vec<_> = failing.received()[before..]
        .iter()
        .filter(|r| r.json()["n"] == "after")
        .cloned()
        .collect();
    assert!(late.is_empty(), "nothing is sent to a disabled endpoint");
}
