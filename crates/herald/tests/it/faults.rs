//! Receivers that misbehave: nothing listening, a connection closed or reset mid-response,
//! 5xx with a long body, 429 with `Retry-After` (seconds and HTTP date), 410 Gone (which
//! disables the endpoint), a response that never ends, a 50 MiB body, a response
//! trickled a byte at a time, a self-signed certificate, and a dead endpoint with 10,000
//! deliveries waiting beside a healthy one. Each test checks the attempts Herald recorded
//! through the public API. The misbehaving receivers are raw sockets (`RawReceiver`,
//! `tls_receiver`); well-behaved ones are `support::Receiver`. `docs/RELIABILITY.md` has
//! the table of outcomes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use crate::support::{Herald, Receiver, WAIT};

/// Response bodies are recorded up to this many bytes.
const RECORDED: usize = 20 * 1024;

#[tokio::test]
async fn connection_refused_is_recorded_and_retried() {
    let herald = Herald::start().await;
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = herald.app("acme").await;
    herald
        .endpoint(
            &app,
            json!({"url": format!("http://127.0.0.1:{port}/hook")}),
        )
        .await;
    let msg = publish(&herald, &app).await;

    let attempts = oldest_first(&herald.msg_attempts(&app, &msg, 2).await);
    for a in &attempts[..2] {
        assert_eq!(a["errorKind"], "connection_refused", "{a}");
        assert_eq!(a["responseStatusCode"], 0);
        assert_eq!(a["status"], 2);
    }
}

#[tokio::test]
async fn a_connection_closed_or_reset_mid_response_is_retried() {
    let herald = Herald::start().await;
    let (receiver, attempts) =
        attempts_after(&herald, [Fault::Close, Fault::ResetMidResponse], 3).await;
    let kinds: Vec<&Value> = attempts.iter().map(|a| &a["errorKind"]).collect();
    assert_eq!(
        kinds,
        [&json!("connection"), &json!("connection"), &Value::Null]
    );
    assert_eq!(attempts[0]["responseStatusCode"], 0);
    assert_eq!(attempts[1]["responseStatusCode"], 0);
    assert_eq!(attempts[2]["status"], 0, "the third attempt is delivered");
    assert_eq!(receiver.hits().len(), 3);
}

#[tokio::test]
async fn a_5xx_records_its_status_and_the_first_20_kib_of_its_body() {
    let herald = Herald::start().await;
    let body: Vec<u8> = (0..30 * 1024)
        .map(|i| b"0123456789abcdef"[i % 16])
        .collect();
    let fault = Fault::Answer {
        status: 503,
        headers: vec![],
        body: body.clone(),
    };
    let (_receiver, attempts) = attempts_after(&herald, [fault], 2).await;
    let failed = &attempts[0];
    assert_eq!(failed["responseStatusCode"], 503);
    assert_eq!(failed["errorKind"], "status");
    assert_eq!(failed["status"], 2);
    assert_eq!(
        failed["response"].as_str().unwrap().as_bytes(),
        &body[..RECORDED]
    );
    assert_eq!(attempts[1]["status"], 0, "retried and delivered");
}

#[tokio::test]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let herald = Herald::start().await;
    // Where the redirect points: an allowed loopback receiver, which must get nothing.
    let elsewhere = Receiver::start().await;
    let redirect = Fault::Answer {
        status: 307,
        headers: vec![("location", elsewhere.url("/elsewhere"))],
        body: Vec::new(),
    };
    let (_receiver, attempts) = attempts_after(&herald, [redirect], 2).await;
    assert_eq!(
        (
            &attempts[0]["responseStatusCode"],
            &attempts[0]["errorKind"],
            &attempts[0]["status"]
        ),
        (&json!(307), &json!("status"), &json!(2))
    );
    assert_eq!(
        attempts[1]["status"], 0,
        "retried at the endpoint's own URL"
    );
    assert!(elsewhere.received().is_empty(), "the redirect was followed");
}

