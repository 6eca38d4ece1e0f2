//! Test harness: `Herald` (the binary, started and killed), `Receiver` (a real HTTP
//! server whose answers can change mid-test), and small API helpers.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "test-admin-token";

/// An HTTP client for tests (rustls needs its crypto provider chosen once per process).
pub fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// A running Herald. Killed (SIGKILL) when dropped.
pub struct Herald {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    client: reqwest::Client,
    _tmp: Option<tempfile::TempDir>,
}

impl Herald {
    /// Starts Herald on a fresh data directory with a fast retry schedule.
    pub async fn start() -> Self {
        Self::start_with(&["--retry-schedule", "1s,1s,1s"]).await
    }

    pub async fn start_with(extra: &[&str]) -> Self {
        Self::start_with_env(extra, &[]).await
    }

    /// As `start_with`, with these `HERALD_*` variables set.
    pub async fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--allow-destination", "127.0.0.0/8,::1"];
        args.extend_from_slice(extra);
        let mut herald = Self::spawn(tmp.path(), &args, env).await;
        herald._tmp = Some(tmp);
        herald
    }

    /// Starts Herald on `data_dir` (which may hold a previous run's store), allowed to
    /// deliver to loopback, where the tests' receivers and broker listen.
    pub async fn start_in(data_dir: &Path, extra: &[&str]) -> Self {
        let mut args = vec!["--allow-destination", "127.0.0.0/8,::1"];
        args.extend_from_slice(extra);
        Self::spawn(data_dir, &args, &[]).await
    }

    /// Starts a node on the PostgreSQL database at `database_url` (allowed to deliver to
    /// loopback), with a data directory of its own that it does not use.
    pub async fn start_on(database_url: &str, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut args = vec!["--database-url", database_url];
        args.extend_from_slice(extra);
        let mut herald = Self::start_in(tmp.path(), &args).await;
        herald._tmp = Some(tmp);
        herald
    }

    /// Sends a signal (`STOP`, `CONT`, …) to Herald.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("herald runs");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// Starts Herald with its default destination policy: public addresses only, so
    /// every loopback destination is refused.
    pub async fn start_strict(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut herald = Self::spawn(tmp.path(), extra, &[]).await;
        herald._tmp = Some(tmp);
        herald
    }

    async fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
        cmd.args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--admin-token",
            TOKEN,
            "--poll-interval",
            "50ms",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("HERALD_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("the herald binary starts");
        let stdout = child.stdout.take().unwrap();
        let addr = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            for line in lines.by_ref() {
                let line = line.unwrap();
                if let Some(url) = line.strip_prefix("Herald listening on http://") {
                    let addr: SocketAddr = url.trim().parse().unwrap();
                    // Keep draining stdout so Herald never blocks on a full pipe.
                    std::thread::spawn(move || for _ in lines {});
                    return addr;
                }
            }
            panic!("herald exited before listening");
        })
        .await
        .unwrap();
        Self {
            child: Some(child),
            addr,
            data_dir: data_dir.to_owned(),
            client: http_client(),
            _tmp: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The process id, while Herald runs (for reading `/proc/<pid>/status`).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends a request with the admin token; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(method, path, body, Some(TOKEN), &[]).await
    }

    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("herald answers");
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body for {path}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, out) = self.call(Method::POST, path, Some(body)).await;
        assert!(status.is_success(), "POST {path}: {status} {out}");
        out
    }

    /// Creates an application and returns its id.
    pub async fn app(&self, uid: &str) -> String {
        let app = self
            .post("/api/v1/app", json!({"name": uid, "uid": uid}))
            .await;
        app["id"].as_str().unwrap().to_owned()
    }

    /// Creates an endpoint from a JSON body and returns it.
    pub async fn endpoint(&self, app: &str, body: Value) -> Value {
        self.post(&format!("/api/v1/app/{app}/endpoint"), body)
            .await
    }

    pub async fn publish(&self, app: &str, body: Value) -> Value {
        self.post(&format!("/api/v1/app/{app}/msg"), body).await
    }

    /// The signing secret of an endpoint (as returned by create).
    pub async fn secret(&self, app: &str, endpoint: &Value) -> String {
        let path = format!(
            "/api/v1/app/{app}/endpoint/{}/secret",
            endpoint["id"].as_str().unwrap()
        );
        self.get(&path).await["key"].as_str().unwrap().to_owned()
    }

    /// The last path segment of each endpoint a message went to, sorted.
    pub async fn destinations(&self, app: &str, msg: &Value) -> Vec<String> {
        let path = format!(
            "/api/v1/app/{app}/msg/{}/endpoint",
            msg["id"].as_str().unwrap()
        );
        let mut urls: Vec<String> = self.get(&path).await["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                d["url"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        urls.sort();
        urls
    }

    /// Polls a read-only API view until `done` holds, for state Herald records after the
    /// receiver has answered. Fails after `within`.
    pub async fn until(
        &self,
        path: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let body = self.get(path).await;
            if done(&body) {
                return body;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting on {path}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A message's attempts (the listing's body) once at least `n` are recorded.
    pub async fn msg_attempts(&self, app: &str, msg: &Value, n: usize) -> Value {
        let path = format!(
            "/api/v1/app/{app}/attempt/msg/{}?limit=250",
            msg["id"].as_str().unwrap()
        );
        self.until(&path, WAIT, |b| {
            b["data"].as_array().is_some_and(|d| d.len() >= n)
        })
        .await
    }

    /// Kills Herald with SIGKILL, keeping its data directory.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for Herald to exit; returns whether it exited cleanly.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: std::time::Instant,
    pub method: Method,
    pub path: String,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status the receiver answered with.
    pub status: u16,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Statuses to answer with, in order; when empty, `default_status`.
    script: Mutex<VecDeque<u16>>,
    default_status: Mutex<u16>,
    /// Answer after this long.
    delay: Mutex<Duration>,
    /// TCP connections accepted.
    connections: std::sync::atomic::AtomicUsize,
    arrived: Notify,
}

/// A real HTTP server on loopback that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<ReceiverState>,
}

