//! The scenarios. Each starts its own Herald (or relay) and receiver, and on PostgreSQL
//! its own database, so runs do not disturb one another, and reports only what the
//! receiver saw (and, on PostgreSQL, what the server spent).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::herald::{TOKEN, Target, machine_cpu_seconds, own_cpu_seconds};
use crate::load::{Body, Published, order_created, post_direct, publish, publish_bodies};
use crate::receiver::Receiver;
use crate::report::{Report, Shape};
use crate::{Options, Scenario};

/// What `all` runs. The baselines (ceiling and relay) run twice, first and again before
/// the backlog (whose gigabyte of writeback disturbs what follows): the machine drifts,
/// and ratios use the higher of the two figures.
const ALL: [Scenario; 14] = [
    Scenario::Ceiling,
    Scenario::Relay,
    Scenario::RelayFanout,
    Scenario::Throughput,
    Scenario::Fanout,
    Scenario::Filters,
    Scenario::Entities,
    Scenario::Tenants,
    Scenario::Slow,
    Scenario::Flaky,
    Scenario::Ceiling,
    Scenario::Relay,
    Scenario::RelayFanout,
    Scenario::Backlog,
];

pub(crate) async fn run(options: &Options) -> anyhow::Result<Vec<Report>> {
    let mut list = Vec::new();
    for &scenario in &options.scenarios {
        match scenario {
            Scenario::All => list.extend(ALL),
            one => list.push(one),
        }
    }
    let mut reports = Vec::new();
    for scenario in list {
        let report = match scenario {
            Scenario::Ceiling => ceiling(options).await?,
            Scenario::Relay => relay(options, 1).await?,
            Scenario::RelayFanout => relay(options, 10).await?,
            Scenario::Throughput => throughput(options).await?,
            Scenario::Fanout => fanout(options).await?,
            Scenario::Filters => filters(options).await?,
            Scenario::Entities => {
                // Two reports: with entities, then the baseline it is compared with.
                let (with, baseline) = entities(options).await?;
                reports.push(with);
                baseline
            }
            Scenario::Tenants => tenants(options).await?,
            Scenario::Slow => slow(options).await?,
            Scenario::Flaky => flaky(options).await?,
            Scenario::Backlog => backlog(options).await?,
            Scenario::Lists => crate::lists::lists(options).await?,
            Scenario::Schema => crate::schema::schema_cost(options).await?,
            Scenario::Retention => crate::retention::retention(options).await?,
            Scenario::All => unreachable!("expanded above"),
        };
        reports.push(report);
    }
    let ceilings = reports.iter().filter_map(|r| r.get("requests/s"));
    if let Some(limit) = ceilings.reduce(f64::max) {
        for report in &mut reports {
            if let Some(rate) = report.get("deliveries/s") {
                report.add("deliveries/s as % of ceiling", rate / limit * 100.0, "%");
            }
        }
    }
    // Herald's rate as a share of the relay's with the same shape of workload (the higher,
    // if the relay ran twice).
    let best_relay = |shape: Shape| {
        reports
            .iter()
            .filter(|r| r.baseline_for == Some(shape))
            .filter_map(|r| r.get("deliveries/s"))
            .reduce(f64::max)
    };
    let relays = [
        (Shape::OneEndpoint, best_relay(Shape::OneEndpoint)),
        (Shape::Fanout, best_relay(Shape::Fanout)),
    ];
    for report in &mut reports {
        let baseline = relays
            .iter()
            .find(|(shape, _)| report.compare_with == Some(*shape))
            .and_then(|(_, rate)| *rate);
        if let (Some(relay), Some(rate)) = (baseline, report.get("deliveries/s")) {
            report.add("deliveries/s as % of relay", rate / relay * 100.0, "%");
        }
    }
    Ok(reports)
}

pub(crate) fn scaled(options: &Options, n: usize) -> usize {
    ((n as f64 * options.scale) as usize).max(10)
}