#[tokio::test]
async fn retry_after_holds_the_next_attempt_back_beyond_a_shorter_schedule() {
    let herald = Herald::start_with(&["--retry-schedule", "100ms,100ms,100ms"]).await;
    let receiver = RawReceiver::start(Fault::ok()).await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/hook")}))
        .await;

    // Delay-seconds.
    receiver.script([Fault::too_many_requests("1".into())]);
    let msg = publish(&herald, &app).await;
    let attempts = oldest_first(&herald.msg_attempts(&app, &msg, 2).await);
    assert_eq!(attempts[0]["responseStatusCode"], 429);
    assert_eq!(attempts[0]["errorKind"], "status");
    assert_eq!(attempts[1]["status"], 0);
    let hits = receiver.hits();
    let waited = hits[1].at - hits[0].at;
    // Herald keeps times in milliseconds; the schedule alone would wait about 100 ms.
    assert!(
        waited >= Duration::from_millis(990),
        "second attempt after {waited:?}"
    );
    assert!(recorded_at(&attempts[1]) - recorded_at(&attempts[0]) >= chrono::Duration::seconds(1));

    // An HTTP date, between one and two seconds ahead (HTTP dates have whole seconds).
    let whole = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    let not_before = UNIX_EPOCH + Duration::from_secs(whole);
    let date = chrono::DateTime::<chrono::Utc>::from(not_before)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    receiver.script([Fault::too_many_requests(date)]);
    let msg = publish(&herald, &app).await;
    let attempts = oldest_first(&herald.msg_attempts(&app, &msg, 2).await);
    assert_eq!(attempts[0]["responseStatusCode"], 429);
    assert_eq!(attempts[1]["status"], 0);
    let retried = receiver.hits()[3].wall;
    assert!(
        retried >= not_before,
        "retried {:?} before the date",
        not_before.duration_since(retried).unwrap_or_default()
    );
}

#[tokio::test]
async fn gone_disables_the_endpoint() {
    let herald = Herald::start().await;
    let gone = Receiver::start().await;
    gone.script(&[500]);
    gone.set_status(410);
    let healthy = Receiver::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(&app, json!({"url": gone.url("/gone")}))
        .await;
    let ep_id = ep["id"].as_str().unwrap();
    herald
        .endpoint(&app, json!({"url": healthy.url("/ok")}))
        .await;

    // m0 fails with 500 and waits for its retry; m1 then gets 410 Gone.
    let m0 = publish(&herald, &app).await;
    gone.wait_for("/gone", 1, WAIT).await;
    let m1 = publish(&herald, &app).await;
    let ep_path = format!("/api/v1/app/{app}/endpoint/{ep_id}");
    herald
        .until(&ep_path, WAIT, |e| e["disabled"] == true)
        .await;

    // The 410 is recorded and its delivery failed at once, with no retry scheduled.
    let gone_attempts = herald.msg_attempts(&app, &m1, 2).await;
    let a = find(&gone_attempts, "endpointId", ep_id);
    assert_eq!(
        (&a["responseStatusCode"], &a["errorKind"], &a["status"]),
        (&json!(410), &json!("status"), &json!(2))
    );
    let deliveries = herald
        .get(&format!(
            "/api/v1/app/{app}/msg/{}/endpoint",
            m1["id"].as_str().unwrap()
        ))
        .await;
    let d = find(&deliveries, "id", ep_id);
    assert_eq!((&d["status"], &d["nextAttempt"]), (&json!(2), &Value::Null));

    // m0's retry, due after the endpoint was disabled, is refused without a request.
    let path = format!("/api/v1/app/{app}/attempt/endpoint/{ep_id}");
    let m0_id = m0["id"].as_str().unwrap().to_owned();
    let attempts = herald
        .until(&path, WAIT, |b| {
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["msgId"] == m0_id.as_str() && a["errorKind"] == "refused")
        })
        .await;
    let refused = find(&attempts, "errorKind", "refused");
    assert_eq!(refused["response"], "endpoint is disabled");

    // A later message goes only to the healthy endpoint.
    let m2 = publish(&herald, &app).await;
    healthy.wait_for("/ok", 3, WAIT).await;
    assert_eq!(herald.destinations(&app, &m2).await, ["ok"]);
    assert_eq!(gone.received().len(), 2, "500 and 410, nothing after");
    assert_eq!(herald.get(&ep_path).await["disabled"], true);
}

