//! Several `herald serve` processes on one PostgreSQL database and a real receiver: every
//! message accepted is delivered when a node is killed; a frozen node's late results are
//! refused; a throttle, disabling, auto-disabling, idempotency keys and entity chains hold
//! for the nodes together; and a database outage answers 503 and heals by itself.
//! Skipped without PostgreSQL (`scripts/postgres.sh` starts one), except under `CI=true`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::entities::one_chain;
use crate::support::{Herald, Receiver, TOKEN, fresh_database};

/// `n` nodes on one fresh database, started with `args`.
async fn nodes(n: usize, args: &[&str]) -> Option<(String, Vec<Herald>)> {
    let database = fresh_database().await?;
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(Herald::start_on(&database, args).await);
    }
    Some((database, nodes))
}

/// Publishes one message through `node`; its id if the node answered 2xx.
async fn publish(client: &reqwest::Client, node: &str, app: &str, body: &Value) -> Option<String> {
    let response = client
        .post(format!("{node}/api/v1/app/{app}/msg"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    body["id"].as_str().map(str::to_owned)
}

/// Waits until the receiver got every id in `owed` on `path` (by `webhook-id`); returns
/// how many requests it got there in all.
async fn wait_delivered(
    receiver: &Receiver,
    path: &str,
    owed: &HashSet<String>,
    within: Duration,
) -> usize {
    let deadline = Instant::now() + within;
    loop {
        let got = receiver.received_on(path);
        let ids: HashSet<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
        let missing = owed.iter().filter(|id| !ids.contains(id.as_str())).count();
        if missing == 0 {
            return got.len();
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} accepted messages not delivered to {path}",
            owed.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 10,000 messages published round-robin to three nodes by 24 publishers; one node is
/// killed with `kill -9` a third of the way in and started again after the stream. Every
/// message that got a 2xx is delivered; repeats are only attempts in flight at the kill.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_deliver_every_accepted_message_through_a_kill_9() {
    let args = [
        "--retry-schedule",
        "500ms,500ms,500ms,500ms,500ms",
        "--attempt-timeout",
        "2s",
        "--lease",
        "5s",
    ];
    let Some((database, mut nodes)) = nodes(3, &args).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let app = nodes[0].app("acme").await;
    nodes[0]
        .endpoint(&app, json!({"url": receiver.url("/all")}))
        .await;
    const TOTAL: usize = 10_000;
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let mut publishers = Vec::new();
    for _ in 0..24 {
        let (next, accepted, urls, app) =
            (next.clone(), accepted.clone(), urls.clone(), app.clone());
        publishers.push(tokio::spawn(async move {
            let client = crate::support::http_client();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= TOTAL {
                    break;
                }
                let body = json!({"eventType": "a.b", "payload": {"i": i}});
                if let Some(id) = publish(&client, &urls[i % 3], &app, &body).await {
                    accepted.lock().await.insert(id);
                }
            }
        }));
    }
    // Kill node 1 once a third of the messages are in.
    while next.load(Ordering::Relaxed) < TOTAL / 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    nodes[1].kill();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    nodes[1] = Herald::start_on(&database, &args).await;
    let accepted = accepted.lock().await.clone();
    assert!(accepted.len() > TOTAL / 2, "{} accepted", accepted.len());
    let received = wait_delivered(&receiver, "/all", &accepted, Duration::from_secs(120)).await;
    let distinct: HashSet<String> = receiver
        .received_on("/all")
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    eprintln!(
        "three nodes, kill -9 of one: {} of {TOTAL} accepted, 0 lost, {} duplicate deliveries, {} delivered that got no 2xx (cut off by the kill)",
        accepted.len(),
        received - distinct.len(),
        distinct.len() - accepted.len()
    );
}

/// A node frozen with SIGSTOP while it holds leases (one attempt in flight, the rest
/// queued): the other nodes deliver them once the leases end; when it resumes, its late
/// result is refused, so each delivery's recorded state is the live node's: one recorded
/// attempt each, though the receiver saw the frozen node's request too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_nodes_late_results_are_refused() {
    let args = [
        "--attempt-timeout",
        "2s",
        "--lease",
        "5s",
        "--max-in-flight-per-endpoint",
        "1",
    ];
    let Some((_database, nodes)) = nodes(3, &args).await else {
        return;
    };
    let receiver = Receiver::start().await;
    receiver.set_delay(Duration::from_millis(700));
    let app = nodes[0].app("acme").await;
    nodes[0]
        .endpoint(&app, json!({"url": receiver.url("/frozen")}))
        .await;
    let mut messages = Vec::new();
    for i in 0..6 {
        messages.push(
            nodes[0]
                .publish(&app, json!({"eventType": "a.b", "payload": {"i": i}}))
                .await,
        );
    }
    // Node 0 attempts them one at a time: freeze it once the first is recorded, while its
    // second request waits for the receiver's answer (700 ms).
    receiver
        .wait_for("/frozen", 2, Duration::from_secs(10))
        .await;
    nodes[1].msg_attempts(&app, &messages[0], 1).await;
    nodes[0].signal("STOP");
    let owed: HashSet<String> = messages
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    wait_delivered(&receiver, "/frozen", &owed, Duration::from_secs(30)).await;
    for m in &messages {
        nodes[1].msg_attempts(&app, m, 1).await;
    }
    nodes[0].signal("CONT");
    // A later message through the resumed node: once its attempt is recorded, the node's
    // recorder has handled the late result that was ahead of it.
    let later = nodes[0]
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"later": true}}),
        )
        .await;
    nodes[0].msg_attempts(&app, &later, 1).await;

    let requests = receiver.received_on("/frozen");
    let mut repeated = 0;
    for m in &messages {
        let id = m["id"].as_str().unwrap();
        let sent = requests
            .iter()
            .filter(|r| r.header("webhook-id") == id)
            .count();
        repeated += sent - 1;
        let attempts = nodes[2].msg_attempts(&app, m, 1).await;
        let attempts = attempts["data"].as_array().unwrap();
        assert_eq!(
            attempts.len(),
            1,
            "{id}: only the live node's attempt is recorded"
        );
        assert_eq!(attempts[0]["status"], 0, "{id} delivered");
        let delivery = nodes[2]
            .get(&format!("/api/v1/app/{app}/msg/{id}/endpoint"))
            .await;
        assert_eq!(
            delivery["data"][0]["status"], 0,
            "{id}: delivered, as recorded"
        );
    }
    assert!(
        repeated >= 1,
        "the frozen node's request in flight reached the receiver too"
    );
    // Nothing queued on the frozen node was attempted after it resumed: the second
    // request it had sent is the only repeat.
    assert_eq!(repeated, 1, "requests: {}", requests.len());
}

