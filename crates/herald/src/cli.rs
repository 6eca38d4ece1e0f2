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
    /// The settings file that Herald runs with: its `[store] data_dir` when no flag or
    /// variable names one.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
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
    /// The settings file that Herald runs with: its `[store]` section when no flag or
    /// variable says otherwise.
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
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
            let dir = match (args.data_dir, &args.config) {
                (Some(dir), _) => dir,
                (None, Some(file)) => store_settings(file)?.data_dir,
                (None, None) => config::default_data_dir(),
            };
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
        Command::Backup(args) => {
            let file = args.config.as_deref().map(store_settings).transpose()?;
            let data_dir = args
                .data_dir
                .or_else(|| file.as_ref().map(|s| s.data_dir.clone()))
                .unwrap_or_else(config::default_data_dir);
            let on_postgres =
                args.database_url.is_some() || file.is_some_and(|s| s.database_url.is_some());
            crate::backup::run(&data_dir, &args.path, on_postgres)
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

/// For a bad value that a `HERALD_*` variable set (its flag not on the command line): the
/// error naming the variable, which clap's names only the flag.
pub(crate) fn from_variable(err: &clap::Error) -> Option<String> {
    let Some(clap::error::ContextValue::String(arg)) =
        err.get(clap::error::ContextKind::InvalidArg)
    else {
        return None;
    };
    let long = arg.trim_start_matches('-').split(' ').next()?;
    let command = Cli::command();
    let variable = command
        .get_subcommands()
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))?
        .get_env()?
        .to_str()?
        .to_owned();
    let flag = format!("--{long}");
    let on_command_line = std::env::args_os().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    if on_command_line || std::env::var_os(&variable).is_none() {
        return None;
    }
    Some(format!("{variable}: {}", reason(err)))
}

/// What clap says is wrong, without its `error: ` and its advice.
fn reason(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// `serve`'s settings parsed again with `file`'s entries as their defaults. The command
/// line was parsed once already, so an error now is the file's: it names the key.
fn with_file(file: &std::path::Path) -> anyhow::Result<ServeArgs> {
    serve_args(file, std::env::args_os().collect())
}

/// The `[store]` settings `herald serve --config file` would run with (the environment
/// applies as for `serve`), for the commands that work on its store.
fn store_settings(file: &std::path::Path) -> anyhow::Result<settings::Store> {
    Ok(serve_args(file, vec!["herald".into(), "serve".into()])?.store)
}

/// `serve`'s settings from `argv`, with `file`'s entries as their defaults.
fn serve_args(file: &std::path::Path, argv: Vec<std::ffi::OsString>) -> anyhow::Result<ServeArgs> {
    let serve = Cli::command()
        .find_subcommand("serve")
        .cloned()
        .context("the serve command")?;
    let serve = settings::with_file(serve, file)?;
    let matches = Cli::command()
        .mut_subcommand("serve", |_| serve)
        .try_get_matches_from(argv)
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
            anyhow::anyhow!("{}: `{key}`: {}", file.display(), reason(&err))
        })?;
    match Cli::from_arg_matches(&matches)?.command {
        Command::Serve(args) => Ok(*args),
        _ => unreachable!("parsed as serve before"),
    }
}