pub(crate) fn progress(options: &Options, n: usize, what: &str) -> ProgressBar {
    if options.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

/// Creates `apps` applications with `per_app` endpoints each, endpoint `k` of every app
/// pointing at `/e{k}` on the receiver. Returns the app ids.
pub(crate) async fn setup(
    herald: &Target,
    receiver_base: &str,
    apps: usize,
    per_app: usize,
) -> anyhow::Result<Vec<String>> {
    setup_with(herald, receiver_base, apps, per_app, json!({})).await
}

/// As `setup`, with `extra` fields (filter, transform…) on every endpoint.
async fn setup_with(
    herald: &Target,
    receiver_base: &str,
    apps: usize,
    per_app: usize,
    extra: serde_json::Value,
) -> anyhow::Result<Vec<String>> {
    let client = reqwest::Client::new();
    let mut ids = Vec::with_capacity(apps);
    for a in 0..apps {
        let app: serde_json::Value = client
            .post(herald.url("/api/v1/app"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": format!("tenant-{a}")}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = app["id"].as_str().context("app id")?.to_owned();
        for k in 0..per_app {
            client
                .post(herald.url(&format!("/api/v1/app/{id}/endpoint")))
                .bearer_auth(TOKEN)
                .json(&{
                    let mut body = extra.clone();
                    body["url"] = json!(format!("{receiver_base}/e{k}"));
                    body
                })
                .send()
                .await?
                .error_for_status()?;
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Where publish `i` goes: its application's msg endpoint (the apps in turn), on each node
/// in turn.
pub(crate) fn targets(
    herald: &Target,
    apps: Vec<String>,
) -> Arc<dyn Fn(usize) -> String + Send + Sync> {
    let urls: Vec<Vec<String>> = (0..herald.nodes())
        .map(|node| {
            apps.iter()
                .map(|a| herald.node_url(node, &format!("/api/v1/app/{a}/msg")))
                .collect()
        })
        .collect();
    Arc::new(move |i| {
        let node = &urls[i % urls.len()];
        node[i % node.len()].clone()
    })
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Publish → first arrival latencies (ms) of the published messages on `paths`, sorted.
pub(crate) fn latencies(
    published: &Published,
    arrivals: &HashMap<(String, String), Instant>,
    paths: &[String],
) -> Vec<f64> {
    let mut out: Vec<f64> = published
        .sent
        .iter()
        .flat_map(|(id, sent)| {
            paths.iter().filter_map(move |p| {
                arrivals
                    .get(&(p.clone(), id.clone()))
                    .map(|at| at.saturating_duration_since(*sent).as_secs_f64() * 1000.0)
            })
        })
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

/// What a scenario publishes: `events` spread over `apps`, each delivered on `paths`.
struct Workload<'a> {
    apps: Vec<String>,
    paths: &'a [String],
    events: usize,
}

/// How long a scenario may take to deliver everything.
const WITHIN: Duration = Duration::from_secs(600);

/// Publishes, waits for every delivery, and adds the common figures to `report`.
async fn deliver(
    options: &Options,
    report: &mut Report,
    herald: &Target,
    receiver: &Receiver,
    workload: Workload<'_>,
) -> anyhow::Result<()> {
    deliver_bodies(options, report, herald, receiver, workload, order_created()).await
}

/// As `deliver`, publishing `body(i)` as event `i`.
async fn deliver_bodies(
    options: &Options,
    report: &mut Report,
    herald: &Target,
    receiver: &Receiver,
    workload: Workload<'_>,
    body: Body,
) -> anyhow::Result<()> {
    let Workload {
        apps,
        paths,
        events: n,
    } = workload;
    let within = WITHIN;
    let deliveries_expected = n * paths.len();
    let database = herald.database();
    let database_before = match database {
        Some(database) => Some(database.snapshot().await?),
        None => None,
    };
    let cpu_before = herald.cpu_seconds();
    let own_before = own_cpu_seconds();
    let machine_before = machine_cpu_seconds();
    let before = receiver.unique();
    let start = Instant::now();
    let bar = progress(options, n, report.scenario);
    let published = publish_bodies(
        n,
        options.concurrency,
        options.rate,
        targets(herald, apps),
        body,
        &bar,
    )
    .await;
    bar.finish_and_clear();
    let accepted = published.sent.len();
    let expected = before + accepted * paths.len();
    let bar = progress(options, deliveries_expected, "delivered");
    let complete = receiver
        .wait_unique(expected, within, |got| bar.set_position(got as u64))
        .await;
    bar.finish_and_clear();
    let cpu = herald.cpu_seconds() - cpu_before;
    let own_cpu = own_cpu_seconds() - own_before;
    let machine_after = machine_cpu_seconds();
    let database_after = match database {
        Some(database) => Some(database.snapshot().await?),
        None => None,
    };
    let arrivals = receiver.arrivals();
    let lat = latencies(&published, &arrivals, paths);
    let last = arrivals.values().max().copied().unwrap_or(start);
    let elapsed = last.saturating_duration_since(start).as_secs_f64();
    if database.is_some() {
        report.add("Herald nodes on PostgreSQL", herald.nodes() as f64, "");
    }
    report.add("events published", accepted as f64, "");
    report.add("publish errors", published.failed as f64, "");
    report.add(
        "publish/s",
        accepted as f64 / published.elapsed.as_secs_f64(),
        "events/s",
    );
    report.add("deliveries received (unique)", lat.len() as f64, "");
    report.add(
        "deliveries lost",
        (accepted * paths.len()).saturating_sub(lat.len()) as f64,
        "",
    );
    report.add("deliveries/s", lat.len() as f64 / elapsed, "deliveries/s");
    report.add("latency p50", percentile(&lat, 50.0), "ms");
    report.add("latency p99", percentile(&lat, 99.0), "ms");
    report.add("latency max", percentile(&lat, 100.0), "ms");
    // Summed over the nodes; the peak RSS is the largest node's.
    let (cpu_figure, rss_figure) = if herald.is_relay() {
        ("relay CPU per 1000 deliveries", "relay peak RSS")
    } else {
        ("Herald CPU per 1000 deliveries", "Herald peak RSS")
    };
    report.add(cpu_figure, cpu / lat.len().max(1) as f64 * 1000.0, "s");
    report.add(rss_figure, herald.peak_rss_mib(), "MiB");
    // Where the machine's two cores went: deliveries/s is at most the cores divided by
    // what Herald and the benchmark spend per delivery, unless the cores idle.
    report.add(
        "benchmark CPU per 1000 deliveries",
        own_cpu / lat.len().max(1) as f64 * 1000.0,
        "s",
    );
    let (idle, total) = (
        machine_after.0 - machine_before.0,
        machine_after.1 - machine_before.1,
    );
    report.add("machine idle", idle / total.max(f64::EPSILON) * 100.0, "%");
    if herald.is_relay() {
        report.baseline_for = Some(Shape::of(paths.len()));
    } else {
        report.compare_with = Some(Shape::of(paths.len()));
    }
    if !complete {
        bail!(
            "{}: only {} of {} deliveries arrived",
            report.scenario,
            receiver.unique(),
            expected
        );
    }
    if let (Some(database), Some(before), Some(after)) = (database, database_before, database_after)
    {
        database.report(report, &before, &after, lat.len()).await?;
    }
    Ok(())
}

async fn ceiling(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let n = scaled(options, 100_000);
    let bar = progress(options, n, "ceiling");
    let own_before = own_cpu_seconds();
    let elapsed = post_direct(n, options.concurrency, receiver.url("/ceiling"), &bar).await;
    let own_cpu = own_cpu_seconds() - own_before;
    bar.finish_and_clear();
    let mut report = Report::new("ceiling");
    let requests = receiver.anonymous() as f64;
    report.add("requests", requests, "");
    report.add("requests/s", requests / elapsed.as_secs_f64(), "requests/s");
    // Both ends of each exchange run in this process: the price of one HTTP exchange.
    report.add(
        "CPU per request, both ends",
        own_cpu / requests.max(1.0) * 1e6,
        "µs",
    );
    Ok(report)
}

/// The relay baseline with `throughput`'s workload (one endpoint) or `fanout`'s (ten): the
/// same events, the same receiver, the relay instead of Herald.
async fn relay(options: &Options, endpoints: usize) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let relay = Target::relay()?;
    let apps = setup(&relay, &receiver.url(""), 1, endpoints).await?;
    let paths: Vec<String> = (0..endpoints).map(|k| format!("/e{k}")).collect();
    let (mut report, events) = match endpoints {
        1 => (Report::new("relay (throughput's workload)"), 50_000),
        _ => (Report::new("relay-fanout (fanout's workload)"), 10_000),
    };
    deliver(
        options,
        &mut report,
        &relay,
        &receiver,
        Workload {
            apps,
            paths: &paths,
            events: scaled(options, events),
        },
    )
    .await?;
    Ok(report)
}

async fn throughput(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let apps = setup(&herald, &receiver.url(""), 1, 1).await?;
    let paths = ["/e0".to_owned()];
    let mut report = Report::new("throughput");
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps: apps.clone(),
            paths: &paths,
            events: scaled(options, 50_000),
        },
    )
    .await?;

    // The same at half the rate just measured: latency when Herald is not saturated.
    let rate = report.get("deliveries/s").unwrap_or(100.0) / 2.0;
    let n = ((rate * 10.0) as usize).clamp(10, scaled(options, 50_000));
    let bar = progress(options, n, "half rate");
    let before = receiver.unique();
    let published = publish(
        n,
        options.concurrency,
        Some(rate),
        targets(&herald, apps),
        &bar,
    )
    .await;
    bar.finish_and_clear();
    receiver
        .wait_unique(
            before + published.sent.len(),
            Duration::from_secs(120),
            |_| {},
        )
        .await;
    let lat = latencies(&published, &receiver.arrivals(), &paths);
    report.add("half-rate publish rate", rate, "events/s");
    report.add("half-rate latency p50", percentile(&lat, 50.0), "ms");
    report.add("half-rate latency p99", percentile(&lat, 99.0), "ms");
    report.add("half-rate latency max", percentile(&lat, 100.0), "ms");
    Ok(report)
}

async fn fanout(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let apps = setup(&herald, &receiver.url(""), 1, 10).await?;
    let paths: Vec<String> = (0..10).map(|k| format!("/e{k}")).collect();
    let mut report = Report::new("fanout (10 endpoints)");
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps,
            paths: &paths,
            events: scaled(options, 10_000),
        },
    )
    .await?;
    Ok(report)
}

/// A filter and a transform of the kind platforms use, matching every benchmark event.
fn rules() -> serde_json::Value {
    json!({
        "transform": {
            "map": {"payload.status": {"created": "new", "paid": "settled"}},
            "set": {"payload.source": {"value": "bench"}},
            "remove": ["payload.note"]
        },
        "filter": {
            "$and": [
                {"payload.status": {"$in": ["new", "settled"]}},
                {"payload.customer.id": {"$startsWith": "cus-"}},
                {"payload.lines.0.qty": {"$gte": 1}},
                {"eventType": {"$regex": "^order\\."}}
            ]
        }
    })
}

async fn filters(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("filters (fan-out 10, a filter and a transform on each)");
    // The rules alone, in this process: what one endpoint's evaluation costs.
    let spec = rules();
    let filter = filter::Filter::compile(&spec["filter"]).context("benchmark filter")?;
    let transform =
        filter::Transform::compile(&spec["transform"]).context("benchmark transform")?;
    let document = json!({"eventType": "order.created", "channels": [], "tags": [], "payload": crate::load::payload(1)});
    let rounds = scaled(options, 100_000);
    let start = Instant::now();
    let mut matched = 0usize;
    for _ in 0..rounds {
        let mut d = document.clone();
        transform.apply(&mut d);
        matched += usize::from(filter.matches(&d));
    }
    let per = start.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    let start = Instant::now();
    for _ in 0..rounds {
        matched += usize::from(filter.matches(&document));
    }
    let filter_only = start.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    anyhow::ensure!(matched > 0, "the benchmark rules match its events");
    report.add("filter alone, per evaluation", filter_only, "µs");
    report.add("copy + transform + filter, per endpoint", per, "µs");

    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let apps = setup_with(&herald, &receiver.url(""), 1, 10, spec).await?;
    let paths: Vec<String> = (0..10).map(|k| format!("/e{k}")).collect();
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps,
            paths: &paths,
            events: scaled(options, 10_000),
        },
    )
    .await?;
    Ok(report)
}

