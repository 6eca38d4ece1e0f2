//! The `herald` binary: parses the command line, sets up logging and the runtime, and
//! runs a command. `cli.rs` has the commands, `settings.rs` declares `serve`'s settings
//! (flags, environment, `herald.toml`), `config.rs` checks them together, `serve.rs`
//! wires the pipeline and handles shutdown, `metrics.rs` installs the metrics recorder,
//! `traces.rs` the OTLP trace exporter, `backup.rs` copies a running embedded store.

mod backup;
mod cli;
mod config;
mod metrics;
mod serve;
mod settings;
mod traces;

use clap::Parser as _;

/// mimalloc: the delivery path allocates many small, short-lived buffers (ids, headers,
/// JSON), which it serves faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match cli::from_variable(&err) {
            // A bad value that came from a variable, not the command line: say which.
            Some(said) => {
                eprintln!("herald: {said}");
                return std::process::ExitCode::from(2);
            }
            None => err.exit(),
        },
    };
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("herald: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
