//! `retention`: the same steady, paced publish load on two Heralds in turn, one keeping
//! every message and one with a short retention, each's store size read every second
//! from `/metrics` (`herald_store_size_bytes`). Reports the size each ends at, how much
//! each grew over the second half of its run, what the remover removed, and both runs'
//! delivery latency and Herald CPU per event (the remover must not hold publishes back).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::Options;
use crate::herald::{TOKEN, Target};
use crate::load::{order_created, publish_bodies};
use crate::receiver::Receiver;
use crate::report::Report;
use crate::scenarios::{latencies, percentile, progress, setup, targets};

/// Events per second, paced.
const RATE: f64 = 1_000.0;
/// The short retention.
const RETENTION: &str = "10s";

/// What one run measured.
struct Run {
    end_mib: f64,
    second_half_growth_mib: f64,
    removed: f64,
    p50: f64,
    p99: f64,
    cpu_per_1000: f64,
}

/// The value of the first series named `name` with `label` in Prometheus text.
fn series(text: &str, name: &str, label: &str) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && line.contains(label))
        .find_map(|line| line.rsplit_once(' ')?.1.parse().ok())
}

async fn scrape(client: &reqwest::Client, herald_url: &str) -> anyhow::Result<String> {
    Ok(client
        .get(format!("{herald_url}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?)
}

async fn run(options: &Options, retention: &str, seconds: f64) -> anyhow::Result<Run> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &["--retention", retention]).await?;
    let apps = setup(&herald, &receiver.url(""), 1, 1).await?;
    let client = reqwest::Client::new();
    let url = herald.url("");
    // The store's size every second while the load runs.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, client, url) = (stop.clone(), client.clone(), url.clone());
        tokio::spawn(async move {
            let mut sizes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if let Ok(text) = scrape(&client, &url).await
                    && let Some(bytes) = series(&text, "herald_store_size_bytes", "")
                {
                    sizes.push(bytes);
                }
            }
            sizes
        })
    };
    let n = (RATE * seconds) as usize;
    let cpu_before = herald.cpu_seconds();
    let bar = progress(options, n, &format!("retention {retention}"));
    let published = publish_bodies(
        n,
        options.concurrency,
        Some(RATE),
        targets(&herald, apps),
        order_created(),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);
    let sizes = sampler.await?;
    anyhow::ensure!(
        published.failed == 0,
        "{} publishes failed",
        published.failed
    );
    let delivered = receiver
        .wait_unique(published.sent.len(), Duration::from_secs(300), |_| {})
        .await;
    anyhow::ensure!(delivered, "every event delivered");
    let cpu = herald.cpu_seconds() - cpu_before;
    let lat = latencies(&published, &receiver.arrivals(), &["/e0".to_owned()]);
    let text = scrape(&client, &url).await?;
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let half = sizes.len() / 2;
    let (first, second) = sizes.split_at(half);
    let peak = |part: &[f64]| part.iter().copied().fold(0.0, f64::max);
    Ok(Run {
        end_mib: mib(sizes.last().copied().unwrap_or(0.0)),
        second_half_growth_mib: mib(peak(second) - peak(first)),
        removed: series(&text, "herald_retention_removed_total", "messages").unwrap_or(0.0),
        p50: percentile(&lat, 50.0),
        p99: percentile(&lat, 99.0),
        cpu_per_1000: cpu / lat.len().max(1) as f64 * 1000.0,
    })
}

pub(crate) async fn retention(options: &Options) -> anyhow::Result<Report> {
    // 120 s at scale 1: several passes of a 10 s retention, and long enough for the
    // store that keeps everything to show its slope.
    let seconds = (120.0 * options.scale).max(20.0);
    let kept = run(options, "none", seconds).await?;
    let short = run(options, RETENTION, seconds).await?;
    let mut report = Report::new("retention (1,000 events/s; everything kept, then 10 s)");
    report.add("seconds of load, each", seconds, "s");
    report.add("store size at the end, kept", kept.end_mib, "MiB");
    report.add("store size at the end, 10 s", short.end_mib, "MiB");
    report.add(
        "growth over the second half, kept",
        kept.second_half_growth_mib,
        "MiB",
    );
    report.add(
        "growth over the second half, 10 s",
        short.second_half_growth_mib,
        "MiB",
    );
    report.add("messages removed, 10 s", short.removed, "");
    report.add("latency p50, kept", kept.p50, "ms");
    report.add("latency p50, 10 s", short.p50, "ms");
    report.add("latency p99, kept", kept.p99, "ms");
    report.add("latency p99, 10 s", short.p99, "ms");
    report.add("Herald CPU per 1000 events, kept", kept.cpu_per_1000, "s");
    report.add("Herald CPU per 1000 events, 10 s", short.cpu_per_1000, "s");
    Ok(report)
}
