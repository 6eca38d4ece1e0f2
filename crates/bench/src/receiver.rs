//! The loopback receiver: answers 200 (or after a delay, or 500 for a share of requests)
//! and records when each `webhook-id` first arrived on each path. Every figure of the
//! benchmark comes from here, not from what Herald reports.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::sync::{Notify, oneshot};

#[derive(Default)]
pub(crate) struct Behaviour {
    /// Answer after this many milliseconds.
    pub(crate) delay_ms: AtomicU64,
    /// Answer 500 to this many requests in 1000 (at random).
    pub(crate) fail_permille: AtomicU32,
}

#[derive(Default)]
struct Seen {
    /// First arrival per (path, webhook-id).
    first: HashMap<(String, String), Instant>,
    /// Requests without a webhook-id (the ceiling scenario).
    anonymous: u64,
}

pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    pub(crate) behaviour: Arc<Behaviour>,
    seen: Arc<Mutex<Seen>>,
    requests: Arc<AtomicU64>,
    arrived: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
}

#[derive(Clone)]
struct AppState {
    behaviour: Arc<Behaviour>,
    seen: Arc<Mutex<Seen>>,
    requests: Arc<AtomicU64>,
    arrived: Arc<Notify>,
}

impl Receiver {
    /// A port on loopback that nothing listens on yet (a receiver that is down).
    pub(crate) fn free_port() -> anyhow::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        Ok(listener.local_addr()?)
    }

    pub(crate) async fn start() -> anyhow::Result<Self> {
        Self::start_on(Self::free_port()?).await
    }

    pub(crate) async fn start_on(addr: SocketAddr) -> anyhow::Result<Self> {
        let state = AppState {
            behaviour: Arc::new(Behaviour::default()),
            seen: Arc::new(Mutex::new(Seen::default())),
            requests: Arc::new(AtomicU64::new(0)),
            arrived: Arc::new(Notify::new()),
        };
        // A backlog of 1024, as servers that expect bursts of connections set (nginx 511,
        // Go's somaxconn), not the standard library's 128: Herald opens up to
        // `max_in_flight_per_endpoint` connections per endpoint at once, 320 in `fanout`,
        // and a SYN dropped on overflow is retried only after a second.
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(1024)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let router = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Self {
            addr,
            behaviour: state.behaviour,
            seen: state.seen,
            requests: state.requests,
            arrived: state.arrived,
            stop: Some(stop),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub(crate) fn unique(&self) -> usize {
        self.seen.lock().unwrap().first.len()
    }

    pub(crate) fn anonymous(&self) -> u64 {
        self.seen.lock().unwrap().anonymous
    }

    /// First arrival of each webhook-id on `path`.
    pub(crate) fn arrivals(&self) -> HashMap<(String, String), Instant> {
        self.seen.lock().unwrap().first.clone()
    }

    /// Waits until `n` unique deliveries arrived, calling `tick` as they do. Returns
    /// false if `within` passed first.
    pub(crate) async fn wait_unique(
        &self,
        n: usize,
        within: Duration,
        mut tick: impl FnMut(usize),
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.arrived.notified();
            let got = self.unique();
            tick(got);
            if got >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            })
            .await
            .is_err()
            {
                return false;
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn receive(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    _body: axum::body::Bytes,
) -> StatusCode {
    let now = Instant::now();
    state.requests.fetch_add(1, Ordering::Relaxed);
    let delay = state.behaviour.delay_ms.load(Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let fail = state.behaviour.fail_permille.load(Ordering::Relaxed);
    if fail > 0 && rand::random_range(0..1000) < fail {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    {
        let mut seen = state.seen.lock().unwrap();
        match headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
            Some(id) => {
                seen.first
                    .entry((uri.path().to_owned(), id.to_owned()))
                    .or_insert(now);
            }
            None => seen.anonymous += 1,
        }
    }
    state.arrived.notify_waiters();
    StatusCode::OK
}
