//! Two dispatchers (two nodes, each with its own node id) on one store, delivering to a
//! real HTTP receiver on loopback: what one node owns, the other never attempts; a
//! throttle and a failure streak are theirs together. Each test runs against the embedded
//! store here; a backend that can be shared by processes runs `two_nodes` against itself.

use std::sync::atomic::{AtomicI64, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use model::{Clock, Endpoint, Status};
use store::{DeliveryFilter, NodeId, Order, Page, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use transport::{DestinationPolicy, HttpTransportConfig, Transports};

use crate::schedule::RetryPolicy;
use crate::testing::{endpoint, store_with_app};
use crate::{Dispatcher, DispatcherConfig, Publish};

/// The real time, shifted by what a test adds: time can jump forward.
#[derive(Default)]
struct ShiftedClock {
    ahead_ms: AtomicI64,
}

impl ShiftedClock {
    fn advance(&self, by: Duration) {
        self.ahead_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.ahead_ms.load(Ordering::SeqCst))
    }
}

/// An HTTP/1.1 receiver on loopback: answers every request with `status` after `delay`,
/// and keeps each request's `webhook-id` with the time it arrived.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
}

impl Receiver {
    async fn start(delay: Duration) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(200));
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (s, a) = (status.clone(), arrivals.clone());
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, delay, s.clone(), a.clone()));
            }
        });
        Self {
            url,
            status,
            arrivals,
        }
    }

    fn ids(&self) -> Vec<String> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.iter().map(|(id, _)| id.clone()).collect()
    }

    fn times(&self) -> Vec<Instant> {
        let arrivals = self.arrivals.lock().unwrap();
        arrivals.iter().map(|(_, at)| *at).collect()
    }

    /// Waits until `n` requests have arrived.
    async fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.arrivals.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "{n} requests did not arrive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    delay: Duration,
    status: Arc<AtomicU16>,
    arrivals: Arc<Mutex<Vec<(String, Instant)>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        // One request: its head, then as many body bytes as it says.
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let header = |name: &str| {
            head.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                key.eq_ignore_ascii_case(name)
                    .then(|| value.trim().to_owned())
            })
        };
        let length: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let id = header("webhook-id").unwrap_or_default();
        arrivals.lock().unwrap().push((id, Instant::now()));
        buf.drain(..head_end + length);
        tokio::time::sleep(delay).await;
        let code = status.load(Ordering::SeqCst);
        let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One store, two nodes on it, and an endpoint of one application.
struct TwoNodes {
    store: Arc<dyn Store>,
    clock: Arc<ShiftedClock>,
    nodes: [Dispatcher; 2],
    endpoint: Endpoint,
    shutdown: CancellationToken,
    workers: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

struct Setup {
    lease: Duration,
    auto_disable_after: Option<Duration>,
    rate: Option<u32>,
    record_linger: Duration,
}

impl TwoNodes {
    async fn start(receiver: &Receiver, setup: Setup) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (store, app) = store_with_app(dir.path()).await;
        let mut ep = endpoint(None, None, false);
        ep.app_id = app.id.clone();
        ep.url = receiver.url.clone();
        ep.rate_limit = setup.rate;
        ep.secret = model::Secret::from_string("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let endpoint = store.create_endpoint(ep).await.unwrap();
        let clock = Arc::new(ShiftedClock::default());
        let node = |id| {
            let transports = Transports::new(HttpTransportConfig {
                timeout: setup.lease / 3,
                max_response_bytes: 1024,
                user_agent: "Herald/test".into(),
                max_idle_per_host: 8,
                destinations: DestinationPolicy {
                    allow: vec!["127.0.0.0/8".parse().unwrap()],
                    deny: Vec::new(),
                    https_only: false,
                },
                extra_roots: Vec::new(),
            })
            .unwrap();
            Dispatcher::new(
                store.clone(),
                transports,
                clock.clone(),
                DispatcherConfig {
                    node: NodeId(id),
                    retry: RetryPolicy {
                        schedule: Vec::new(),
                        jitter: 0.0,
                        max_retry_after: Duration::from_secs(1),
                    },
                    max_in_flight: 8,
                    max_in_flight_per_endpoint: 1,
                    max_queued: 1000,
                    max_queued_per_endpoint: 1000,
                    lease: setup.lease,
                    poll_interval: Duration::from_millis(50),
                    poll_batch: 100,
                    drain_timeout: Duration::from_secs(1),
                    record_linger: setup.record_linger,
                    entity_retention: Duration::from_secs(3600),
                    retention: None,
                    auto_disable_after: setup.auto_disable_after,
                    operator_app: None,
                    export_traces: false,
                },
            )
        };
        let nodes = [node(1), node(2)];
        let shutdown = CancellationToken::new();
        let workers = nodes
            .iter()
            .map(|d| {
                let (d, shutdown) = (d.clone(), shutdown.clone());
                tokio::spawn(async move { d.run(shutdown).await })
            })
            .collect();
        Self {
            store,
            clock,
            nodes,
            endpoint,
            shutdown,
            workers,
            _dir: dir,
        }
    }

