//! The alert rules and the Grafana dashboard under docs/monitoring: promtool accepts the
//! rules, the dashboard is a dashboard, and both name only series Herald exports (read
//! from a Herald's `/metrics` after a delivery, a failure and a refusal).

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::metrics::{scrape_until, value};
use crate::support::{Herald, Receiver, WAIT};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/monitoring");

/// Every `herald_…` name in `text`.
fn names(text: &str) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("herald_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        found.insert(name);
    }
    found
}

/// The series names a Herald exports once it has published, delivered, failed and refused.
async fn exported() -> HashSet<String> {
    let herald = Herald::start_with(&["--retry-schedule", "1h"]).await;
    let receiver = Receiver::start().await;
    let failing = Receiver::start().await;
    failing.set_status(500);
    let app = herald.app("monitored").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/ok")}))
        .await;
    herald
        .endpoint(&app, json!({"url": failing.url("/bad")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    receiver.wait_for("/ok", 1, WAIT).await;
    failing.wait_for("/bad", 1, WAIT).await;
    let (status, _) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "", "payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Both attempts recorded, so every histogram has been observed.
    let text = scrape_until(&herald, |t| {
        value(t, "herald_retries_scheduled_total", &[]) == Some(1.0)
    })
    .await;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_alert_rules_and_the_dashboard_load_and_name_only_herald_series() {
    let rules_path = format!("{DIR}/herald.rules.yml");
    match std::process::Command::new("promtool")
        .args(["check", "rules", &rules_path])
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool refused the rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("promtool is needed (apt-get install prometheus): {err}")
        }
        Err(_) => eprintln!("promtool is not installed: the rules were not checked by it"),
    }
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let dashboard_text = std::fs::read_to_string(format!("{DIR}/herald-dashboard.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&dashboard_text).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "herald");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for panel in panels {
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{panel}");
        assert!(
            targets
                .iter()
                .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty()))
        );
    }

    let exported = exported().await;
    for (what, text) in [("rules", &rules), ("dashboard", &dashboard_text)] {
        let named = names(text);
        assert!(named.len() >= 5, "{what} names {named:?}");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{what} names series Herald does not export: {unknown:?}"
        );
    }
}
