//! `herald backup`: a copy of a running store, taken under load, restores to a store that
//! delivers everything it held.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::support::{Herald, Receiver, WAIT};

fn backup(data_dir: &Path, to: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("backup")
        .arg(to)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("HERALD_DATABASE_URL")
        .output()
        .unwrap()
}

/// Every message id of `app` on `herald`.
async fn message_ids(herald: &Herald, app: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut iterator = String::new();
    loop {
        let page = herald
            .get(&format!("/api/v1/app/{app}/msg?limit=250{iterator}"))
            .await;
        for m in page["data"].as_array().unwrap() {
            ids.insert(m["id"].as_str().unwrap().to_owned());
        }
        if page["done"] == true {
            return ids;
        }
        iterator = format!("&iterator={}", page["iterator"].as_str().unwrap());
    }
}

#[tokio::test]
async fn a_backup_under_load_restores_to_a_store_that_delivers_everything_it_held() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let copy = tmp.path().join("copy");
    // Nothing is delivered before the restore: the receiver refuses, and every delivery
    // waits for a retry a second later.
    let receiver = Receiver::start().await;
    receiver.set_status(503);
    let schedule = vec!["1s"; 40].join(",");
    let args = ["--retry-schedule", schedule.as_str()];
    let herald = Herald::start_in(&data, &args).await;
    let app = herald.app("kept").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/kept")}))
        .await;
    let mut before = HashSet::new();
    for n in 0..200 {
        let msg = herald
            .publish(&app, json!({"eventType": "a.b", "payload": {"n": n}}))
            .await;
        before.insert(msg["id"].as_str().unwrap().to_owned());
    }
    // Publishes go on while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, url, app) = (stop.clone(), herald.url(""), app.clone());
        tokio::spawn(async move {
            let client = crate::support::http_client();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let response = client
                    .post(format!("{url}/api/v1/app/{app}/msg"))
                    .bearer_auth(crate::support::TOKEN)
                    .json(&json!({"eventType": "a.b", "payload": {"during": n}}))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success());
            }
            n
        })
    };
    let (data2, copy2) = (data.clone(), copy.clone());
    let out = tokio::task::spawn_blocking(move || backup(&data2, &copy2))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let during = publisher.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("Backed up") && said.contains("deliveries pending"),
        "{said}"
    );
    assert!(during > 0, "publishes ran during the backup");
    drop(herald);

    // The copy, started as a data directory of its own, with the receiver back.
    receiver.set_status(200);
    let restored = Herald::start_in(&copy, &args).await;
    let held = message_ids(&restored, &app).await;
    assert!(
        held.is_superset(&before),
        "every message accepted before the backup is in it"
    );
    let deadline = tokio::time::Instant::now() + WAIT * 4;
    loop {
        let delivered: HashSet<String> = receiver
            .received_on("/kept")
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| r.header("webhook-id").to_owned())
            .collect();
        if held.is_subset(&delivered) {
            eprintln!(
                "backup: {} held ({} accepted before it, {} published during it), all delivered after the restore",
                held.len(),
                before.len(),
                during
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {} held messages delivered",
            held.intersection(&delivered).count(),
            held.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_backup_refuses_what_it_cannot_do_honestly() {
    let tmp = tempfile::tempdir().unwrap();
    let out = backup(&tmp.path().join("nothing"), &tmp.path().join("copy"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no Herald store in"));

    let data = tmp.path().join("data");
    let herald = Herald::start_in(&data, &[]).await;
    herald.app("one").await;
    let taken = tmp.path().join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), "mine").unwrap();
    let out = backup(&data, &taken);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(taken.join("keep.txt")).unwrap(),
        "mine"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["backup", "/tmp/unused-by-herald-test"])
        .env("HERALD_DATABASE_URL", "postgres://127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
    assert!(!Path::new("/tmp/unused-by-herald-test").exists());
}