/// An endpoint with `throttleRate` 50 gets at most about 50 attempts a second from three
/// nodes together: 150 messages published at once, round-robin, take at least 2.7 s to
/// arrive (149 intervals of 20 ms, less 10 %), and no second holds more than 60: the
/// starts are spaced by the shared schedule, and up to 200 ms of scheduling delay on a
/// loaded two-core machine (three nodes, PostgreSQL and the receiver) may bunch a few.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttle_holds_for_three_nodes_together() {
    let Some((_database, nodes)) = nodes(3, &[]).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let app = nodes[0].app("acme").await;
    nodes[0]
        .endpoint(
            &app,
            json!({"url": receiver.url("/paced"), "throttleRate": 50}),
        )
        .await;
    let start = Instant::now();
    futures::stream::iter(0..150)
        .map(|i| nodes[i % 3].publish(&app, json!({"eventType": "a.b", "payload": {"i": i}})))
        .buffer_unordered(24)
        .collect::<Vec<_>>()
        .await;
    let got = receiver
        .wait_for("/paced", 150, Duration::from_secs(30))
        .await;
    let mut at: Vec<Instant> = got.iter().map(|r| r.at).collect();
    at.sort();
    let span = *at.last().unwrap() - start;
    assert!(
        span >= Duration::from_millis(2700),
        "150 at 50/s in {span:?}"
    );
    let busiest = at
        .iter()
        .map(|t| {
            at.iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap();
    eprintln!("throttle: busiest second {busiest}, span {span:?}");
    assert!(busiest <= 60, "{busiest} attempts in one second");
}

/// An endpoint disabled through node 0 gets nothing from nodes 1 and 2 a second later,
/// while another endpoint of the application gets every message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_disabled_on_one_node_is_disabled_on_all() {
    let Some((_database, nodes)) = nodes(3, &[]).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let app = nodes[0].app("acme").await;
    let off = nodes[0]
        .endpoint(&app, json!({"url": receiver.url("/off")}))
        .await;
    nodes[0]
        .endpoint(&app, json!({"url": receiver.url("/on")}))
        .await;
    // Every node has read both endpoints.
    for (i, node) in nodes.iter().enumerate() {
        node.publish(&app, json!({"eventType": "a.b", "payload": {"warm": i}}))
            .await;
    }
    receiver.wait_for("/off", 3, Duration::from_secs(10)).await;
    let path = format!("/api/v1/app/{app}/endpoint/{}", off["id"].as_str().unwrap());
    let (status, _) = nodes[0]
        .call(Method::PATCH, &path, Some(json!({"disabled": true})))
        .await;
    assert_eq!(status, StatusCode::OK);
    // The promise: honoured by every node within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = receiver.received_on("/off").len();
    for i in 0..30 {
        nodes[i % 3]
            .publish(&app, json!({"eventType": "a.b", "payload": {"i": i}}))
            .await;
    }
    receiver.wait_for("/on", 33, Duration::from_secs(10)).await;
    assert_eq!(
        receiver.received_on("/off").len(),
        before,
        "nothing after the disable"
    );
}

