//! `herald backup PATH`: a consistent copy of the embedded store of a data directory,
//! taken while Herald runs on it (no lock, no pause), into a new directory that `herald
//! serve --data-dir PATH` starts on: the database and the admin token file.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::TOKEN_FILE;

pub(crate) fn run(data_dir: &Path, to: &Path, on_postgres: bool) -> anyhow::Result<()> {
    if on_postgres {
        bail!(
            "HERALD_DATABASE_URL is set: Herald's data is in PostgreSQL, which `herald backup` \
             does not copy. Back the database up with pg_dump or the platform's snapshots \
             (docs/OPERATIONS.md)"
        );
    }
    let database = data_dir.join("herald.db");
    if !database.exists() {
        bail!(
            "no Herald store in {}: nothing to back up",
            data_dir.display()
        );
    }
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!(
            "{} exists and is not empty: a backup goes to a new directory",
            to.display()
        );
    }
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    let report = store_sqlite::backup(&database, &to.join("herald.db"))
        .with_context(|| format!("copying {}", database.display()))?;
    let token = data_dir.join(TOKEN_FILE);
    if token.exists() {
        copy_private(&token, &to.join(TOKEN_FILE))?;
    }
    println!(
        "Backed up {} to {}: {} bytes, {} deliveries pending. Start Herald on the copy with \
         `herald serve --data-dir {}`.",
        data_dir.display(),
        to.display(),
        report.bytes,
        report.pending,
        to.display()
    );
    Ok(())
}

/// Copies a secret, readable by its owner only.
fn copy_private(from: &Path, to: &Path) -> anyhow::Result<()> {
    let text = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(to)
        .with_context(|| format!("creating {}", to.display()))?;
    std::io::Write::write_all(&mut file, &text).with_context(|| format!("writing {}", to.display()))
}
