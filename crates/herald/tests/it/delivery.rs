//! Delivery through the public API to a real receiver: signing, filtering, headers,
//! retries, idempotency, rotation, resend and recover.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Herald, Receiver, WAIT, verify};

#[tokio::test]
async fn delivers_signed_payload_bytes_exactly_as_published() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/hook"), "headers": {"X-Api-Key": "k-123"}}),
        )
        .await;
    let secret = herald.secret(&app, &ep).await;
    // Odd spacing and key order must survive byte for byte.
    let raw = r#"{"z": 1,   "a" : [1,2 ,3], "s": "é"}"#;
    let body = format!(r#"{{"eventType": "order.created", "payload": {raw}}}"#);
    let response = crate::support::http_client()
        .post(herald.url(&format!("/api/v1/app/{app}/msg")))
        .bearer_auth(crate::support::TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let msg: serde_json::Value = response.json().await.unwrap();

    let got = receiver.wait_for("/hook", 1, WAIT).await;
    let r = &got[0];
    assert_eq!(r.body.as_ref(), raw.as_bytes());
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.header("content-type"), "application/json");
    assert_eq!(r.header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(r.header("svix-id"), r.header("webhook-id"));
    assert_eq!(r.header("svix-timestamp"), r.header("webhook-timestamp"));
    assert_eq!(r.header("svix-signature"), r.header("webhook-signature"));
    assert_eq!(r.header("x-api-key"), "k-123");
    assert!(r.header("user-agent").starts_with("Herald/"));
    assert!(
        verify(r, &secret),
        "signature verifies with the endpoint secret"
    );
    let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);

    // The attempt is recorded as a success.
    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    let a = &attempts["data"][0];
    assert_eq!(
        (
            a["status"].as_i64(),
            a["statusText"].as_str(),
            a["responseStatusCode"].as_i64()
        ),
        (Some(0), Some("success"), Some(200))
    );
    assert_eq!(a["response"], "receiver says hi");
    assert_eq!(a["triggerType"], 0);
}

#[tokio::test]
async fn event_types_channels_and_disabled_endpoints_filter_deliveries() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/all")}))
        .await;
    herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/orders"), "eventTypes": ["order.created"]}),
        )
        .await;
    herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/eu"), "channels": ["eu"]}),
        )
        .await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/off"), "disabled": true}))
        .await;

    herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    herald
        .publish(
            &app,
            json!({"eventType": "invoice.paid", "payload": {"n": 2}, "channels": ["eu"]}),
        )
        .await;
    herald
        .publish(
            &app,
            json!({"eventType": "invoice.paid", "payload": {"n": 3}, "channels": ["us"]}),
        )
        .await;
    let last = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 4}, "channels": ["us", "eu"]}),
        )
        .await;

    receiver.wait_for("/all", 4, WAIT).await;
    // Every delivery of the last message is recorded before we look at the rest.
    herald
        .until(
            &format!(
                "/api/v1/app/{app}/msg/{}/endpoint",
                last["id"].as_str().unwrap()
            ),
            WAIT,
            |b| {
                b["data"]
                    .as_array()
                    .is_some_and(|d| d.len() == 3 && d.iter().all(|e| e["status"] == 0))
            },
        )
        .await;
    let ns = |path: &str| -> Vec<i64> {
        let mut ns: Vec<i64> = receiver
            .received_on(path)
            .iter()
            .map(|r| r.json()["n"].as_i64().unwrap())
            .collect();
        ns.sort();
        ns
    };
    assert_eq!(ns("/all"), vec![1, 2, 3, 4]);
    assert_eq!(ns("/orders"), vec![1, 4]);
    assert_eq!(ns("/eu"), vec![2, 4]);
    assert!(ns("/off").is_empty());

    // Listing filters by event type (comma-separated, as the Svix SDK sends) and channel.
    let listed = herald
        .get(&format!(
            "/api/v1/app/{app}/msg?event_types=order.created,nope"
        ))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    let listed = herald
        .get(&format!(
            "/api/v1/app/{app}/msg?channel=eu&with_content=false"
        ))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert_eq!(listed["data"][0]["payload"], json!({}));
}

