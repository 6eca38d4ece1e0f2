//! A smoke run of every scenario with a few hundred events, so the harness never rots.
//! It checks that every event was delivered; it asserts no timing. And the `entities`
//! scenario's updates are what it says they are.

use clap::Parser;

use crate::{Options, scenarios};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_delivers_everything_at_small_scale() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options::parse_from([
        "bench",
        "all",
        "--scale",
        "0.01",
        "--backlog-events",
        "20000",
        "--json",
    ]);
    let reports = scenarios::run(&options)
        .await
        .expect("every scenario completes");
    assert_eq!(
        reports.len(),
        11,
        "nine scenarios, the ceiling twice, entities with its baseline"
    );
    for report in &reports {
        if let Some(lost) = report.get("deliveries lost") {
            assert_eq!(lost, 0.0, "{} lost deliveries", report.scenario);
        }
    }
    let flaky = reports
        .iter()
        .find(|r| r.scenario.starts_with("flaky"))
        .unwrap();
    assert!(
        flaky.get("retries (requests - unique)").unwrap() > 0.0,
        "the flaky receiver caused retries"
    );
    let entities = reports
        .iter()
        .find(|r| r.scenario.starts_with("entities ("))
        .unwrap();
    assert!(
        entities.get("diff body size (mean)").unwrap()
            < entities.get("full payload size").unwrap() / 2.0,
        "a diff endpoint gets much less than the payload"
    );
    let baseline = reports
        .iter()
        .find(|r| r.scenario.starts_with("entities baseline"))
        .unwrap();
    for report in [entities, baseline] {
        // A publish Herald refused would be neither expected nor counted as lost.
        let published = report.get("events published").unwrap();
        assert!(published > 0.0, "{}", report.scenario);
        assert_eq!(
            report.get("publish errors"),
            Some(0.0),
            "{}",
            report.scenario
        );
        assert_eq!(
            report.get("deliveries received (unique)"),
            Some(published * 2.0),
            "{}: every update reaches both endpoints",
            report.scenario
        );
    }
    let backlog = reports
        .iter()
        .find(|r| r.scenario.starts_with("backlog"))
        .unwrap();
    assert_eq!(backlog.get("large backlog"), Some(200.0));
}

/// The entity updates are what the `entities` scenario says: ~5 KB, ~10 % of the leaves
/// changing, and any two versions of a case different.
#[test]
fn entity_updates_are_5_kb_with_10_percent_changed() {
    use crate::entity;
    let texts = entity::versions(3, 20);
    let values: Vec<serde_json::Value> = texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    let size = texts[0].len();
    assert!((4_500..=5_500).contains(&size), "{size} bytes");
    let diff = filter::Diff::compile(&["guid".to_owned()]).unwrap();
    let leaves = entity::leaves(&values[0]).len() as f64;
    for (i, a) in values.iter().enumerate() {
        for b in &values[i + 1..] {
            assert!(diff.apply(a, b).is_some() && diff.apply(b, a).is_some());
        }
    }
    for pair in values.windows(2) {
        let changed = entity::leaves(&diff.apply(&pair[0], &pair[1]).unwrap()).len() - 1;
        eprintln!(
            "changed {changed}, diff {} bytes",
            diff.apply(&pair[0], &pair[1]).unwrap().to_string().len()
        );
        assert!(
            (changed as f64 - leaves * 0.1).abs() <= 2.0,
            "{changed} of {leaves}"
        );
        assert_eq!(pair[0]["guid"], pair[1]["guid"]);
    }
}

#[test]
fn a_publish_body_is_the_ceiling_body_as_an_order_created_event() {
    let body: serde_json::Value =
        serde_json::from_slice(&crate::load::order_created()(7)).expect("valid JSON");
    assert_eq!(
        body,
        serde_json::json!({"eventType": "order.created", "payload": crate::load::payload(7)})
    );
    assert_eq!(
        serde_json::to_vec(&body["payload"]).unwrap(),
        crate::load::payload_json(7)
    );
}