#[tokio::test]
async fn a_response_that_never_ends_times_out() {
    let herald =
        Herald::start_with(&["--retry-schedule", "1s,1s,1s", "--attempt-timeout", "1s"]).await;
    let (_receiver, attempts) = attempts_after(&herald, [Fault::Hang], 2).await;
    let a = &attempts[0];
    assert_eq!(
        (&a["errorKind"], &a["status"]),
        (&json!("timeout"), &json!(2))
    );
    // The headers arrived, so their status is recorded; the unfinished body makes it a failure.
    assert_eq!(a["responseStatusCode"], 200);
    assert_bounded_by_timeout(a);
    assert_eq!(attempts[1]["status"], 0, "retried and delivered");
}

#[tokio::test]
async fn a_trickling_response_is_cut_at_the_attempt_timeout() {
    let herald =
        Herald::start_with(&["--retry-schedule", "1s,1s,1s", "--attempt-timeout", "1s"]).await;
    let trickle = Fault::Trickle(Duration::from_millis(500));
    let (_receiver, attempts) = attempts_after(&herald, [trickle], 2).await;
    let a = &attempts[0];
    assert_eq!(
        (&a["errorKind"], &a["status"]),
        (&json!("timeout"), &json!(2))
    );
    assert_eq!(a["responseStatusCode"], 0, "the status line never finished");
    assert_bounded_by_timeout(a);
    assert_eq!(attempts[1]["status"], 0, "retried and delivered");
}

#[tokio::test]
async fn a_huge_response_body_is_read_only_up_to_20_kib() {
    const HUGE: usize = 50 * 1024 * 1024;
    let herald = Herald::start().await;
    let receiver = RawReceiver::start(Fault::Huge {
        status: 200,
        len: HUGE,
    })
    .await;
    receiver.script([Fault::Huge {
        status: 500,
        len: HUGE,
    }]);
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/hook")}))
        .await;
    let peak_before = peak_rss_kib(&herald);
    let msg = publish(&herald, &app).await;

    // The result follows the status; the body is cut at 20 KiB either way.
    let attempts = oldest_first(&herald.msg_attempts(&app, &msg, 2).await);
    let results: Vec<(&Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["responseStatusCode"], &a["status"]))
        .collect();
    assert_eq!(
        results,
        [(&json!(500), &json!(2)), (&json!(200), &json!(0))]
    );
    for a in &attempts {
        assert_eq!(a["response"].as_str().unwrap().len(), RECORDED);
    }
    // Herald stopped reading: most of each body was never taken off the socket.
    let streamed = receiver.streamed();
    assert_eq!(streamed.len(), 2);
    assert!(streamed.iter().all(|&n| n < HUGE / 2), "{streamed:?}");
    if let (Some(before), Some(after)) = (peak_before, peak_rss_kib(&herald)) {
        println!("huge bodies: Herald's peak RSS {before} KiB before, {after} KiB after");
        assert!(
            after.saturating_sub(before) < 16 * 1024,
            "peak RSS grew from {before} KiB to {after} KiB"
        );
    }
}

#[tokio::test]
async fn a_self_signed_certificate_fails_with_tls_and_delivers_nothing() {
    let herald = Herald::start().await;
    let (addr, seen) = tls_receiver().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": format!("https://{addr}/hook")}))
        .await;
    let msg = publish(&herald, &app).await;

    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    let a = &attempts["data"][0];
    assert_eq!(a["errorKind"], "tls", "{a}");
    assert_eq!(
        (&a["status"], &a["responseStatusCode"]),
        (&json!(2), &json!(0))
    );
    assert!(seen.connections.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        seen.handshakes.load(Ordering::SeqCst),
        0,
        "no handshake completed, so no request was sent"
    );
}