#[tokio::test]
async fn failing_receiver_is_retried_and_every_attempt_recorded() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    receiver.script(&[500, 503]);
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(&app, json!({"url": receiver.url("/flaky")}))
        .await;
    let msg = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let got = receiver.wait_for("/flaky", 3, WAIT).await;
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|id| *id == msg["id"].as_str().unwrap()),
        "same webhook-id on every retry"
    );

    let path = format!(
        "/api/v1/app/{app}/attempt/msg/{}",
        msg["id"].as_str().unwrap()
    );
    let attempts = herald
        .until(&path, WAIT, |b| {
            b["data"].as_array().is_some_and(|d| d.len() == 3)
        })
        .await;
    let codes: Vec<i64> = attempts["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["responseStatusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![200, 503, 500], "newest first");
    assert_eq!(attempts["data"][1]["errorKind"], "status");
    let by_endpoint = herald
        .get(&format!(
            "/api/v1/app/{app}/attempt/endpoint/{}?status=2",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(by_endpoint["data"].as_array().unwrap().len(), 2);
    let one = &attempts["data"][2];
    let single = herald
        .get(&format!(
            "/api/v1/app/{app}/msg/{}/attempt/{}",
            msg["id"].as_str().unwrap(),
            one["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(single["id"], one["id"]);
    let stats = herald
        .get(&format!(
            "/api/v1/app/{app}/endpoint/{}/stats",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stats["success"], 1);
}

#[tokio::test]
async fn exhausted_delivery_fails_then_resend_and_recover_deliver_it() {
    let herald = Herald::start_with(&["--retry-schedule", "200ms"]).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(&app, json!({"url": receiver.url("/down")}))
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    let m1 = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 1}}))
        .await;
    let m2 = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 2}}))
        .await;
    let failed = |b: &serde_json::Value| {
        b["data"]
            .as_array()
            .is_some_and(|d| d.len() == 2 && d.iter().all(|m| m["status"] == 2))
    };
    let listed = herald
        .until(
            &format!("/api/v1/app/{app}/endpoint/{ep_id}/msg"),
            WAIT,
            failed,
        )
        .await;
    assert!(listed["data"][0]["nextAttempt"].is_null());
    assert_eq!(
        receiver.received_on("/down").len(),
        4,
        "1 attempt + 1 retry each"
    );

    receiver.set_status(200);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!(
                "/api/v1/app/{app}/msg/{}/endpoint/{ep_id}/resend",
                m1["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::ACCEPTED, json!({})));
    let got = receiver.wait_for("/down", 5, WAIT).await;
    assert_eq!(got[4].json()["n"], 1);
    let attempts = herald
        .until(
            &format!(
                "/api/v1/app/{app}/attempt/msg/{}",
                m1["id"].as_str().unwrap()
            ),
            WAIT,
            |b| b["data"].as_array().is_some_and(|d| d.len() == 3),
        )
        .await;
    assert_eq!(
        (
            attempts["data"][0]["triggerType"].as_i64(),
            attempts["data"][0]["status"].as_i64()
        ),
        (Some(1), Some(0))
    );

    let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let (status, task) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint/{ep_id}/recover"),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        (task["task"].as_str(), task["recovered"].as_u64()),
        (Some("endpoint.recover"), Some(1))
    );
    let got = receiver.wait_for("/down", 6, WAIT).await;
    assert_eq!(got[5].json()["n"], 2);
    assert_eq!(got[5].header("webhook-id"), m2["id"].as_str().unwrap());
    herald
        .until(
            &format!("/api/v1/app/{app}/endpoint/{ep_id}/stats"),
            WAIT,
            |s| s["success"] == 2,
        )
        .await;
}

#[tokio::test]
async fn idempotency_key_and_event_id_prevent_duplicates() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/once")}))
        .await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "a.b", "payload": {"k": 1}});
    let headers = [("idempotency-key", "publish-42")];
    let (s1, first) = herald
        .call_as(
            Method::POST,
            &path,
            Some(body.clone()),
            Some(crate::support::TOKEN),
            &headers,
        )
        .await;
    let (s2, second) = herald
        .call_as(
            Method::POST,
            &path,
            Some(body),
            Some(crate::support::TOKEN),
            &headers,
        )
        .await;
    assert_eq!((s1, s2), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["id"], second["id"]);

    let with_id = json!({"eventType": "a.b", "eventId": "evt-1", "payload": {"k": 2}});
    herald.publish(&app, with_id.clone()).await;
    let (status, err) = herald.call(Method::POST, &path, Some(with_id)).await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    assert_eq!(
        herald.get(&format!("{path}/evt-1")).await["payload"],
        json!({"k": 2})
    );

    receiver.wait_for("/once", 2, WAIT).await;
    let listed = herald.get(&path).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "two messages stored, not three or four"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received_on("/once").len(), 2);
}

