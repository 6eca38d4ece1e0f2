//! The load generator: publishes through Herald's API (or posts straight to the receiver,
//! for the ceiling) with a fixed number of concurrent keep-alive clients.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
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

/// `payload(i)` as JSON text: what `ceiling` posts, and what a publish carries.
pub(crate) fn payload_json(i: usize) -> Vec<u8> {
    serde_json::to_vec(&payload(i)).expect("json")
}

/// What the scenarios publish unless they say otherwise: `payload(i)` as `order.created`.
/// The payload's text is built exactly as `ceiling` builds it and wrapped as bytes, so the
/// load generator spends the same CPU on a body in both (`json!` with the payload inside
/// would copy the whole document once more through `to_value`: 10 % of the benchmark's
/// CPU in `throughput`).
pub(crate) fn order_created() -> Body {
    Arc::new(|i| {
        const HEAD: &[u8] = br#"{"eventType":"order.created","payload":"#;
        let payload = payload_json(i);
        let mut body = Vec::with_capacity(HEAD.len() + payload.len() + 1);
        body.extend_from_slice(HEAD);
        body.extend_from_slice(&payload);
        body.push(b'}');
        body
    })
}

pub(crate) struct Published {
    /// When each accepted message's publish request was sent, by message id.
    pub(crate) sent: HashMap<String, Instant>,
    pub(crate) elapsed: Duration,
    pub(crate) failed: usize,
}

/// Publishes `n` events to the URLs `target(i)` gives (an app's msg endpoint), with
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

/// One keep-alive HTTP/1.1 connection, used by one publisher at a time: plain hyper, so
/// that the load generator spends as little CPU as it can on this 2-core machine (it
/// shares the cores with Herald), and the same client measures `ceiling`.
struct Connection {
    authority: String,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(url: &str) -> Self {
        let (authority, _) = split_url(url);
        Self {
            authority: authority.to_owned(),
            sender: None,
        }
    }

    /// Sends one request, (re)connecting if needed; returns the status and the body.
    async fn send(
        &mut self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, Bytes)> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(&self.authority).await?;
            stream.set_nodelay(true)?;
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await?;
        let mut request = hyper::Request::post(path)
            .header(hyper::header::HOST, self.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = sender
            .send_request(request.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// `http://host:port/path?query` → (`host:port`, `/path?query`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").expect("an http:// URL");
    match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    }
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
    #[derive(serde::Deserialize)]
    struct Accepted {
        id: String,
    }
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, target, body, progress) =
            (next.clone(), target.clone(), body.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut failed = 0;
            // One connection per server: publishes may go to several Herald nodes.
            let mut conns: Vec<Connection> = Vec::new();
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
                let url = format!("{}?with_content=false", target(i));
                let (authority, path) = split_url(&url);
                let k = match conns.iter().position(|c| c.authority == authority) {
                    Some(k) => k,
                    None => {
                        conns.push(Connection::new(&url));
                        conns.len() - 1
                    }
                };
                let at = Instant::now();
                match conns[k].send(path, Some(TOKEN), body).await {
                    Ok((status, body)) if (200..300).contains(&status) => {
                        match serde_json::from_slice::<Accepted>(&body) {
                            Ok(accepted) => sent.push((accepted.id, at)),
                            Err(_) => failed += 1,
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

/// Posts `n` event bodies straight to `url` with `concurrency` clients (the same client
/// as the publishers); returns the time taken.
pub(crate) async fn post_direct(
    n: usize,
    concurrency: usize,
    url: String,
    progress: &ProgressBar,
) -> Duration {
    let next = Arc::new(AtomicUsize::new(0));
    let url = Arc::new(url);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (next, url, progress) = (next.clone(), url.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Connection::new(&url);
            let path = split_url(&url).1;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let body = payload_json(i);
                let _ = conn.send(path, None, body).await;
                progress.inc(1);
            }
        }));
    }
    for task in tasks {
        task.await.expect("poster task");
    }
    start.elapsed()
}