    /// Publishes a message through node `i`; returns its id.
    async fn publish(&self, i: usize) -> String {
        let ingested = self.nodes[i]
            .ingest(Publish::event(
                self.endpoint.app_id.clone(),
                "order.created".into(),
                Arc::from("{}"),
            ))
            .await
            .unwrap();
        ingested.message.id.as_str().to_owned()
    }

    /// Waits until `n` deliveries to the endpoint are recorded with `status`.
    async fn wait_recorded(&self, n: usize, status: Status) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let page = Page {
                limit: 10_000,
                cursor: None,
                order: Order::Ascending,
            };
            let filter = DeliveryFilter {
                status: Some(status),
                ..Default::default()
            };
            let recorded = self
                .store
                .list_endpoint_deliveries(&self.endpoint.app_id, &self.endpoint.id, &filter, &page)
                .await
                .unwrap();
            if recorded.len() >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{n} deliveries were not recorded {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn streak(&self) -> Option<DateTime<Utc>> {
        let failing = self.store.failing_endpoints().await.unwrap();
        failing
            .into_iter()
            .find(|(id, _)| *id == self.endpoint.id)
            .map(|(_, since)| since)
    }

    async fn disabled(&self) -> bool {
        let endpoint = self
            .store
            .get_endpoint(&self.endpoint.app_id, self.endpoint.id.as_str())
            .await
            .unwrap()
            .unwrap();
        endpoint.disabled
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for worker in self.workers {
            worker.await.unwrap();
        }
    }
}

/// Each node queues 20 deliveries of its own to a receiver that takes 150 ms each, one at
/// a time per node: the last ones wait in memory far longer than a lease (2 s). They keep
/// their leases (renewed while queued, checked before the attempt), so neither node's
/// polls take the other's deliveries: every message arrives exactly once, and no write
/// of either node is refused as stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_never_attempt_one_delivery_while_queues_outlast_leases() {
    let receiver = Receiver::start(Duration::from_millis(150)).await;
    let nodes = TwoNodes::start(
        &receiver,
        Setup {
            lease: Duration::from_secs(2),
            auto_disable_after: None,
            rate: None,
            record_linger: Duration::ZERO,
        },
    )
    .await;
    let mut published = Vec::new();
    for i in 0..40 {
        published.push(nodes.publish(i % 2).await);
    }
    nodes.wait_recorded(published.len(), Status::Success).await;
    // The positive signal that nothing more is on its way: a later message through each
    // node arrives after everything before it was recorded.
    let sentinels = [nodes.publish(0).await, nodes.publish(1).await];
    receiver.wait_for(published.len() + 2).await;
    nodes
        .wait_recorded(published.len() + 2, Status::Success)
        .await;

