//! `herald backup PATH`: a consistent copy of the embedded store of a data directory,
//! taken while Herald runs on it (no lock, no pause), into a new directory that `herald
//! serve --data-dir PATH` starts on: the database and the admin token file.

use std::path::Path;

use anyhow::{Context, bail};

use crate::config::{TOKEN_FILE, write_private};

pub(crate) fn run(data_dir: &Path, to: &Path, on_postgres: bool) -> anyhow::Result<()> {
    if on_postgres {
        bail!(
            "a database URL is set (HERALD_DATABASE_URL or the settings file's [store] \
             database_url): Herald's data is in PostgreSQL, which `herald backup` does not copy. Back the database up with pg_dump or the platform's snapshots \
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
        let secret =
            std::fs::read(&token).with_context(|| format!("reading {}", token.display()))?;
        write_private(&to.join(TOKEN_FILE), &secret)?;
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
