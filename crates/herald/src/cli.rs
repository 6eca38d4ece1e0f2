//! The commands: `serve`, `token`, `openapi`. Every `serve` flag can also be set with a
//! `HERALD_*` environment variable or in `herald.toml`; flags win over the environment,
//! which wins over the file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{self, Settings};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a webhook delivery server that speaks the Svix API"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery worker.
    Serve(Box<ServeArgs>),
    /// Print the admin token kept in the data directory.
    Token(TokenArgs),
    /// Print the OpenAPI document of the API.
    Openapi,
}

/// Flags of `herald serve`. Each is optional here; `config.rs` applies the file and defaults.
#[derive(Debug, Default, Args)]
pub(crate) struct ServeArgs {
    /// A TOML file with settings (see config.example.toml).
    #[arg(long, env = "HERALD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8071].
    #[arg(long, env = "HERALD_BIND")]
    pub(crate) bind: Option<String>,
    /// Where the embedded store keeps its files [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The admin token; generated and kept in the data directory when not set.
    #[arg(long, env = "HERALD_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    /// `full` syncs every commit to disk before answering; `normal` may lose the last
    /// commits on power loss (not on a crash) [default: full].
    #[arg(long, env = "HERALD_SYNC")]
    pub(crate) sync: Option<String>,
    /// Cap on the embedded database's size, e.g. `10GiB`; beyond it publishes answer 507
    /// (nothing stored) instead of filling the disk [default: none].
    #[arg(long, env = "HERALD_MAX_STORE_SIZE")]
    pub(crate) max_store_size: Option<String>,
    /// Largest accepted payload in bytes [default: 1048576].
    #[arg(long, env = "HERALD_MAX_PAYLOAD_BYTES")]
    pub(crate) max_payload_bytes: Option<String>,
    /// Delays before each retry, e.g. `5s,5m,30m,2h,5h,10h,10h` (the default); `none` for no retries.
    #[arg(long, env = "HERALD_RETRY_SCHEDULE")]
    pub(crate) retry_schedule: Option<String>,
    /// Random spread of each retry delay, 0 to 1 [default: 0.2].
    #[arg(long, env = "HERALD_RETRY_JITTER")]
    pub(crate) retry_jitter: Option<String>,
    /// Longest wait a receiver's Retry-After can ask for [default: 1h].
    #[arg(long, env = "HERALD_MAX_RETRY_AFTER")]
    pub(crate) max_retry_after: Option<String>,
    /// Time limit of one attempt [default: 30s].
    #[arg(long, env = "HERALD_ATTEMPT_TIMEOUT")]
    pub(crate) attempt_timeout: Option<String>,
    /// Concurrent attempts in all [default: 512].
    #[arg(long, env = "HERALD_MAX_IN_FLIGHT")]
    pub(crate) max_in_flight: Option<String>,
    /// Concurrent attempts to one endpoint [default: 32].
    #[arg(long, env = "HERALD_MAX_IN_FLIGHT_PER_ENDPOINT")]
    pub(crate) max_in_flight_per_endpoint: Option<String>,
    /// Deliveries held in memory; the rest wait in the store [default: 20000].
    #[arg(long, env = "HERALD_MAX_QUEUED")]
    pub(crate) max_queued: Option<String>,
    /// Deliveries of one endpoint held in memory at most, so that one endpoint's backlog
    /// leaves room for the others [default: a tenth of max_queued, at least twice
    /// max_in_flight_per_endpoint].
    #[arg(long, env = "HERALD_MAX_QUEUED_PER_ENDPOINT")]
    pub(crate) max_queued_per_endpoint: Option<String>,
    /// How often the store is polled for due retries [default: 250ms].
    #[arg(long, env = "HERALD_POLL_INTERVAL")]
    pub(crate) poll_interval: Option<String>,
    /// How long attempts in flight may take to finish on shutdown [default: 10s].
    #[arg(long, env = "HERALD_DRAIN_TIMEOUT")]
    pub(crate) drain_timeout: Option<String>,
    /// Allow deliveries to this address range, e.g. `127.0.0.0/8` or `10.1.2.3`; repeatable
    /// or comma-separated. By default only public addresses are called.
    #[arg(
        long = "allow-destination",
        env = "HERALD_ALLOW_DESTINATION",
        value_delimiter = ','
    )]
    pub(crate) allow_destination: Vec<String>,
    /// Refuse deliveries to this address range even when it is public or allowed, e.g. your
    /// own public addresses; repeatable or comma-separated. `0.0.0.0/0,::/0` refuses every
    /// destination (an instance that accepts and records but never calls out).
    #[arg(
        long = "deny-destination",
        env = "HERALD_DENY_DESTINATION",
        value_delimiter = ','
    )]
    pub(crate) deny_destination: Vec<String>,
    /// Refuse destinations without TLS (`http://`, `amqp://`).
    #[arg(long, env = "HERALD_HTTPS_ONLY")]
    pub(crate) https_only: bool,
    /// A PEM file of CA certificates trusted for HTTPS receivers and `amqps` brokers
    /// besides the system's (destinations behind a private CA).
    #[arg(long, env = "HERALD_TLS_CA_FILE")]
    pub(crate) tls_ca_file: Option<PathBuf>,
    /// An endpoint failing continuously for this long is disabled; `none` never disables
    /// [default: 5d].
    #[arg(long, env = "HERALD_AUTO_DISABLE_AFTER")]
    pub(crate) auto_disable_after: Option<String>,
    /// The uid of the application Herald publishes operational events into
    /// (`endpoint.disabled`, `message.attempt.exhausted`), if it exists
    /// [default: herald-operator].
    #[arg(long, env = "HERALD_OPERATOR_APP")]
    pub(crate) operator_app: Option<String>,
    /// Entity snapshots not updated for this long are dropped [default: 30d].
    #[arg(long, env = "HERALD_ENTITY_RETENTION")]
    pub(crate) entity_retention: Option<String>,
    /// Log filter, e.g. `info` or `herald=debug,info` [default: info].
    #[arg(long, env = "HERALD_LOG")]
    pub(crate) log: Option<String>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The data directory of the Herald whose token to print [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let settings = Settings::load(*args)?;
            crate::serve::run(settings)
        }
        Command::Token(args) => {
            let dir = args.data_dir.unwrap_or_else(config::default_data_dir);
            let token = config::stored_token(&dir)?.with_context(|| {
                format!(
                    "no admin token in {}: start `herald serve` once, or set HERALD_ADMIN_TOKEN",
                    dir.display()
                )
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Openapi => {
            let doc = api::openapi();
            println!(
                "{}",
                serde_json::to_string_pretty(&doc).context("rendering the OpenAPI document")?
            );
            Ok(())
        }
    }
}