impl Receiver {
    pub async fn start() -> Self {
        let state = Arc::new(ReceiverState {
            default_status: Mutex::new(200),
            ..Default::default()
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counted = state.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, move |_| {
            counted
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, state }
    }

    /// Answers every request after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answers the next requests with these statuses, then with the default again.
    pub fn script(&self, statuses: &[u16]) {
        self.state.script.lock().unwrap().extend(statuses);
    }

    pub fn set_status(&self, status: u16) {
        *self.state.default_status.lock().unwrap() = status;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }

    /// Waits until at least `n` requests arrived on `path`, or fails after `within`.
    pub async fn wait_for(&self, path: &str, n: usize, within: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.received_on(path);
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                panic!(
                    "expected {n} requests on {path} within {within:?}, got {}",
                    got.len()
                );
            }
        }
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let status = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*state.default_status.lock().unwrap());
    state.received.lock().unwrap().push(Received {
        at: std::time::Instant::now(),
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers,
        body,
        status,
    });
    state.arrived.notify_waiters();
    let delay = *state.delay.lock().unwrap();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    (StatusCode::from_u16(status).unwrap(), "receiver says hi")
}

/// Verifies a delivery's Standard Webhooks signature with `secret`.
pub fn verify(received: &Received, secret: &str) -> bool {
    let key = signing::Key::parse(secret).unwrap();
    let ts: i64 = received.header("webhook-timestamp").parse().unwrap();
    key.verify(
        received.header("webhook-id"),
        ts,
        &received.body,
        received.header("webhook-signature"),
    )
}

pub const WAIT: Duration = Duration::from_secs(10);

/// A database of its own for one test, on the PostgreSQL server `scripts/postgres.sh`
/// starts (`HERALD_TEST_DATABASE_URL`, a superuser's URL). Without one the test skips,
/// loudly, except under `CI=true`, where it fails.
pub async fn fresh_database() -> Option<String> {
    let Ok(admin) = std::env::var("HERALD_TEST_DATABASE_URL") else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "CI=true but no PostgreSQL: run the tests with scripts/test.sh, which starts one"
            );
        }
        eprintln!(
            "SKIPPED: no PostgreSQL (HERALD_TEST_DATABASE_URL unset); \
             `source scripts/postgres.sh && start_postgres` starts one"
        );
        return None;
    };
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("the test PostgreSQL answers");
    tokio::spawn(connection);
    let name = format!("herald_it_{:016x}", rand::random::<u64>());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    Some(url.to_string())
}