#[tokio::test]
async fn a_dead_endpoint_with_10000_pending_deliveries_does_not_delay_a_healthy_one() {
    const BACKLOG: usize = 10_000;
    let herald = Herald::start().await;
    let setup = dead_and_healthy(&herald, BACKLOG).await;
    let stats = herald
        .get(&format!(
            "/api/v1/app/{}/endpoint/{}/stats",
            setup.app,
            setup.dead_endpoint["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stats["success"], 0);
    assert!(stats["fail"].as_u64() == Some(0), "{stats}");

    let latencies = healthy_latencies(&herald, &setup, 1).await;
    println!(
        "isolation: {BACKLOG} published for the dead endpoint in {:?}; \
         publish → delivery for the healthy endpoint: {latencies:?}",
        setup.published
    );
    let worst = latencies.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(5), "{latencies:?}");
}

/// One endpoint's backlog larger than all of memory (`max_queued`) leaves room for the
/// others: the dead endpoint holds at most `max_queued_per_endpoint` deliveries in memory,
/// the rest wait in the store, and polls let endpoints take turns. So a healthy
/// endpoint's new deliveries are attempted at once, and its retries, which come back
/// through the store, are leased ahead of the dead endpoint's older backlog.
#[tokio::test]
async fn a_dead_endpoints_backlog_beyond_memory_does_not_starve_a_healthy_one() {
    const BACKLOG: usize = 1_000;
    let herald = Herald::start_with(&[
        "--retry-schedule",
        "1s,1s,1s",
        "--max-queued",
        "200",
        "--max-queued-per-endpoint",
        "64",
    ])
    .await;
    let setup = dead_and_healthy(&herald, BACKLOG).await;
    // Every first attempt at the healthy endpoint fails: each delivery is retried a
    // second later from the store, where 900-odd older deliveries of the dead endpoint
    // are due too.
    setup.healthy.script(&[500; HEALTHY_MESSAGES]);
    let latencies = healthy_latencies(&herald, &setup, 2).await;
    println!(
        "isolation beyond memory: {BACKLOG} pending for the dead endpoint, max_queued 200; \
         publish → delivered retry at the healthy endpoint: {latencies:?}"
    );
    let worst = latencies.iter().max().unwrap();
    assert!(*worst < Duration::from_secs(5), "{latencies:?}");
}

/// A dead endpoint with a backlog and a healthy one, in one application.
struct DeadAndHealthy {
    /// Accepts, reads each request, never answers: every attempt holds its slot until the
    /// attempt timeout (30 s), longer than these tests.
    _dead: RawReceiver,
    healthy: Receiver,
    app: String,
    dead_endpoint: Value,
    /// How long publishing the backlog took.
    published: Duration,
}

/// Sets up `DeadAndHealthy` and publishes `backlog` messages for the dead endpoint (type
/// `load.dead`; the healthy one takes `load.ok`), waiting for its first attempt.
async fn dead_and_healthy(herald: &Herald, backlog: usize) -> DeadAndHealthy {
    let dead = RawReceiver::start(Fault::Silent).await;
    let healthy = Receiver::start().await;
    let app = herald.app("acme").await;
    let dead_endpoint = herald
        .endpoint(
            &app,
            json!({"url": dead.url("/dead"), "filterTypes": ["load.dead"]}),
        )
        .await;
    herald
        .endpoint(
            &app,
            json!({"url": healthy.url("/ok"), "filterTypes": ["load.ok"]}),
        )
        .await;
    let started = Instant::now();
    futures::stream::iter(0..backlog)
        .map(|i| herald.publish(&app, json!({"eventType": "load.dead", "payload": {"i": i}})))
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    let published = started.elapsed();
    dead.wait_for(1).await;
    DeadAndHealthy {
        _dead: dead,
        healthy,
        app,
        dead_endpoint,
        published,
    }
}

const HEALTHY_MESSAGES: usize = 5;

/// Publishes `HEALTHY_MESSAGES` for the healthy endpoint; returns, for each, the time from
/// its publish to its `tries`-th request (each is asserted to get exactly that many).
async fn healthy_latencies(herald: &Herald, setup: &DeadAndHealthy, tries: usize) -> Vec<Duration> {
    let mut sent = Vec::new();
    for i in 0..HEALTHY_MESSAGES {
        let at = Instant::now();
        let msg = herald
            .publish(
                &setup.app,
                json!({"eventType": "load.ok", "payload": {"i": i}}),
            )
            .await;
        sent.push((msg["id"].as_str().unwrap().to_owned(), at));
    }
    let got = setup
        .healthy
        .wait_for("/ok", tries * sent.len(), WAIT)
        .await;
    sent.iter()
        .map(|(id, at)| {
            let requests: Vec<_> = got
                .iter()
                .filter(|r| r.header("webhook-id") == id)
                .collect();
            assert_eq!(requests.len(), tries, "{id}: requests");
            requests[tries - 1].at - *at
        })
        .collect()
}

/// Publishes one message to an endpoint whose receiver answers with `faults` first, then
/// 200, and returns the message's first `n` attempts, oldest first.
async fn attempts_after(
    herald: &Herald,
    faults: impl IntoIterator<Item = Fault>,
    n: usize,
) -> (RawReceiver, Vec<Value>) {
    let receiver = RawReceiver::start(Fault::ok()).await;
    receiver.script(faults);
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/hook")}))
        .await;
    let msg = publish(herald, &app).await;
    let attempts = oldest_first(&herald.msg_attempts(&app, &msg, n).await);
    (receiver, attempts)
}

/// Publishes one `order.created` message.
async fn publish(herald: &Herald, app: &str) -> Value {
    herald
        .publish(app, json!({"eventType": "order.created", "payload": {}}))
        .await
}

/// The attempts of a listing (newest first), oldest first.
fn oldest_first(listing: &Value) -> Vec<Value> {
    let mut attempts = listing["data"].as_array().unwrap().clone();
    attempts.sort_by_key(|a| a["timestamp"].as_str().unwrap().to_owned());
    attempts
}

/// The item of a listing whose `key` is `value`.
fn find<'a>(listing: &'a Value, key: &str, value: &str) -> &'a Value {
    listing["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item[key] == value)
        .unwrap_or_else(|| panic!("no {key} = {value} in {listing}"))
}

fn recorded_at(attempt: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(attempt["timestamp"].as_str().unwrap()).unwrap()
}

/// The attempt lasted the 1 s attempt timeout, and not much more.
#[track_caller]
fn assert_bounded_by_timeout(attempt: &Value) {
    let ms = attempt["responseDurationMs"].as_i64().unwrap();
    assert!((1000..5000).contains(&ms), "attempt took {ms} ms");
}

/// Herald's peak resident memory (`VmHWM`), where `/proc` has it.
fn peak_rss_kib(herald: &Herald) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", herald.pid()?)).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// What a `RawReceiver` does with a request, once it has read it whole.
#[derive(Debug, Clone)]
enum Fault {
    /// Closes the connection without writing anything.
    Close,
    /// Writes the start of a status line and headers, then resets the connection (RST).
    ResetMidResponse,
    /// A complete response, then the connection is closed.
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// A response with a body of `len` bytes, written for as long as the client reads.
    Huge { status: u16, len: usize },
    /// Headers and the first bytes of a body that never ends; the connection stays open
    /// until the client closes it.
    Hang,
    /// A complete response, one byte every so often, from the status line on.
    Trickle(Duration),
    /// Never answers; the connection stays open until the client closes it.
    Silent,
}

impl Fault {
    fn ok() -> Self {
        Self::Answer {
            status: 200,
            headers: vec![],
            body: b"ok".to_vec(),
        }
    }

    fn too_many_requests(retry_after: String) -> Self {
        Self::Answer {
            status: 429,
            headers: vec![("retry-after", retry_after)],
            body: b"slow down".to_vec(),
        }
    }
}

/// A request as a `RawReceiver` read it.
#[derive(Debug, Clone, Copy)]
struct Hit {
    at: Instant,
    wall: SystemTime,
}

/// An HTTP/1.1 server on raw loopback sockets that misbehaves as scripted: one request
/// per connection, then the scripted `Fault` (or the default one).
struct RawReceiver {
    addr: SocketAddr,
    state: Arc<RawState>,
}

struct RawState {
    default: Fault,
    script: Mutex<VecDeque<Fault>>,
    hits: Mutex<Vec<Hit>>,
    /// Body bytes written by each `Fault::Huge` response before the client stopped reading.
    streamed: Mutex<Vec<usize>>,
    arrived: Notify,
}

impl RawReceiver {
    async fn start(default: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(RawState {
            default,
            script: Mutex::new(VecDeque::new()),
            hits: Mutex::new(Vec::new()),
            streamed: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let serving = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, serving.clone()));
            }
        });
        Self { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Misbehaves with these faults for the next requests, then with the default again.
    fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state.script.lock().unwrap().extend(faults);
    }

    fn hits(&self) -> Vec<Hit> {
        self.state.hits.lock().unwrap().clone()
    }

    fn streamed(&self) -> Vec<usize> {
        self.state.streamed.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived, or fails after `WAIT`.
    async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let arrived = self.state.arrived.notified();
            if self.state.hits.lock().unwrap().len() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!("expected {n} requests within {WAIT:?}");
            }
        }
    }
}