    let mut arrived = receiver.ids();
    arrived.sort();
    let mut expected: Vec<String> = published.iter().chain(&sentinels).cloned().collect();
    expected.sort();
    assert_eq!(arrived, expected, "every message arrived exactly once");
    assert_eq!(
        nodes.nodes[0].stale_writes() + nodes.nodes[1].stale_writes(),
        0
    );
    nodes.stop().await;
}

/// The recorder waits for fuller batches only while attempts finish together: with a
/// linger far longer than the test may take, deliveries finishing one at a time (one
/// endpoint, one attempt in flight, a receiver taking 300 ms) are each recorded at once.
/// (Waiting for a batch of 128 at their rate of about three a second would take
/// longer than `wait_recorded` allows.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_finishing_one_at_a_time_never_wait() {
    let receiver = Receiver::start(Duration::from_millis(300)).await;
    let nodes = TwoNodes::start(
        &receiver,
        Setup {
            lease: Duration::from_secs(30),
            auto_disable_after: None,
            rate: None,
            record_linger: Duration::from_secs(3600),
        },
    )
    .await;
    for n in 1..=5 {
        nodes.publish(0).await;
        nodes.wait_recorded(n, Status::Success).await;
    }
    nodes.stop().await;
}

/// An endpoint with a `throttleRate` of 10 gets at most 10 attempts a second from both
/// nodes together: 20 messages, half through each node, take at least 19 intervals of
/// 100 ms from the first publish (each node pacing alone would take half that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_is_shared_by_two_nodes() {
    let receiver = Receiver::start(Duration::ZERO).await;
    let nodes = TwoNodes::start(
        &receiver,
        Setup {
            lease: Duration::from_secs(30),
            auto_disable_after: None,
            rate: Some(10),
            record_linger: Duration::ZERO,
        },
    )
    .await;
    let start = Instant::now();
    for i in 0..20 {
        nodes.publish(i % 2).await;
    }
    receiver.wait_for(20).await;
    let last = receiver.times().into_iter().max().unwrap();
    let span = last - start;
    assert!(
        span >= Duration::from_millis(1800),
        "20 attempts at 10 per second took only {span:?}"
    );
    nodes.stop().await;
}

/// A failure streak is one per endpoint, kept in the store: node A's failure starts it;
/// node B's success, which B never knew ended a streak, still ends it for A, whose next
/// failure after the window restarts the streak instead of disabling; and B, which never
/// saw a failure before, disables the endpoint once the streak A's failure started has
/// lasted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_streak_is_shared_by_two_nodes() {
    let receiver = Receiver::start(Duration::ZERO).await;
    let window = Duration::from_secs(60);
    let nodes = TwoNodes::start(
        &receiver,
        Setup {
            lease: Duration::from_secs(30),
            auto_disable_after: Some(window),
            rate: None,
            record_linger: Duration::ZERO,
        },
    )
    .await;
    receiver.status.store(500, Ordering::SeqCst);
    nodes.publish(0).await;
    nodes.wait_recorded(1, Status::Fail).await;
    let first = nodes.streak().await.expect("A's failure started a streak");

    receiver.status.store(200, Ordering::SeqCst);
    nodes.publish(1).await;
    nodes.wait_recorded(1, Status::Success).await;

    // The window passes; A fails again. A's own copy says failing since `first`, but B's
    // success ended that streak: a new one starts now, and nothing is disabled.
    nodes.clock.advance(window + Duration::from_secs(1));
    receiver.status.store(500, Ordering::SeqCst);
    nodes.publish(0).await;
    nodes.wait_recorded(2, Status::Fail).await;
    let restarted = nodes.streak().await.expect("a streak is recorded");
    assert!(
        restarted > first + chrono::Duration::seconds(60),
        "{first} -> {restarted}"
    );
    assert!(!nodes.disabled().await);

    // The window passes again; B fails for the first time it knows of, joins the streak
    // A restarted, finds it lasted and disables the endpoint.
    nodes.clock.advance(window + Duration::from_secs(1));
    nodes.publish(1).await;
    nodes.wait_recorded(3, Status::Fail).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nodes.disabled().await {
        assert!(Instant::now() < deadline, "the endpoint was not disabled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(nodes.streak().await, None, "disabling ends the streak");
    nodes.stop().await;
}
