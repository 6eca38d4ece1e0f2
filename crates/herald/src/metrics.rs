//! The process's metrics recorder: Prometheus' text format, rendered by `/metrics`.
//! Durations are histograms with buckets from a millisecond to a few minutes (an attempt's
//! timeout and a retry's wait fit in them).

use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Upper bounds of the duration histograms, in seconds.
const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Upper bounds of the store's group sizes (writes per commit).
const GROUP: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often the recorder folds what it gathered into what it renders.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the recorder for the whole process and keeps it tidy; its handle renders.
pub(crate) fn install() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
        .context("metrics buckets")?
        .set_buckets_for_metric(Matcher::Full("herald_store_group_size".into()), GROUP)
        .context("metrics buckets")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let tidy = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP);
        loop {
            every.tick().await;
            tidy.run_upkeep();
        }
    });
    metrics::gauge!(
        "herald_build_info",
        "version" => env!("CARGO_PKG_VERSION"),
        "commit" => env!("HERALD_COMMIT")
    )
    .set(1.0);
    Ok(handle)
}
