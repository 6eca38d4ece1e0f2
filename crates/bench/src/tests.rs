//! A smoke run of every scenario with a few hundred events, so the harness never rots,
//! and of `throughput` and `fanout` on PostgreSQL with two nodes when a server is given
//! (`HERALD_TEST_DATABASE_URL`, a superuser's URL; `scripts/postgres.sh` starts one).
//! They check that every event was delivered and the figures were reported; they assert
//! no timing. And the `entities` scenario's updates are what it says they are.

use clap::Parser;

use crate::report::Report;
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
        15,
        "nine scenarios, the ceiling and both relays twice, entities with its baseline"
    );
    for report in &reports {
        if let Some(lost) = report.get("deliveries lost") {
            assert_eq!(lost, 0.0, "{} lost deliveries", report.scenario);
        }
    }
    let relays: Vec<&Report> = reports
        .iter()
        .filter(|r| r.scenario.starts_with("relay"))
        .collect();
    assert_eq!(relays.len(), 4, "both relay scenarios ran twice");
    for relay in relays {
        assert_eq!(relay.get("publish errors"), Some(0.0), "{}", relay.scenario);
        assert!(
            relay.get("deliveries received (unique)") >= Some(10.0),
            "{}",
            relay.scenario
        );
        assert!(relay.get("deliveries/s as % of relay").is_none());
    }
    for scenario in ["throughput", "fanout", "tenants"] {
        let report = reports
            .iter()
            .find(|r| r.scenario.starts_with(scenario))
            .unwrap();
        assert!(
            report
                .get("deliveries/s as % of relay")
                .is_some_and(|p| p > 0.0),
            "{scenario} is compared with the relay"
        );
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

/// `throughput` and `fanout` on two Herald nodes sharing a PostgreSQL database: nothing
/// lost, and the server's figures reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throughput_and_fanout_on_postgres_with_two_nodes() {
    let Some(url) = database_url() else {
        return;
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options::parse_from([
        "bench",
        "throughput",
        "fanout",
        "--scale",
        "0.01",
        "--database-url",
        &url,
        "--nodes",
        "2",
        "--json",
    ]);
    let reports = scenarios::run(&options)
        .await
        .expect("both scenarios complete on PostgreSQL");
    assert_eq!(reports.len(), 2);
    for report in &reports {
        let figure = |name| report.get(name);
        assert_eq!(figure("Herald nodes on PostgreSQL"), Some(2.0));
        assert_eq!(figure("publish errors"), Some(0.0), "{}", report.scenario);
        assert_eq!(figure("deliveries lost"), Some(0.0), "{}", report.scenario);
        assert!(figure("events published").is_some_and(|n| n > 0.0));
        // Every publish commits, and every commit writes WAL.
        for name in [
            "commits per delivery",
            "write transactions per delivery",
            "WAL bytes per delivery",
        ] {
            assert!(
                figure(name).is_some_and(|v| v > 0.0),
                "{}: {name} reported",
                report.scenario
            );
        }
    }
}

/// `HERALD_TEST_DATABASE_URL`, or `None` after saying loudly that the PostgreSQL runs are
/// skipped; under `CI=true` a missing server is a failure.
fn database_url() -> Option<String> {
    use std::io::Write;
    match std::env::var("HERALD_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
                panic!(
                    "HERALD_TEST_DATABASE_URL is not set under CI: PostgreSQL must run \
                     (scripts/postgres.sh starts one)"
                );
            }
            // Past the test harness's capture of `eprintln!`.
            let _ = writeln!(
                std::io::stderr(),
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !! SKIPPED: HERALD_TEST_DATABASE_URL is not set, so the benchmark    !!\n\
                 !! was NOT run on PostgreSQL. Run: source scripts/postgres.sh &&     !!\n\
                 !! start_postgres && cargo test -p bench                             !!\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
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

/// `--rate` paces the publishers: every event is delivered, and no faster than asked (the
/// pacing's bound; how slow a loaded machine makes it is not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_rate_paces_the_publishers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = Options::parse_from([
        "bench",
        "throughput",
        "--scale",
        "0.01",
        "--rate",
        "250",
        "--json",
    ]);
    let reports = scenarios::run(&options)
        .await
        .expect("throughput completes");
    let report = &reports[0];
    assert_eq!(report.get("deliveries lost"), Some(0.0));
    assert_eq!(report.get("events published"), Some(500.0));
    let rate = report.get("publish/s").unwrap();
    assert!(rate <= 250.0 * 1.1, "{rate} events/s at --rate 250");
}

#[test]
fn a_rate_must_be_a_positive_number() {
    for bad in ["0", "-5", "fast", "inf", "NaN"] {
        let parsed = Options::try_parse_from(["bench", "throughput", "--rate", bad]);
        assert!(parsed.is_err(), "--rate {bad} was accepted");
    }
    let parsed = Options::try_parse_from(["bench", "throughput", "--rate", "1500.5"]).unwrap();
    assert_eq!(parsed.rate, Some(1500.5));
}
