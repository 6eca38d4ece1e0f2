//! `lists`: how fast the console's and the portal's lists answer on real volumes. One
//! application with 1,000 endpoints and 100,000 delivered messages (endpoint 0 takes
//! every event, each other endpoint one event type of its own), then the first page of
//! every list the screens ask for, timed as the page asks for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use tokio::task::JoinSet;

use crate::Options;
use crate::herald::{TOKEN, Target};
use crate::load::{Body, payload_json, publish_bodies};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::scenarios::{percentile, progress, scaled, targets};

/// Calls of each list timed (after one untimed call).
const ROUNDS: usize = 20;

pub(crate) async fn lists(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let client = reqwest::Client::new();
    let n_endpoints = scaled(options, 1_000);
    let n_events = scaled(options, 100_000);
    let types = n_endpoints - 1;

    let app: serde_json::Value = client
        .post(herald.url("/api/v1/app"))
        .bearer_auth(TOKEN)
        .json(&json!({"name": "Big tenant", "uid": "big"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let app = app["id"].as_str().context("app id")?.to_owned();
    // The catalogue and the endpoints, 16 calls at a time.
    let bar = progress(options, n_endpoints * 2, "endpoints");
    let mut calls = JoinSet::new();
    for k in 0..n_endpoints {
        let (client, bar) = (client.clone(), bar.clone());
        let event_type = herald.url("/api/v1/event-type");
        let endpoint = herald.url(&format!("/api/v1/app/{app}/endpoint"));
        let receiver = receiver.url(&format!("/e{k}"));
        calls.spawn(async move {
            let mut body = json!({"url": receiver, "description": format!("Endpoint {k}")});
            if k == 0 {
                body["uid"] = json!("all");
            } else {
                body["filterTypes"] = json!([format!("t{}", k - 1)]);
                client
                    .post(event_type)
                    .bearer_auth(TOKEN)
                    .json(&json!({"name": format!("t{}", k - 1), "description": "A type"}))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            bar.inc(1);
            client
                .post(endpoint)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await?
                .error_for_status()?;
            bar.inc(1);
            anyhow::Ok(())
        });
        if calls.len() >= 16 {
            calls.join_next().await.context("a call")???;
        }
    }
    while let Some(done) = calls.join_next().await {
        done??;
    }
    bar.finish_and_clear();

    // Event i is of type t(i mod types): to endpoint 0 and to one other.
    let body: Body = Arc::new(move |i| {
        let head = format!(r#"{{"eventType":"t{}","payload":"#, i % types);
        let mut body = head.into_bytes();
        body.extend_from_slice(&payload_json(i));
        body.push(b'}');
        body
    });
    let bar = progress(options, n_events, "publish");
    let published = publish_bodies(
        n_events,
        options.concurrency,
        None,
        targets(&herald, vec![app.clone()]),
        body,
        &bar,
    )
    .await;
    bar.finish_and_clear();
    anyhow::ensure!(
        published.failed == 0,
        "{} publishes failed",
        published.failed
    );
    let bar = progress(options, n_events * 2, "deliver");
    let delivered = receiver
        .wait_unique(n_events, Duration::from_secs(900), |n| {
            bar.set_position(n as u64)
        })
        .await;
    bar.finish_and_clear();
    anyhow::ensure!(delivered, "not every message was delivered");
    // Every delivery recorded, not only received: wait until endpoint 0 (uid `all`) shows
    // them all.
    let hot = "all";
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let stats = get(
            &client,
            &herald.url(&format!("/api/v1/app/{app}/endpoint/{hot}/stats")),
        )
        .await?;
        if stats["success"].as_u64() == Some(n_events as u64) {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "deliveries recorded in time: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // What the screens ask for.
    let page: serde_json::Value = get(
        &client,
        &herald.url(&format!("/api/v1/app/{app}/endpoint?limit=50")),
    )
    .await?;
    let ids: Vec<String> = page["data"]
        .as_array()
        .context("endpoints")?
        .iter()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let quiet = ids.last().context("an endpoint")?.clone();
    let msgs: serde_json::Value = get(
        &client,
        &herald.url(&format!("/api/v1/app/{app}/msg?limit=1")),
    )
    .await?;
    let msg = msgs["data"][0]["id"]
        .as_str()
        .context("a message")?
        .to_owned();
    let since = (chrono::Utc::now() - chrono::Duration::hours(24))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let health_query: String = ids.iter().map(|id| format!("endpoint_id={id}&")).collect();
    let a = format!("/api/v1/app/{app}");
    let lists: [(&'static str, String); 11] = [
        ("applications", "/api/v1/app?limit=100".to_owned()),
        ("webhooks (50)", format!("{a}/endpoint?limit=50")),
        (
            "webhooks' health (50)",
            format!("{a}/endpoint-health?{health_query}since={since}"),
        ),
        (
            "event types (250)",
            "/api/v1/event-type?limit=250".to_owned(),
        ),
        ("delivery log", format!("{a}/msg?limit=50")),
        (
            "delivery log, rare event type",
            format!("{a}/msg?limit=50&event_types=t7"),
        ),
        (
            "delivery log, busy webhook",
            format!("{a}/endpoint/{hot}/msg?limit=50"),
        ),
        (
            "delivery log, quiet webhook",
            format!("{a}/endpoint/{quiet}/msg?limit=50"),
        ),
        (
            "delivery log, failed",
            format!("{a}/endpoint/{hot}/msg?limit=50&status=2"),
        ),
        (
            "a message's attempts",
            format!("{a}/attempt/msg/{msg}?limit=250"),
        ),
        (
            "failing endpoints",
            "/api/v1/endpoint-health?limit=250".to_owned(),
        ),
    ];
    let mut report = Report::new("lists (1 app, 1,000 endpoints, 100,000 messages)");
    report.add("endpoints", n_endpoints as f64, "");
    report.add("messages", n_events as f64, "");
    let mut worst: f64 = 0.0;
    for (name, path) in lists {
        let url = herald.url(&path);
        get(&client, &url).await?;
        let mut times = Vec::with_capacity(ROUNDS);
        for _ in 0..ROUNDS {
            let start = Instant::now();
            get(&client, &url).await?;
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 50.0);
        worst = worst.max(percentile(&times, 100.0));
        report.add(name, p50, "ms p50");
    }
    report.add("slowest single call", worst, "ms");
    Ok(report)
}

async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    Ok(client
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}
