//! The commands: `serve`, `token`, `backup`, `openapi`. `serve`'s settings are in
//! `settings.rs`: each a flag, a `HERALD_*` variable and a key of `herald.toml`; flags win
//! over the environment, which wins over the file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use crate::config::{self, Settings};
use crate::settings::{self, ServeArgs};

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("HERALD_COMMIT"), ")"),
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
    /// Copy a data directory's embedded store, consistently, while Herald runs on it.
    Backup(BackupArgs),
    /// Print the OpenAPI document of the API.
    Openapi,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The data directory of the Herald whose token to print [default: ./herald-data]
    /// (the embedded store's; on PostgreSQL the token is kept only as a digest).
    #[arg(long, env = "HERALD_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// A new directory for the copy: a data directory `herald serve --data-dir` starts on.
    path: PathBuf,
    /// The data directory to copy [default: ./herald-data].
    #[arg(long, env = "HERALD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Set when Herald runs on PostgreSQL, whose data this command does not copy.
    #[arg(long, env = "HERALD_DATABASE_URL", hide_env_values = true, hide = true)]
    database_url: Option<String>,
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let args = match args.config.clone() {
                Some(file) => with_file(&file)?,
                None => *args,
            };
            crate::serve::run(Settings::from_args(args)?)
        }
        Command::Token(args) => {
            let dir = args.data_dir.unwrap_or_else(config::default_data_dir);
            let token = config::stored_token(&dir)?.with_context(|| {
                format!(
                    "no admin token in {}: start `herald serve` once, or set HERALD_ADMIN_TOKEN \
                     (on PostgreSQL no node keeps the token: the first node printed it once, \
                     and only its digest is in the database)",
                    dir.display()
                )
            })?;
            println!("{token}");
            Ok(())
        }
        Command::Backup(args) => crate::backup::run(
            &args.data_dir.unwrap_or_else(config::default_data_dir),
            &args.path,
            args.database_url.is_some(),
        ),
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

/// `serve`'s settings parsed again with `file`'s entries as their defaults. The command
/// line was parsed once already, so an error now is the file's: it names the key.
fn with_file(file: &std::path::Path) -> anyhow::Result<ServeArgs> {
    let serve = Cli::command()
        .find_subcommand("serve")
        .cloned()
        .context("the serve command")?;
    let serve = settings::with_file(serve, file)?;
    let matches = Cli::command()
        .mut_subcommand("serve", |_| serve)
        .try_get_matches_from(std::env::args_os())
        .map_err(|err| {
            let key = match err.get(clap::error::ContextKind::InvalidArg) {
                Some(clap::error::ContextValue::String(arg)) => arg
                    .trim_start_matches('-')
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .replace('-', "_"),
                _ => String::new(),
            };
            let rendered = err.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let what = first.strip_prefix("error: ").unwrap_or(first);
            anyhow::anyhow!("{}: `{key}`: {what}", file.display())
        })?;
    match Cli::from_arg_matches(&matches)?.command {
        Command::Serve(args) => Ok(*args),
        _ => unreachable!("parsed as serve before"),
    }
}