/// Reads one request, then misbehaves.
async fn serve(mut stream: TcpStream, state: Arc<RawState>) {
    if !read_request(&mut stream).await {
        return;
    }
    let fault = {
        let next = state.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| state.default.clone())
    };
    state.hits.lock().unwrap().push(Hit {
        at: Instant::now(),
        wall: SystemTime::now(),
    });
    state.arrived.notify_waiters();
    // Write errors mean the client gave up: the fault has done its job.
    match fault {
        Fault::Close => {}
        Fault::ResetMidResponse => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/pl")
                .await;
            let _ = stream.set_zero_linger();
        }
        Fault::Answer {
            status,
            headers,
            body,
        } => {
            let mut response = head(status, &headers, body.len());
            response.extend_from_slice(&body);
            let _ = stream.write_all(&response).await;
        }
        Fault::Huge { status, len } => {
            let mut written = 0;
            if stream.write_all(&head(status, &[], len)).await.is_ok() {
                let chunk = vec![b'x'; 64 * 1024];
                while written < len {
                    let n = chunk.len().min(len - written);
                    if stream.write_all(&chunk[..n]).await.is_err() {
                        break;
                    }
                    written += n;
                }
            }
            state.streamed.lock().unwrap().push(written);
        }
        Fault::Hang => {
            let _ = stream.write_all(&head(200, &[], 1000)).await;
            let _ = stream.write_all(b"the start").await;
            until_closed(&mut stream).await;
        }
        Fault::Trickle(every) => {
            let mut response = head(200, &[], 2);
            response.extend_from_slice(b"ok");
            for byte in response {
                if stream.write_all(&[byte]).await.is_err() {
                    break;
                }
                tokio::time::sleep(every).await;
            }
        }
        Fault::Silent => until_closed(&mut stream).await,
    }
}

/// Reads a request's head and its `content-length` body; `false` if the client closed first.
async fn read_request(stream: &mut TcpStream) -> bool {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    true
}

/// A response's status line and headers, with `content-length` and `connection: close`.
fn head(status: u16, headers: &[(&str, String)], body_len: usize) -> Vec<u8> {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut text = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {body_len}\r\nconnection: close\r\n"
    );
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Holds the connection open until the client closes it.
async fn until_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// What the TLS receiver saw: TCP connections accepted, TLS handshakes completed.
#[derive(Default)]
struct TlsSeen {
    connections: AtomicUsize,
    handshakes: AtomicUsize,
}

/// An HTTPS receiver on loopback with a fresh self-signed certificate for 127.0.0.1,
/// which no client trusts. A completed handshake would be answered with 200.
async fn tls_receiver() -> (SocketAddr, Arc<TlsSeen>) {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(TlsSeen::default());
    let counting = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counting.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, counting) = (acceptor.clone(), counting.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    counting.handshakes.fetch_add(1, Ordering::SeqCst);
                    let mut response = head(200, &[], 2);
                    response.extend_from_slice(b"ok");
                    let _ = tls.write_all(&response).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, seen)
}