/// Mean time of a call of `f` over `rounds` calls, in microseconds.
fn micros(rounds: usize, mut f: impl FnMut(usize)) -> f64 {
    let start = Instant::now();
    for round in 0..rounds {
        f(round);
    }
    start.elapsed().as_secs_f64() / rounds as f64 * 1e6
}

/// Entity updates: `/e0` is a diff endpoint keeping `guid`, `/e1` gets the full payload.
/// Returns the report with entities and the baseline's (the same events without
/// `entityId`, to the same endpoints: no snapshots, both get the full payload).
async fn entities(options: &Options) -> anyhow::Result<(Report, Report)> {
    let mut report = Report::new("entities (5 KB case, 10 % of keys change; diff + full)");
    // The diff alone, in this process, over successive versions of one case.
    let diff = filter::Diff::compile(&["guid".to_owned()]).context("benchmark diff")?;
    let texts = crate::entity::versions(0, 17);
    let values: Vec<serde_json::Value> = texts
        .iter()
        .map(|t| serde_json::from_str(t))
        .collect::<Result<_, _>>()?;
    let pairs = texts.len() - 1;
    let leaves = crate::entity::leaves(&values[0]).len();
    let mut changed = 0usize;
    let mut diff_bytes = 0usize;
    for p in 0..pairs {
        let body = diff
            .apply(&values[p], &values[p + 1])
            .context("successive versions differ")?;
        changed += crate::entity::leaves(&body).len() - 1; // less the kept guid
        diff_bytes += body.to_string().len();
    }
    let payload_bytes = texts.iter().map(String::len).sum::<usize>() / texts.len();
    let rounds = scaled(options, 20_000);
    let mut sink = 0usize;
    let alone = micros(rounds, |r| {
        let p = r % pairs;
        sink += usize::from(diff.apply(&values[p], &values[p + 1]).is_some());
    });
    // At publish, in the store's write: the previous snapshot is parsed, the payload
    // already is.
    let publish_side = micros(rounds, |r| {
        let p = r % pairs;
        let previous: serde_json::Value = serde_json::from_str(&texts[p]).expect("json");
        sink += usize::from(diff.apply(&previous, &values[p + 1]).is_some());
    });
    // At the attempt: both parsed, diffed, the body serialized.
    let attempt_side = micros(rounds, |r| {
        let p = r % pairs;
        let previous: serde_json::Value = serde_json::from_str(&texts[p]).expect("json");
        let current: serde_json::Value = serde_json::from_str(&texts[p + 1]).expect("json");
        let body = diff.apply(&previous, &current).map(|b| b.to_string());
        sink += body.map_or(0, |b| b.len());
    });
    let parse_one = micros(rounds, |r| {
        let value: serde_json::Value = serde_json::from_str(&texts[r % pairs]).expect("json");
        sink += usize::from(value.is_object());
    });
    anyhow::ensure!(sink > 0, "the benchmark diffs find changes");
    report.add("full payload size", payload_bytes as f64, "bytes");
    report.add(
        "diff body size (mean)",
        (diff_bytes / pairs) as f64,
        "bytes",
    );
    report.add("leaf values per case", leaves as f64, "");
    report.add(
        "leaf values changed per update (mean)",
        changed as f64 / pairs as f64,
        "",
    );
    report.add("diff alone (parsed values)", alone, "µs");
    report.add("parse previous + diff (at publish)", publish_side, "µs");
    report.add(
        "parse both + diff + serialize (attempt)",
        attempt_side,
        "µs",
    );
    report.add(
        "diff work per event (publish + attempt)",
        publish_side + attempt_side,
        "µs",
    );
    report.add("parse one payload (for comparison)", parse_one, "µs");

    // 100 cases at full scale, each updated 200 times.
    let n = scaled(options, 20_000);
    let cases = (n / 200).max(1);
    let paths: Vec<String> = (0..2).map(|k| format!("/e{k}")).collect();
    let mut baseline = Report::new("entities baseline (same events, no entityId)");
    for (with_entities, report) in [(true, &mut report), (false, &mut baseline)] {
        let bodies = Arc::new(crate::entity::bodies(n, cases, with_entities));
        let receiver = Receiver::start().await?;
        let herald = Target::herald(options, &[]).await?;
        let apps = setup(&herald, &receiver.url(""), 1, 0).await?;
        endpoint(
            &herald,
            &apps[0],
            json!({"url": receiver.url("/e0"), "payload": "diff", "diffKeep": ["guid"]}),
        )
        .await?;
        endpoint(&herald, &apps[0], json!({"url": receiver.url("/e1")})).await?;
        if with_entities {
            report.add("entities (cases)", cases as f64, "");
        }
        let writer_before = herald.thread_cpu_seconds(WRITER);
        deliver_bodies(
            options,
            report,
            &herald,
            &receiver,
            Workload {
                apps,
                paths: &paths,
                events: n,
            },
            Arc::new(move |i| bodies[i].clone()),
        )
        .await?;
        // The embedded store's writer thread is where snapshots are read and replaced,
        // and the publish-time diff runs, one message at a time (PostgreSQL has none).
        if herald.database().is_none() {
            let writer = herald.thread_cpu_seconds(WRITER) - writer_before;
            let delivered = report.get("deliveries received (unique)").unwrap_or(0.0);
            report.add(
                "store writer CPU per 1000 deliveries",
                writer / delivered.max(1.0) * 1000.0,
                "s",
            );
        }
    }
    let figure = |r: &Report, name| r.get(name).unwrap_or(f64::NAN);
    let cpu = "Herald CPU per 1000 deliveries";
    let writer = "store writer CPU per 1000 deliveries";
    report.add(
        "deliveries/s, entities / baseline",
        figure(&report, "deliveries/s") / figure(&baseline, "deliveries/s") * 100.0,
        "%",
    );
    report.add(
        "CPU per delivery, entities / baseline",
        figure(&report, cpu) / figure(&baseline, cpu) * 100.0,
        "%",
    );
    // Seconds per 1000 deliveries are milliseconds per delivery; two deliveries an event.
    report.add(
        "extra Herald CPU per event vs baseline",
        (figure(&report, cpu) - figure(&baseline, cpu)) * 1000.0 * paths.len() as f64,
        "µs",
    );
    if report.get(writer).is_some() {
        report.add(
            "extra writer CPU per event vs baseline",
            (figure(&report, writer) - figure(&baseline, writer)) * 1000.0 * paths.len() as f64,
            "µs",
        );
    }
    Ok((report, baseline))
}