#[tokio::test]
async fn rotated_secret_signs_with_both_keys_during_the_grace_period() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(&app, json!({"url": receiver.url("/rot"), "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))
        .await;
    let base = format!("/api/v1/app/{app}/endpoint/{}", ep["id"].as_str().unwrap());
    let new = herald
        .post(&format!("{base}/secret/rotate"), json!({}))
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let got = receiver.wait_for("/rot", 1, WAIT).await;
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
    assert!(verify(&got[0], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(verify(&got[0], &new));

    // Without a grace period only the new key signs.
    let newest = herald
        .post(
            &format!("{base}/secret/rotate"),
            json!({"gracePeriodSeconds": 0}),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let got = receiver.wait_for("/rot", 2, WAIT).await;
    let sigs = got[1].header("webhook-signature").split(' ').count();
    assert_eq!(
        sigs, 2,
        "the newest secret, and the first one still in its grace period"
    );
    assert!(verify(&got[1], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(verify(&got[1], &newest));
    assert!(!verify(&got[1], &new));
}

#[tokio::test]
async fn graceful_shutdown_exits_cleanly_and_pending_work_resumes() {
    let mut herald = Herald::start_with(&["--retry-schedule", "1s"]).await;
    let receiver = Receiver::start().await;
    receiver.set_status(503);
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/later")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    receiver.wait_for("/later", 1, WAIT).await;
    assert!(herald.terminate(), "SIGTERM exits with success");

    receiver.set_status(200);
    let data_dir = herald.data_dir.clone();
    let restarted = Herald::start_in(&data_dir, &["--retry-schedule", "1s"]).await;
    receiver.wait_for("/later", 2, WAIT).await;
    drop(restarted);
    drop(herald);
}

#[tokio::test]
async fn throttle_rate_spaces_attempts_to_an_endpoint() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/slowly"), "throttleRate": 5}),
        )
        .await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/freely")}))
        .await;
    for n in 0..10 {
        herald
            .publish(&app, json!({"eventType": "a.b", "payload": {"n": n}}))
            .await;
    }
    let free = receiver.wait_for("/freely", 10, WAIT).await;
    let slow = receiver.wait_for("/slowly", 10, WAIT).await;
    assert_eq!(free.len(), 10);
    // Ten attempts at 5 per second cannot span less than nine intervals of 200 ms. (A
    // lower bound only: a slow machine can take longer, never shorter.)
    let span = slow.last().unwrap().at - slow.first().unwrap().at;
    assert!(
        span >= Duration::from_millis(1700),
        "10 attempts at 5/s took only {span:?}"
    );
}

#[tokio::test]
async fn connections_to_one_receiver_are_kept_for_all_its_endpoints() {
    // Ten endpoints on one receiver may have 10 × 32 attempts in flight at once. The
    // connections opened for them are all kept for reuse: a second wave of the same size
    // opens (almost) none, where a pool keeping fewer than that (it kept 64) closed and
    // reopened 60 to 170 of them.
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(100));
    let app = herald.app("pool").await;
    for i in 0..10 {
        herald
            .endpoint(&app, json!({"url": receiver.url(&format!("/e{i}"))}))
            .await;
    }
    let wave = |n: usize| {
        let (herald, app) = (&herald, &app);
        futures::future::join_all((0..n).map(move |i| {
            herald.publish(
                app,
                json!({"eventType": "order.created", "payload": {"i": i}}),
            )
        }))
    };
    wave(100).await;
    for i in 0..10 {
        receiver.wait_for(&format!("/e{i}"), 100, WAIT).await;
    }
    let first = receiver.connections();
    wave(100).await;
    for i in 0..10 {
        receiver.wait_for(&format!("/e{i}"), 200, WAIT).await;
    }
    let total = receiver.connections();
    assert!(
        first > 64,
        "the first wave had {first} connections; the test needs more than 64 in use at once"
    );
    // Only if the first wave never had all 320 in flight may the second need more; and a
    // few may be opened when an attempt starts before the previous one's connection is
    // back in the pool (none in runs here; the old pool opened 60-170).
    assert!(
        total - first <= 32 + 320usize.saturating_sub(first),
        "the second wave opened {} connections instead of reusing the first wave's {first}",
        total - first
    );
}

#[tokio::test]
async fn an_endpoint_url_with_a_fragment_is_delivered_without_it() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("fragment").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/hook?x=1#part")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 1}}))
        .await;
    let got = receiver.wait_for("/hook", 1, WAIT).await;
    assert_eq!(got[0].query, "x=1");
}

#[tokio::test]
async fn a_test_event_goes_to_its_endpoint_only() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("shop").await;
    herald
        .post(
            "/api/v1/event-type",
            json!({"name": "order.created", "description": "An order",
                   "schemas": {"1": {"type": "object", "examples": [{"order": "EX-1", "total": 12.5}]}}}),
        )
        .await;
    herald
        .post(
            "/api/v1/event-type",
            json!({"name": "order.bare", "description": "No example"}),
        )
        .await;
    // Subscribed to something else, with a filter the example would not pass: a test
    // event goes to it all the same.
    let tested = herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/tested"), "filterTypes": ["invoice.paid"],
                   "filter": {"payload.order": {"$eq": "never"}}}),
        )
        .await;
    let secret = herald.secret(&app, &tested).await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/other")}))
        .await;
    let path = format!(
        "/api/v1/app/{app}/endpoint/{}/send-example",
        tested["id"].as_str().unwrap()
    );

    let (status, msg) = herald
        .call(
            Method::POST,
            &path,
            Some(json!({"eventType": "order.created"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["eventType"], "order.created");
    assert_eq!(msg["payload"], json!({"order": "EX-1", "total": 12.5}));
    let got = receiver.wait_for("/tested", 1, WAIT).await;
    assert!(verify(&got[0], &secret), "signed like any delivery");
    assert_eq!(got[0].header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(got[0].json(), json!({"order": "EX-1", "total": 12.5}));
    // Svix's ping has a fixed example.
    let (status, ping) = herald
        .call(Method::POST, &path, Some(json!({"eventType": "svix.ping"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{ping}");
    let got = receiver.wait_for("/tested", 2, WAIT).await;
    assert_eq!(got[1].json(), json!({"success": true}));
    // The catch-all endpoint got neither: the first thing it sees is a real message
    // published after them.
    let real = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"order": "R-1"}}),
        )
        .await;
    let other = receiver.wait_for("/other", 1, WAIT).await;
    assert_eq!(other[0].header("webhook-id"), real["id"].as_str().unwrap());
    assert_eq!(other.len(), 1);
    // And the test messages are in the log, with their one delivery each.
    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    assert_eq!(attempts["data"].as_array().unwrap().len(), 1);

    // Honest errors, and nothing sent for them.
    for (body, status, says) in [
        (
            json!({"eventType": "order.bare"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no example payload",
        ),
        (
            json!({"eventType": "order.unknown"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "no event type named order.unknown",
        ),
        (
            json!({"eventType": "bad type!"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "eventType",
        ),
    ] {
        let (got, answer) = herald.call(Method::POST, &path, Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert!(answer.to_string().contains(says), "{answer}");
    }
    let (status, _) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint/ep_missing/send-example"),
            Some(json!({"eventType": "svix.ping"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    herald
        .call(
            Method::PATCH,
            &format!(
                "/api/v1/app/{app}/endpoint/{}",
                tested["id"].as_str().unwrap()
            ),
            Some(json!({"disabled": true})),
        )
        .await;
    let (status, answer) = herald
        .call(Method::POST, &path, Some(json!({"eventType": "svix.ping"})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["code"], "endpoint_disabled");
    assert_eq!(receiver.received_on("/tested").len(), 2);
}

#[tokio::test]
async fn the_health_of_a_page_of_endpoints_comes_in_one_call() {
    let herald = Herald::start_with(&["--retry-schedule", "1h"]).await;
    let receiver = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_status(503);
    let app = herald.app("shop").await;
    let other_app = herald.app("other").await;
    let ok = herald
        .endpoint(&app, json!({"url": receiver.url("/ok"), "uid": "ok"}))
        .await;
    let bad = herald
        .endpoint(&app, json!({"url": failing.url("/bad")}))
        .await;
    let foreign = herald
        .endpoint(&other_app, json!({"url": receiver.url("/foreign")}))
        .await;
    for n in 0..2 {
        let msg = herald
            .publish(
                &app,
                json!({"eventType": "order.created", "payload": {"n": n}}),
            )
            .await;
        herald.msg_attempts(&app, &msg, 2).await;
    }
    let path = format!(
        "/api/v1/app/{app}/endpoint-health?endpoint_id=ok&endpoint_id={}&endpoint_id={}&endpoint_id=ep_unknown",
        bad["id"].as_str().unwrap(),
        foreign["id"].as_str().unwrap()
    );
    let health = herald.get(&path).await;
    let data = health["data"].as_array().unwrap();
    assert_eq!(
        data.len(),
        2,
        "the other app's and unknown ids are left out: {health}"
    );
    assert_eq!(data[0]["endpointId"], ok["id"]);
    assert_eq!(data[0]["success"], 2);
    assert_eq!(data[0]["fail"], 0);
    assert!(data[0]["medianDurationMs"].as_i64().is_some());
    assert!(data[0]["lastFailure"].is_null());
    assert_eq!(data[1]["endpointId"], bad["id"]);
    assert_eq!(data[1]["success"], 0);
    assert_eq!(data[1]["pending"], 2, "waiting for their retry");
    assert_eq!(data[1]["lastFailure"]["responseStatusCode"], 503);
    assert_eq!(data[1]["lastFailure"]["endpointId"], bad["id"]);

    // Since later than every attempt: nothing counted.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let health = herald
        .get(&format!(
            "/api/v1/app/{app}/endpoint-health?endpoint_id=ok&since={later}"
        ))
        .await;
    assert_eq!(health["data"][0]["success"], 0);
    assert!(health["data"][0]["medianDurationMs"].is_null());

    let too_many: String = (0..101).map(|i| format!("endpoint_id=e{i}&")).collect();
    for query in ["", too_many.as_str()] {
        let (status, body) = herald
            .call(
                Method::GET,
                &format!("/api/v1/app/{app}/endpoint-health?{query}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["detail"][0]["loc"], json!(["query", "endpoint_id"]));
    }
}

#[tokio::test]
async fn an_expunged_payload_is_gone_and_never_sent_again() {
    let herald = Herald::start_with(&["--retry-schedule", "1h"]).await;
    let receiver = Receiver::start().await;
    receiver.set_status(500);
    let app = herald.app("careful").await;
    let ep = herald
        .endpoint(&app, json!({"url": receiver.url("/oops")}))
        .await;
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "a.b", "eventId": "leak-1", "payload": {"card": "4111 1111 1111 1111"}}),
        )
        .await;
    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    let attempt = attempts["data"][0]["id"].as_str().unwrap().to_owned();
    let msg_id = msg["id"].as_str().unwrap();
    let ep_id = ep["id"].as_str().unwrap();

    // The receiver's answer, then the payload (by eventId, as Svix allows).
    let path = format!("/api/v1/app/{app}/msg/{msg_id}/attempt/{attempt}/content");
    let (status, _) = herald.call(Method::DELETE, &path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = herald
        .get(&format!("/api/v1/app/{app}/msg/{msg_id}/attempt/{attempt}"))
        .await;
    assert_eq!(got["response"], "");
    let (status, _) = herald
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/msg/leak-1/content"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = herald.get(&format!("/api/v1/app/{app}/msg/{msg_id}")).await;
    assert_eq!(got["payload"], json!({}));
    // Its pending retry failed, and it cannot be resent.
    let deliveries = herald
        .get(&format!("/api/v1/app/{app}/msg/{msg_id}/endpoint"))
        .await;
    assert_eq!(deliveries["data"][0]["status"], 2, "{deliveries}");
    receiver.set_status(200);
    let (status, err) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg/{msg_id}/endpoint/{ep_id}/resend"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(
        err["detail"].as_str().unwrap().contains("expunged"),
        "{err}"
    );
    // Unknown ids are 404.
    let (status, _) = herald
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/msg/msg_nope/content"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing more reached the receiver: a later message is the next thing it sees.
    let later = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 2}}))
        .await;
    let got = receiver.wait_for("/oops", 2, WAIT).await;
    assert_eq!(got[1].header("webhook-id"), later["id"].as_str().unwrap());
}
