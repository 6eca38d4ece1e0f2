//! `--log-format json`: one JSON object a line, and a delivery's lines name its message,
//! endpoint and attempt.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::support::{Receiver, TOKEN, WAIT, http_client};

#[tokio::test]
async fn json_logs_name_the_message_endpoint_and_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--bind", "127.0.0.1:0", "--admin-token", TOKEN])
        .args([
            "--allow-destination",
            "127.0.0.0/8",
            "--poll-interval",
            "50ms",
        ])
        .args(["--log-format", "json", "--log", "dispatch=debug,info"])
        .arg("--data-dir")
        .arg(tmp.path())
        .env_remove("HERALD_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn({
        let lines = lines.clone();
        move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        }
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = stdout.next().expect("herald listens").unwrap();
        if let Some(url) = line.strip_prefix("Herald listening on ") {
            break url.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in stdout {});

    let receiver = Receiver::start().await;
    let client = http_client();
    let post = |path: String, body: Value| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let response = client
                .post(format!("{url}{path}"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            response.json::<Value>().await.unwrap()
        }
    };
    let app = post("/api/v1/app".into(), json!({"name": "logged"})).await;
    let app = app["id"].as_str().unwrap().to_owned();
    let ep = post(
        format!("/api/v1/app/{app}/endpoint"),
        json!({"url": receiver.url("/logged")}),
    )
    .await;
    let msg = post(
        format!("/api/v1/app/{app}/msg"),
        json!({"eventType": "a.b", "payload": {}}),
    )
    .await;
    receiver.wait_for("/logged", 1, WAIT).await;

    let deadline = std::time::Instant::now() + WAIT;
    let attempt = loop {
        let found = lines.lock().unwrap().iter().find_map(|line| {
            let v: Value = serde_json::from_str(line).ok()?;
            (v["fields"]["message"] == "attempt").then_some(v)
        });
        if let Some(found) = found {
            break found;
        }
        assert!(std::time::Instant::now() < deadline, "no attempt line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    // Every line is a JSON object with a level and a time.
    for line in lines.lock().unwrap().iter() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let fields = &attempt["fields"];
    assert_eq!(fields["msg_id"], msg["id"]);
    assert_eq!(fields["endpoint_id"], ep["id"]);
    assert!(
        fields["attempt_id"].as_str().unwrap().starts_with("atmpt_"),
        "{attempt}"
    );
    assert_eq!(fields["status"], 200);
}
