//! `/metrics` through the binary: who may read it, and that a publish and an attempt move
//! the counters and histograms they should, with no tenant's ids among the labels.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Herald, Receiver, TOKEN, WAIT, http_client};

/// The value of the series `name{labels…}` in Prometheus text, if present.
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|line| {
            let (series, _) = line.rsplit_once(' ').unwrap_or((line, ""));
            let bare = series.split('{').next().unwrap_or("");
            bare == name
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|line| line.rsplit_once(' ')?.1.parse().ok())
}

async fn scrape(herald: &Herald, token: Option<&str>) -> (StatusCode, String) {
    let mut request = http_client().get(herald.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// Scrapes until `done` holds for the text (the recorder sees an attempt once it ran).
pub(crate) async fn scrape_until(herald: &Herald, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (status, text) = scrape(herald, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        if done(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "metrics never showed it:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn publishes_and_attempts_move_the_counters_and_histograms() {
    let herald = Herald::start_with(&["--retry-schedule", "1h"]).await;
    let receiver = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_status(500);
    let app = herald.app("metered").await;
    herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/ok"), "filterTypes": ["a.ok"]}),
        )
        .await;
    herald
        .endpoint(
            &app,
            json!({"url": failing.url("/bad"), "filterTypes": ["a.bad"]}),
        )
        .await;

    let (status, text) = scrape(&herald, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        value(&text, "herald_messages_accepted_total", &[]),
        Some(0.0),
        "nothing yet:\n{text}"
    );
    assert_eq!(
        value(
            &text,
            "herald_endpoints_disabled_total",
            &[("reason", "failing")]
        ),
        Some(0.0)
    );
    assert!(text.contains("herald_build_info{"), "{text}");

    herald
        .publish(&app, json!({"eventType": "a.ok", "payload": {"n": 1}}))
        .await;
    receiver.wait_for("/ok", 1, WAIT).await;
    herald
        .publish(&app, json!({"eventType": "a.bad", "payload": {"n": 2}}))
        .await;
    failing.wait_for("/bad", 1, WAIT).await;
    let (status, _) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "bad type!", "payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let text = scrape_until(&herald, |t| {
        value(t, "herald_retries_scheduled_total", &[]) == Some(1.0)
            && value(t, "herald_attempts_total", &[("outcome", "success")]) == Some(1.0)
    })
    .await;
    assert_eq!(
        value(&text, "herald_messages_accepted_total", &[]),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "herald_messages_refused_total",
            &[("reason", "invalid")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "herald_attempts_total",
            &[("outcome", "failure"), ("error_kind", "status")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "herald_attempt_duration_seconds_count", &[]),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "herald_delivery_latency_seconds_count", &[]),
        Some(1.0)
    );
    assert!(
        value(
            &text,
            "herald_attempt_duration_seconds_bucket",
            &[("le", "+Inf")]
        )
        .is_some()
    );
    assert_eq!(
        value(
            &text,
            "herald_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/v1/app/{app_id}/msg"),
                ("status", "202")
            ]
        ),
        Some(2.0)
    );
    assert!(value(&text, "herald_deliveries_held", &[]).is_some());
    // The store's commits: each group's time and size, recorded one after the other (a
    // scrape may fall between the two, and the recorder writes the attempts' records
    // after the deliveries were seen: wait until they agree).
    let commits = |text: &str| {
        let store = [("store", "embedded")];
        (
            value(text, "herald_store_commit_seconds_count", &store),
            value(text, "herald_store_group_size_count", &store),
        )
    };
    let text = scrape_until(&herald, |text| {
        let (seconds, sizes) = commits(text);
        seconds.is_some_and(|n| n >= 3.0) && seconds == sizes
    })
    .await;
    assert!(commits(&text).0.is_some_and(|n| n >= 3.0), "{text}");
    assert!(
        value(
            &text,
            "herald_store_group_wait_seconds_count",
            &[("store", "embedded")]
        )
        .is_some_and(|n| n >= 3.0),
        "{text}"
    );
    assert!(
        value(
            &text,
            "herald_store_group_size_bucket",
            &[("store", "embedded"), ("le", "1")]
        )
        .is_some()
    );
    // Routes, never paths: no application id in any label.
    assert!(!text.contains(&app), "{text}");
}

#[tokio::test]
async fn who_may_read_the_metrics_is_a_setting() {
    // The default: the admin token only.
    let herald = Herald::start().await;
    let app = herald.app("tenant").await;
    let tenant = herald
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({}))
        .await;
    assert_eq!(scrape(&herald, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        scrape(&herald, Some("wrong")).await.0,
        StatusCode::UNAUTHORIZED
    );
    let tenant_token = tenant["token"].as_str().unwrap();
    assert_eq!(
        scrape(&herald, Some(tenant_token)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, text) = scrape(&herald, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("herald_build_info"));
    drop(herald);

    let public = Herald::start_with(&["--metrics", "public"]).await;
    assert_eq!(scrape(&public, None).await.0, StatusCode::OK);
    drop(public);
    let off = Herald::start_with(&["--metrics", "off"]).await;
    assert_eq!(scrape(&off, Some(TOKEN)).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_backlog_grows_while_a_receiver_stalls_and_falls_to_zero_after() {
    // One request at a time to the endpoint: what waits behind a stalled one is backlog.
    let herald = Herald::start_with(&["--max-in-flight-per-endpoint", "1"]).await;
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_secs(3));
    let app = herald.app("stalled").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/slow")}))
        .await;
    for n in 0..4 {
        herald
            .publish(&app, json!({"eventType": "a.b", "payload": {"n": n}}))
            .await;
    }
    let text = scrape_until(&herald, |t| {
        value(t, "herald_backlog_seconds", &[]).is_some_and(|s| s >= 1.0)
    })
    .await;
    assert_eq!(
        value(&text, "herald_deliveries_in_flight", &[]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "herald_deliveries_held", &[]),
        Some(4.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "herald_deliveries_pending", &[]),
        Some(4.0),
        "{text}"
    );
    assert!(value(&text, "herald_store_size_bytes", &[]).is_some_and(|b| b > 0.0));
    // The receiver recovers: everything is delivered and nothing waits.
    receiver.set_delay(Duration::ZERO);
    receiver.wait_for("/slow", 4, WAIT).await;
    // (A delivery is let go of in memory just after its record commits: all three are
    // waited for.)
    scrape_until(&herald, |t| {
        [
            "herald_deliveries_pending",
            "herald_deliveries_held",
            "herald_backlog_seconds",
        ]
        .iter()
        .all(|name| value(t, name, &[]) == Some(0.0))
    })
    .await;
}

#[tokio::test]
async fn on_postgresql_the_store_figures_are_the_databases() {
    let Some(database) = crate::support::fresh_database().await else {
        return;
    };
    let herald = Herald::start_on(&database, &[]).await;
    let receiver = Receiver::start().await;
    let app = herald.app("pg").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/pg")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    receiver.wait_for("/pg", 1, WAIT).await;
    let text = scrape_until(&herald, |t| {
        value(t, "herald_attempts_total", &[("outcome", "success")]) == Some(1.0)
    })
    .await;
    assert!(
        value(
            &text,
            "herald_store_commit_seconds_count",
            &[("store", "postgres")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    // The publish went through the group writer, which says how long it waited.
    assert!(
        value(
            &text,
            "herald_store_group_wait_seconds_count",
            &[("store", "postgres")]
        )
        .is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(value(&text, "herald_store_size_bytes", &[]).is_some_and(|b| b > 1_000_000.0));
    assert!(value(&text, "herald_deliveries_pending", &[]).is_some());
}
