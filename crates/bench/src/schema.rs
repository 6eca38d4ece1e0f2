//! `schema`: what an enforced event-type schema costs a publish. Two event types with the
//! same schema (a business process: eight required fields, two enums, arrays of objects),
//! one enforcing it; the same payloads published as each, in alternating rounds, and
//! Herald's CPU per event (publish and its delivery) compared.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::Options;
use crate::herald::{TOKEN, Target};
use crate::load::{Body, publish_bodies};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::scenarios::{progress, scaled, targets};

/// Rounds of each kind, alternating (free, enforced, free, …).
const ROUNDS: usize = 3;

/// The business process schema the `contracts` tests use (tests/fixtures).
fn schema() -> serde_json::Value {
    serde_json::from_str(include_str!(
        "../../../tests/fixtures/business-process.schema.json"
    ))
    .expect("the fixture is JSON")
}

/// Publish `i` of `event_type`: a valid business process, different each time.
fn body(event_type: &'static str) -> Body {
    Arc::new(move |i| {
        serde_json::to_vec(&json!({
            "eventType": event_type,
            "payload": {
                "id": format!("bp-{i}"),
                "blueprintName": "device-return",
                "partnerId": "partner-1",
                "merchantId": format!("AVID-{}", i % 100),
                "customerId": format!("cus-{}", i % 1000),
                "status": "in_progress",
                "expiresAt": "2026-12-31T23:59:59Z",
                "version": i % 7,
                "actions": [{"type": "acknowledgement", "at": i}],
                "addresses": [{"type": "email", "value": "ada@example.com"}]
            }
        }))
        .expect("json")
    })
}

pub(crate) async fn schema_cost(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let client = reqwest::Client::new();
    let app: serde_json::Value = client
        .post(herald.url("/api/v1/app"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "contracts"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let app = app["id"].as_str().unwrap_or_default().to_owned();
    client
        .post(herald.url(&format!("/api/v1/app/{app}/endpoint")))
        .bearer_auth(TOKEN)
        .json(&json!({"url": receiver.url("/e0")}))
        .send()
        .await?
        .error_for_status()?;
    for (name, enforce) in [("bp.free", false), ("bp.enforced", true)] {
        client
            .post(herald.url("/api/v1/event-type"))
            .bearer_auth(TOKEN)
            .json(
                &json!({"name": name, "description": "A business process changed",
                          "schemas": {"1": schema()}, "enforceSchema": enforce}),
            )
            .send()
            .await?
            .error_for_status()?;
    }
    let n = scaled(options, 20_000);
    // Per kind: events, seconds publishing, Herald CPU seconds.
    let mut totals = [(0usize, 0f64, 0f64); 2];
    for round in 0..ROUNDS * 2 {
        let kind = round % 2;
        let event_type = if kind == 0 { "bp.free" } else { "bp.enforced" };
        let before = receiver.unique();
        let cpu_before = herald.cpu_seconds();
        let bar = progress(options, n, event_type);
        let published = publish_bodies(
            n,
            options.concurrency,
            None,
            targets(&herald, vec![app.clone()]),
            body(event_type),
            &bar,
        )
        .await;
        bar.finish_and_clear();
        anyhow::ensure!(
            published.failed == 0,
            "{} publishes of {event_type} failed",
            published.failed
        );
        let arrived = receiver
            .wait_unique(
                before + published.sent.len(),
                Duration::from_secs(300),
                |_| {},
            )
            .await;
        anyhow::ensure!(arrived, "every {event_type} event delivered");
        let total = &mut totals[kind];
        total.0 += published.sent.len();
        total.1 += published.elapsed.as_secs_f64();
        total.2 += herald.cpu_seconds() - cpu_before;
    }
    let mut report = Report::new("schema (enforced business-process schema vs none)");
    let [free, enforced] = totals;
    let per_event = |(events, _, cpu): (usize, f64, f64)| cpu / events.max(1) as f64 * 1e6;
    report.add("events per kind", free.0 as f64, "");
    report.add(
        "publish/s, not enforced",
        free.0 as f64 / free.1,
        "events/s",
    );
    report.add(
        "publish/s, enforced",
        enforced.0 as f64 / enforced.1,
        "events/s",
    );
    report.add("Herald CPU per event, not enforced", per_event(free), "µs");
    report.add("Herald CPU per event, enforced", per_event(enforced), "µs");
    report.add(
        "cost of enforcing, per publish",
        per_event(enforced) - per_event(free),
        "µs",
    );
    Ok(report)
}
