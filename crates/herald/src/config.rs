//! The settings `serve` runs with: the sections as flags, variables and the file set them
//! (`settings.rs`, each setting declared once), checked together, with what follows from
//! them (the lease's default, an endpoint's share of memory, the destination policy, the
//! trusted certificates). Also the admin token's file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use dispatch::RetryPolicy;

use crate::settings::{self, ServeArgs};

/// Everything `serve` needs, checked.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) server: settings::Server,
    pub(crate) store: settings::Store,
    pub(crate) delivery: settings::Delivery,
    pub(crate) ui: settings::Ui,
    pub(crate) telemetry: settings::Telemetry,
    /// PostgreSQL instead of the embedded store.
    pub(crate) database: Option<Database>,
    pub(crate) retry: RetryPolicy,
    /// The lease, given or by default.
    pub(crate) lease: Duration,
    /// An endpoint's share of memory, given or by default.
    pub(crate) max_queued_per_endpoint: usize,
    pub(crate) destinations: transport::DestinationPolicy,
    /// CA certificates trusted for HTTPS receivers and `amqps` brokers besides the system's.
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
}

/// Where a PostgreSQL store is. The URL may hold a password: it is never logged
/// (`Database::display` leaves it out).
#[derive(Clone)]
pub(crate) struct Database {
    pub(crate) url: String,
    pub(crate) max_connections: usize,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display())
    }
}

impl Database {
    /// The URL without its password, for logs and errors.
    pub(crate) fn display(&self) -> String {
        model::destination::masked_url(&self.url).into_owned()
    }
}

pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("./herald-data")
}

impl Settings {
    /// Checks what one setting alone cannot, and works out what follows.
    pub(crate) fn from_args(args: ServeArgs) -> anyhow::Result<Self> {
        let ServeArgs {
            config: _,
            server,
            store,
            delivery,
            destinations,
            ui,
            telemetry,
        } = args;
        // An attempt starts only with at least half its lease left: half a lease must
        // outlast the attempt, or another node could take the delivery over mid-attempt.
        let timeout = delivery.attempt_timeout;
        let lease = delivery
            .lease
            .unwrap_or(timeout * 2 + Duration::from_secs(60));
        if lease <= timeout * 2 {
            bail!(
                "lease: must be more than twice attempt_timeout ({}), so that an attempt ends before anyone may take its delivery over",
                humantime_like(timeout * 2)
            );
        }
        let (max_queued, per_endpoint_in_flight) =
            (delivery.max_queued, delivery.max_in_flight_per_endpoint);
        let max_queued_per_endpoint = match delivery.max_queued_per_endpoint {
            None => (max_queued / 10)
                .max(2 * per_endpoint_in_flight)
                .min(max_queued),
            Some(value) => {
                if value > max_queued {
                    bail!(
                        "max_queued_per_endpoint: {value} is more than max_queued ({max_queued})"
                    );
                }
                if value < per_endpoint_in_flight {
                    bail!(
                        "max_queued_per_endpoint: {value} is less than \
                         max_in_flight_per_endpoint ({per_endpoint_in_flight}), so an \
                         endpoint could not use all its concurrent attempts"
                    );
                }
                value
            }
        };
        let extra_roots = match &destinations.tls_ca_file {
            Some(path) => {
                certificates(path).with_context(|| format!("tls_ca_file: {}", path.display()))?
            }
            None => Vec::new(),
        };
        Ok(Self {
            database: store.database_url.clone().map(|url| Database {
                url,
                max_connections: store.database_max_connections,
            }),
            retry: RetryPolicy {
                schedule: delivery.retry_schedule.0.clone(),
                jitter: delivery.retry_jitter,
                max_retry_after: delivery.max_retry_after,
            },
            lease,
            max_queued_per_endpoint,
            destinations: transport::DestinationPolicy {
                allow: destinations.allow_destination,
                deny: destinations.deny_destination,
                https_only: destinations.https_only,
            },
            extra_roots,
            server,
            store,
            delivery,
            ui,
            telemetry,
        })
    }

    /// Who may read `/metrics`: `None` when it is off.
    pub(crate) fn metrics(&self) -> Option<api::MetricsAccess> {
        match self.telemetry.metrics {
            settings::Metrics::Token => Some(api::MetricsAccess::Token),
            settings::Metrics::Public => Some(api::MetricsAccess::Public),
            settings::Metrics::Off => None,
        }
    }
}

/// The certificates of a PEM file; at least one.
fn certificates(path: &Path) -> anyhow::Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::pem::PemObject as _;
    let text = std::fs::read(path).context("cannot be read")?;
    let certificates = rustls::pki_types::CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .context("is not a PEM file of certificates")?;
    if certificates.is_empty() {
        bail!("holds no PEM certificate (-----BEGIN CERTIFICATE-----)");
    }
    Ok(certificates)
}

/// A duration as the settings write it, in whole seconds or milliseconds.
fn humantime_like(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub(crate) const TOKEN_FILE: &str = "admin-token";

/// The admin token kept in the data directory, if any.
pub(crate) fn stored_token(data_dir: &Path) -> anyhow::Result<Option<String>> {
    let path = data_dir.join(TOKEN_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// A new random admin token: `hrd_` and 48 hex digits (192 bits).
pub(crate) fn new_token() -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "hrd_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Writes a secret to a new file, readable by its owner only, and syncs it.
pub(crate) fn write_private(path: &Path, secret: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(secret)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Makes a new admin token and keeps it in the data directory, readable by the owner only.
pub(crate) fn generate_token(data_dir: &Path) -> anyhow::Result<String> {
    let token = new_token();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    write_private(&data_dir.join(TOKEN_FILE), token.as_bytes())?;
    Ok(token)
}