/// The store's writer thread (see `herald.rs`: names are cut to 15 bytes).
const WRITER: &str = "herald-store-writer";

/// Adds an endpoint with `body` (its url included) to `app`.
async fn endpoint(herald: &Target, app: &str, body: serde_json::Value) -> anyhow::Result<()> {
    reqwest::Client::new()
        .post(herald.url(&format!("/api/v1/app/{app}/endpoint")))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

async fn tenants(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    let herald = Target::herald(options, &[]).await?;
    let n_apps = scaled(options, 1000);
    let apps = setup(&herald, &receiver.url(""), n_apps, 1).await?;
    let mut report = Report::new("tenants (1,000 applications)");
    report.add("applications", n_apps as f64, "");
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps,
            paths: &["/e0".to_owned()],
            events: scaled(options, 20_000),
        },
    )
    .await?;
    Ok(report)
}

async fn slow(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    receiver.behaviour.delay_ms.store(200, Ordering::Relaxed);
    let in_flight = 512;
    let limit = in_flight.to_string();
    let herald = Target::herald(
        options,
        &[
            "--max-in-flight",
            &limit,
            "--max-in-flight-per-endpoint",
            &limit,
        ],
    )
    .await?;
    let apps = setup(&herald, &receiver.url(""), 1, 1).await?;
    let mut report = Report::new("slow (receiver answers after 200 ms)");
    // Per node: several nodes on PostgreSQL have as many times more in flight.
    report.add("max in flight (configured)", in_flight as f64, "");
    report.add(
        "expected deliveries/s (in flight / 0.2 s)",
        (in_flight * herald.nodes()) as f64 / 0.2,
        "deliveries/s",
    );
    let rss_before = herald.rss_mib();
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps,
            paths: &["/e0".to_owned()],
            events: scaled(options, 20_000),
        },
    )
    .await?;
    report.add("RSS before", rss_before, "MiB");
    report.add("RSS after", herald.rss_mib(), "MiB");
    Ok(report)
}

