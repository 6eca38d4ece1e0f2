//! The load generator: publishes through Herald's API (or posts straight to the receiver,
//! for the ceiling) with a fixed number of concurrent keep-alive clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;

use crate::herald::TOKEN;

/// A ~1 KB JSON payload, different for each event.
pub(crate) fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("order-{i}"),
        "status": "created",
        "customer": {"id": format!("cus-{}", i % 1000), "name": "Ada Lovelace", "email": "ada@example.com"},
        "lines": (0..8).map(|n| serde_json::json!({"sku": format!("SKU-{n:04}"), "qty": n + 1, "price": 12.5 * n as f64})).collect::<Vec<_>>(),
        "note": "x".repeat(420),
    })
}

/// The body of publish request `i`: JSON text for an app's msg endpoint.
pub(crate) type Body = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// What the scenarios publish unless they say otherwise: `payload(i)` as `order.created`.
pub(crate) fn order_created() -> Body {
    Arc::new(|i| {
        serde_json::to_vec(
            &serde_json::json!({"eventType": "order.created", "payload": payload(i)}),
        )
        .expect("json")
    })
}

pub(crate) struct Published {
    /// When each accepted message's publish request was sent, by message id.
    pub(crate) sent: HashMap<String, Instant>,
    pub(crate) elapsed: Duration,
    pub(crate) failed: usize,
}

/// Publishes `n` events to the URLs `targets(i)` gives (an app's msg endpoint), with
/// `concurrency` clients, optionally paced to `rate` per second in all.
pub(crate) async fn publish(
    n: usize,
    concurrency: usize,
    rate: Option<f64>,
    target: Arc<dyn Fn(usize) -> String + Send + Sync>,
    progress: &ProgressBar,
) -> Published {
    publish_bodies(n, concurrency, rate, target, order_created(), progress).await
}

/// As `publish`, with request `i` carrying `body(i)`.
pub(crate) async fn publish_bodies(
    n: usize,
    concurrency: usize,
    rate: Option<f64>,
    target: Arc<dyn Fn(usize) -> String + Send + Sync>,
    body: Body,
    progress: &ProgressBar,
) -> Published {
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, client, target, body, progress) = (
            next.clone(),
            client.clone(),
            target.clone(),
            body.clone(),
            progress.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut failed = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Some(rate) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = body(i);
                let at = Instant::now();
                let response = client
                    .post(format!("{}?with_content=false", target(i)))
                    .bearer_auth(TOKEN)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let out: serde_json::Value = r.json().await.unwrap_or_default();
                        if let Some(id) = out["id"].as_str() {
                            sent.push((id.to_owned(), at));
                        }
                    }
                    _ => failed += 1,
                }
                progress.inc(1);
            }
            (sent, failed)
        }));
    }
    let mut published = Published {
        sent: HashMap::with_capacity(n),
        elapsed: Duration::ZERO,
        failed: 0,
    };
    for task in tasks {
        let (sent, failed) = task.await.expect("publisher task");
        published.sent.extend(sent);
        published.failed += failed;
    }
    published.elapsed = start.elapsed();
    published
}

/// Posts `n` event bodies straight to `url` with `concurrency` clients; returns the time taken.
pub(crate) async fn post_direct(
    n: usize,
    concurrency: usize,
    url: String,
    progress: &ProgressBar,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let url = Arc::new(url);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, client, url, progress) =
            (next.clone(), client.clone(), url.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = serde_json::to_vec(&payload(i)).expect("json");
                let _ = client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                progress.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await.expect("poster task");
    }
    start.elapsed()
}
