//! A smoke run of every scenario with a few hundred events, so the harness never rots.
//! It checks that every event was delivered; it asserts no timing.

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
    assert_eq!(reports.len(), 9, "eight scenarios, the ceiling twice");
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
    let backlog = reports
        .iter()
        .find(|r| r.scenario.starts_with("backlog"))
        .unwrap();
    assert_eq!(backlog.get("large backlog"), Some(200.0));
}