async fn flaky(options: &Options) -> anyhow::Result<Report> {
    let receiver = Receiver::start().await?;
    receiver
        .behaviour
        .fail_permille
        .store(300, Ordering::Relaxed);
    let herald = Target::herald(
        options,
        &[
            "--retry-schedule",
            "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms",
        ],
    )
    .await?;
    let apps = setup(&herald, &receiver.url(""), 1, 1).await?;
    let mut report = Report::new("flaky (30 % of answers are 500)");
    deliver(
        options,
        &mut report,
        &herald,
        &receiver,
        Workload {
            apps,
            paths: &["/e0".to_owned()],
            events: scaled(options, 10_000),
        },
    )
    .await?;
    let unique = receiver.unique() as f64;
    report.add("requests received", receiver.requests() as f64, "");
    report.add(
        "retries (requests - unique)",
        receiver.requests() as f64 - unique,
        "",
    );
    Ok(report)
}

/// The receiver is down while `n` events are published (each first attempt fails and,
/// with no retries configured, the delivery is marked failed). Then the receiver comes up
/// and one `recover` call makes all `n` pending again: the drain rate is how fast they
/// arrive.
async fn backlog_run(
    options: &Options,
    n: usize,
    report: &mut Report,
    label: &'static str,
) -> anyhow::Result<f64> {
    let down = Receiver::free_port()?;
    let base = format!("http://{down}");
    let herald = Target::herald(options, &["--retry-schedule", "none"]).await?;
    let apps = setup(&herald, &base, 1, 1).await?;
    let app = apps[0].clone();
    let client = reqwest::Client::new();
    let endpoints: serde_json::Value = client
        .get(herald.url(&format!("/api/v1/app/{app}/endpoint")))
        .bearer_auth(TOKEN)
        .send()
        .await?
        .json()
        .await?;
    let endpoint = endpoints["data"][0]["id"]
        .as_str()
        .context("endpoint id")?
        .to_owned();
    let since = chrono::Utc::now() - chrono::Duration::minutes(1);
    let bar = progress(options, n, label);
    let published = publish(n, options.concurrency, None, targets(&herald, apps), &bar).await;
    bar.finish_and_clear();
    let stats_url = herald.url(&format!("/api/v1/app/{app}/endpoint/{endpoint}/stats"));
    let accepted = published.sent.len() as u64;
    let bar = progress(options, n, "first attempts");
    loop {
        let stats: serde_json::Value = client
            .get(&stats_url)
            .bearer_auth(TOKEN)
            .send()
            .await?
            .json()
            .await?;
        let failed = stats["fail"].as_u64().unwrap_or(0);
        bar.set_position(failed);
        if failed >= accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bar.finish_and_clear();
    let rss_pending = herald.rss_mib();
    let receiver = Receiver::start_on(down).await?;
    let start = Instant::now();
    client
        .post(herald.url(&format!("/api/v1/app/{app}/endpoint/{endpoint}/recover")))
        .bearer_auth(TOKEN)
        .json(&json!({"since": since.to_rfc3339()}))
        .send()
        .await?
        .error_for_status()?;
    let bar = progress(options, n, "drain");
    let complete = receiver
        .wait_unique(accepted as usize, Duration::from_secs(1800), |got| {
            bar.set_position(got as u64)
        })
        .await;
    bar.finish_and_clear();
    let last = receiver.arrivals().values().max().copied().unwrap_or(start);
    let rate = receiver.unique() as f64 / last.saturating_duration_since(start).as_secs_f64();
    report.add(label, accepted as f64, "pending");
    report.add(
        match label {
            "small backlog" => "small: drain rate",
            _ => "large: drain rate",
        },
        rate,
        "deliveries/s",
    );
    report.add(
        match label {
            "small backlog" => "small: RSS with all pending",
            _ => "large: RSS with all pending",
        },
        rss_pending,
        "MiB",
    );
    report.add(
        match label {
            "small backlog" => "small: peak RSS",
            _ => "large: peak RSS",
        },
        herald.peak_rss_mib(),
        "MiB",
    );
    if !complete {
        bail!(
            "backlog: only {} of {accepted} deliveries arrived",
            receiver.unique()
        );
    }
    Ok(rate)
}

async fn backlog(options: &Options) -> anyhow::Result<Report> {
    let mut report = Report::new("backlog (receiver down, then recover)");
    let small = backlog_run(
        options,
        scaled(options, 10_000),
        &mut report,
        "small backlog",
    )
    .await?;
    let large_n = ((options.backlog_events as f64 * options.scale) as usize).max(20);
    let large = backlog_run(options, large_n, &mut report, "large backlog").await?;
    report.add(
        "large drain rate / small drain rate",
        large / small * 100.0,
        "%",
    );
    Ok(report)
}