/// An endpoint failing on all three nodes is disabled once, with one `endpoint.disabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_endpoint_failing_on_every_node_is_disabled_once() {
    let args = [
        "--auto-disable-after",
        "2s",
        "--retry-schedule",
        "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms",
    ];
    let Some((_database, nodes)) = nodes(3, &args).await else {
        return;
    };
    let (receiver, failing) = (Receiver::start().await, Receiver::start().await);
    let operator = nodes[0].app("herald-operator").await;
    nodes[0]
        .endpoint(&operator, json!({"url": receiver.url("/ops")}))
        .await;
    let app = nodes[0].app("acme").await;
    let dead = nodes[0]
        .endpoint(&app, json!({"url": failing.url("/dead")}))
        .await;
    failing.set_status(500);
    let path = format!(
        "/api/v1/app/{app}/endpoint/{}",
        dead["id"].as_str().unwrap()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut i = 0;
    // Failing attempts from every node until the endpoint is disabled.
    while nodes[0].get(&path).await["disabled"] != true {
        assert!(Instant::now() < deadline, "the endpoint was not disabled");
        nodes[i % 3]
            .publish(&app, json!({"eventType": "a.b", "payload": {"i": i}}))
            .await;
        i += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A later operator message through each node: once all three arrived, any
    // `endpoint.disabled` decided before the endpoint was disabled has arrived too.
    for (n, node) in nodes.iter().enumerate() {
        node.publish(
            &operator,
            json!({"eventType": "later", "payload": {"n": n}}),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let later = receiver
            .received_on("/ops")
            .iter()
            .filter(|r| r.json()["n"].is_number())
            .count();
        if later >= 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the later operator messages did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events: Vec<_> = receiver
        .received_on("/ops")
        .into_iter()
        .filter(|r| r.json()["type"] == "endpoint.disabled")
        .collect();
    let ids: HashSet<&str> = events.iter().map(|r| r.header("webhook-id")).collect();
    let disabled: Vec<Value> = events.iter().map(|r| r.json()).collect();
    assert_eq!(ids.len(), 1, "one endpoint.disabled: {disabled:?}");
    assert_eq!(disabled[0]["data"]["endpointId"], dead["id"]);
    assert_eq!(disabled[0]["data"]["reason"], "failing");
}

/// The same idempotency key sent to two nodes creates one message; 16 publishers updating
/// one entity through three nodes form one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_and_entity_chains_hold_across_nodes() {
    let Some((_database, nodes)) = nodes(3, &[]).await else {
        return;
    };
    let receiver = Receiver::start().await;
    let app = nodes[0].app("acme").await;
    nodes[0]
        .endpoint(
            &app,
            json!({
                "url": receiver.url("/chain"),
                "transform": {"set": {"payload.prevKey": {"from": "previous.key"}}},
            }),
        )
        .await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "once", "payload": {"key": "once"}});
    let key = [("idempotency-key", "order-1-created")];
    let (a, b) = tokio::join!(
        nodes[0].call_as(Method::POST, &path, Some(body.clone()), Some(TOKEN), &key),
        nodes[1].call_as(Method::POST, &path, Some(body.clone()), Some(TOKEN), &key),
    );
    assert!(a.0.is_success() && b.0.is_success(), "{a:?} {b:?}");
    assert_eq!(a.1["id"], b.1["id"], "one message for one key");

    futures::stream::iter(0..600)
        .map(|i| {
            nodes[i % 3].publish(
                &app,
                json!({"eventType": "item.updated", "entityId": "item-1", "payload": {"key": format!("v{i}")}}),
            )
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    receiver
        .wait_for("/chain", 601, Duration::from_secs(60))
        .await;
    let updates: Vec<_> = receiver
        .received_on("/chain")
        .into_iter()
        .filter(|r| r.json()["key"] != "once")
        .collect();
    let (distinct, _) = one_chain(&updates);
    assert_eq!(distinct, 600);
    let once = receiver
        .received_on("/chain")
        .iter()
        .filter(|r| r.json()["key"] == "once")
        .count();
    assert_eq!(once, 1, "the keyed message was delivered once");
}

/// PostgreSQL stopped for a few seconds under load: publishes during the outage answer 503
/// with `Retry-After`, every message that got a 2xx is delivered, and the nodes carry on
/// by themselves when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_outage_answers_503_and_heals() {
    let Some(server) = PostgresServer::start_own() else {
        return;
    };
    // Short leases: deliveries whose record failed in the outage are attempted again soon.
    let args = ["--attempt-timeout", "2s", "--lease", "5s"];
    let database = server.url();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(Herald::start_on(&database, &args).await);
    }
    let receiver = Receiver::start().await;
    let app = nodes[0].app("acme").await;
    nodes[0]
        .endpoint(&app, json!({"url": receiver.url("/outage")}))
        .await;
    let urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let accepted = Arc::new(Mutex::new(HashSet::new()));
    let unavailable = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut publishers = Vec::new();
    for p in 0..6 {
        let (accepted, unavailable, stop, urls, app) = (
            accepted.clone(),
            unavailable.clone(),
            stop.clone(),
            urls.clone(),
            app.clone(),
        );
        publishers.push(tokio::spawn(async move {
            let client = crate::support::http_client();
            let mut i = p;
            while !stop.load(Ordering::Relaxed) {
                i += 6;
                let response = client
                    .post(format!("{}/api/v1/app/{app}/msg", urls[i % 3]))
                    .bearer_auth(TOKEN)
                    .json(&json!({"eventType": "a.b", "payload": {"i": i}}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                if status.is_success() {
                    let body: Value = response.json().await.unwrap();
                    accepted
                        .lock()
                        .await
                        .insert(body["id"].as_str().unwrap().to_owned());
                } else {
                    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
                    assert!(response.headers().contains_key("retry-after"));
                    let body: Value = response.json().await.unwrap();
                    assert_eq!(body["code"], "storage_unavailable", "{body}");
                    unavailable.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    let count = || async { accepted.lock().await.len() };
    while count().await < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop();
    let stopped = Instant::now();
    // The nodes say they are not ready while the database is away.
    let ready = |node: usize| nodes[node].call(Method::GET, "/api/v1/health/ready", None);
    loop {
        let (status, body) = ready(1).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(body["code"], "storage_unavailable", "{body}");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "still ready: {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed())).await;
    server.start();
    // Accepted again after the outage, without restarting any node, and ready again.
    let resumed = count().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count().await < resumed + 300 {
        assert!(Instant::now() < deadline, "publishes did not succeed again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready(1).await.0, StatusCode::NO_CONTENT);
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        publisher.await.unwrap();
    }
    assert!(
        unavailable.load(Ordering::Relaxed) > 0,
        "publishes during the outage got 503"
    );
    let accepted = accepted.lock().await.clone();
    let received = wait_delivered(&receiver, "/outage", &accepted, Duration::from_secs(120)).await;
    eprintln!(
        "outage: {} accepted, {} answered 503, 0 lost, {} deliveries",
        accepted.len(),
        unavailable.load(Ordering::Relaxed),
        received
    );
}

/// A PostgreSQL server of the outage test's own (stopping the shared one would fail the
/// other tests): a throwaway cluster in a temporary folder, on a free loopback port, from
/// the binaries `scripts/postgres.sh` found (`HERALD_TEST_PG_BIN`). Stopped when dropped.
struct PostgresServer {
    bin: String,
    dir: tempfile::TempDir,
    port: u16,
}

impl PostgresServer {
    fn start_own() -> Option<Self> {
        let Ok(bin) = std::env::var("HERALD_TEST_PG_BIN") else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!(
                    "CI=true but no PostgreSQL binaries (HERALD_TEST_PG_BIN): run scripts/test.sh"
                );
            }
            eprintln!("SKIPPED: no PostgreSQL binaries (HERALD_TEST_PG_BIN unset)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        if running_as_root() {
            // initdb and the server refuse to run as root: the cluster is `postgres`'s.
            let status = std::process::Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self { bin, dir, port };
        let data = server.data();
        server.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync"],
        );
        server.start();
        Some(server)
    }

    fn data(&self) -> String {
        format!("{}/data", self.dir.path().display())
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let path = format!("{}/{program}", self.bin);
        let mut command = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        let status = command
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{program} {args:?}");
    }

    fn stop(&self) {
        self.run("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "stop"]);
    }

    fn start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = format!("{}/server.log", self.dir.path().display());
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let data = self.data();
        let path = format!("{}/pg_ctl", self.bin);
        let mut command = if running_as_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Without `--admin-token`, the first node of a database generates the admin token,
/// prints it once and keeps only its digest there; every other node accepts it, and no
/// node writes it to a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_nodes_generated_token_works_on_every_node() {
    let Some(database) = fresh_database().await else {
        return;
    };
    let (first, token, first_dir) = spawn_without_token(&database).await;
    let (second, printed, second_dir) = spawn_without_token(&database).await;
    let token = token.expect("the first node prints the token it generated");
    assert_eq!(printed, None, "only the first node prints a token");
    let client = crate::support::http_client();
    for (node, dir) in [(&first, &first_dir), (&second, &second_dir)] {
        let url = format!("http://{}/api/v1/app", node.1);
        let ok = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let wrong = client
            .get(&url)
            .bearer_auth("hrd_wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        assert!(
            !dir.path().join("admin-token").exists(),
            "no node keeps the token in a file"
        );
    }
    for (mut child, _) in [first, second] {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Starts `herald serve` on `database` with no admin token given; returns the process and
/// its address, the token it printed (if it printed one), and its data directory.
async fn spawn_without_token(
    database: &str,
) -> (
    (std::process::Child, String),
    Option<String>,
    tempfile::TempDir,
) {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            database,
            "--data-dir",
        ])
        .arg(dir.path())
        .env_remove("HERALD_ADMIN_TOKEN")
        .env("HERALD_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (token, addr) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut token = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.trim().starts_with("hrd_") {
                token = Some(line.trim().to_owned());
            }
            if let Some(addr) = line.strip_prefix("Herald listening on http://") {
                let addr = addr.trim().to_owned();
                std::thread::spawn(move || for _ in lines {});
                return (token, addr);
            }
        }
        panic!("herald exited before listening");
    })
    .await
    .unwrap();
    ((child, addr), token, dir)
}

/// A schema enforced through one node is enforced by the others within a second.
#[tokio::test]
async fn a_schema_enforced_on_one_node_is_enforced_on_all() {
    let Some((_database, nodes)) = nodes(2, &[]).await else {
        return;
    };
    let app = nodes[0].app("acme").await;
    nodes[0]
        .post(
            "/api/v1/event-type",
            json!({"name": "case.closed", "description": "A case was closed",
                   "schemas": {"1": {"type": "object", "required": ["caseId"]}}}),
        )
        .await;
    let bad = json!({"eventType": "case.closed", "payload": {"note": "no case id"}});
    let path = format!("/api/v1/app/{app}/msg");
    // Node 2 has read the event type: not enforced, so accepted.
    let (status, _) = nodes[1].call(Method::POST, &path, Some(bad.clone())).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = nodes[0]
        .call(
            Method::PATCH,
            "/api/v1/event-type/case.closed",
            Some(json!({"enforceSchema": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Node 1 at once; node 2 within the promised second.
    let (status, _) = nodes[0].call(Method::POST, &path, Some(bad.clone())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, err) = nodes[1].call(Method::POST, &path, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(
        err["detail"][0]["loc"],
        json!(["body", "payload", "caseId"])
    );
}
