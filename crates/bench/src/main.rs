//! `cargo run --release -p bench -- <scenario>`: starts a loopback receiver and a Herald
//! (the `herald` binary, as a separate process so its CPU and memory can be measured),
//! publishes through the public API, and reports what the receiver actually got.
//! `herald.rs` runs and measures Herald, `receiver.rs` is the receiver, `load.rs` the
//! publisher, `entity.rs` the entity updates, `scenarios.rs` the scenarios, `report.rs`
//! the table and JSON.

mod entity;
mod herald;
mod load;
mod receiver;
mod report;
mod scenarios;

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
    Ceiling,
    /// Every scenario in one run, with ratios against `ceiling`.
    All,
}

#[derive(Debug, Clone, Parser)]
#[command(about = "Benchmark Herald on loopback")]
pub(crate) struct Options {
    #[arg(value_enum)]
    scenario: Scenario,
    /// Scale every scenario's event count by this factor (e.g. 0.01 for a smoke run).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Events of the `backlog` scenario's large run.
    #[arg(long, default_value_t = 1_000_000)]
    backlog_events: usize,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reports = runtime.block_on(scenarios::run(&options))?;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report::json(&reports))?);
    } else {
        print!("{}", report::table(&reports));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
