//! `cargo run --release -p bench -- <scenario>…`: starts a loopback receiver and a Herald
//! (the `herald` binary, as a separate process so its CPU and memory can be measured),
//! publishes through the public API, and reports what the receiver actually got.
//! `herald.rs` runs and measures Herald (one node, or several on PostgreSQL) and the
//! `relay` baseline (`bin/relay.rs`), `postgres.rs` the scratch databases and the
//! server's figures, `receiver.rs` is the receiver, `load.rs` the publisher, `entity.rs`
//! the entity updates, `scenarios.rs` the delivery scenarios, `lists.rs` the console's
//! lists, `schema.rs` the cost of enforced schemas, `retention.rs` the store's size under
//! retention, `report.rs` the table and JSON.

mod entity;
mod herald;
mod lists;
mod load;
mod postgres;
mod receiver;
mod report;
mod retention;
mod scenarios;
mod schema;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scenario {
    Throughput,
    Fanout,
    /// Fan-out 10 with a filter and a transform on every endpoint, and the cost of
    /// evaluating them alone.
    Filters,
    /// Entity updates (a ~5 KB case, ~10 % of its keys changing) to a diff endpoint and a
    /// full-payload endpoint, against the same events without `entityId`; and the cost of
    /// diffing alone.
    Entities,
    Tenants,
    Slow,
    Flaky,
    Backlog,
    /// The load generator straight to the receiver: the price of an HTTP exchange.
    Ceiling,
    /// The `relay` baseline (forwarding only, no storage) with `throughput`'s workload.
    Relay,
    /// The `relay` baseline with `fanout`'s workload.
    RelayFanout,
    /// The first page of every list the console and the portal show, with 1,000
    /// endpoints and 100,000 messages in one application (not part of `all`).
    Lists,
    /// What an enforced event-type schema costs a publish, against none (not part of
    /// `all`).
    Schema,
    /// A steady load on a Herald keeping everything, then on one with a 10 s retention:
    /// store size over time, removals, latency (not part of `all`).
    Retention,
    /// Every scenario in one run, with ratios against `ceiling` and `relay`.
    All,
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Benchmark Herald on loopback")]
pub(crate) struct Options {
    /// One or more scenarios, run in this order; ratios are taken within the run.
    #[arg(value_enum, required = true)]
    scenarios: Vec<Scenario>,
    /// Scale every scenario's event count by this factor (e.g. 0.01 for a smoke run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Events of the `backlog` scenario's large run.
    #[arg(long, default_value_t = 1_000_000)]
    backlog_events: usize,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// A PostgreSQL superuser's URL (postgres://…): each scenario then runs Herald on a
    /// database of its own made through it (and dropped afterwards), and reports the
    /// server's CPU, commits and WAL per delivery.
    #[arg(long)]
    database_url: Option<String>,
    /// Herald nodes on that database, 1 to 3; publishes go to each in turn.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=3), requires = "database_url")]
    nodes: u8,
    /// Publish every delivery scenario's events at this rate (events/s, all publishers
    /// together) instead of as fast as Herald takes them: CPU per delivery at one load for
    /// every setup, none of them saturating the machine.
    #[arg(long, value_parser = positive_rate)]
    rate: Option<f64>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Herald exports traces (a span for each publish and each attempt) to a sink in the
    /// benchmark that answers OTLP/HTTP requests and drops them: the cost of tracing.
    #[arg(long)]
    otlp: bool,
    /// The sink's address, once started.
    #[arg(skip)]
    otlp_sink: Option<String>,
}

fn positive_rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!("expected events per second above 0, got {value:?}")),
    }
}

fn main() -> anyhow::Result<()> {
    let mut options = Options::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if options.otlp {
        options.otlp_sink = Some(runtime.block_on(otlp_sink())?);
    }
    let reports = runtime.block_on(scenarios::run(&options))?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report::json(&reports))?);
    } else {
        print!("{}", report::table(&reports));
    }
    Ok(())
}

/// An OTLP/HTTP collector that accepts every export and keeps nothing; returns its URL.
async fn otlp_sink() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().fallback(|| async { "" });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(url)
}

#[cfg(test)]
mod tests;
