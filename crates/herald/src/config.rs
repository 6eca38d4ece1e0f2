//! Settings: flags and `HERALD_*` variables (through clap), then `herald.toml`, then
//! defaults, each raw value parsed once into a typed setting. A bad value or an unknown
//! key fails at start-up naming the key. `config.example.toml` lists every key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use dispatch::RetryPolicy;

use crate::cli::ServeArgs;

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) bind: SocketAddr,
    pub(crate) data_dir: PathBuf,
    /// PostgreSQL instead of the embedded store.
    pub(crate) database: Option<Database>,
    pub(crate) admin_token: Option<String>,
    pub(crate) sync_full: bool,
    /// Who may read `/metrics`: `None` when it is off.
    pub(crate) metrics: Option<api::MetricsAccess>,
    pub(crate) max_store_bytes: Option<u64>,
    pub(crate) max_payload_bytes: usize,
    pub(crate) retry: RetryPolicy,
    pub(crate) attempt_timeout: Duration,
    pub(crate) lease: Duration,
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_endpoint: usize,
    pub(crate) max_queued: usize,
    pub(crate) max_queued_per_endpoint: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) drain_timeout: Duration,
    pub(crate) entity_retention: Duration,
    /// Messages older than this are removed; `None`: kept forever.
    pub(crate) retention: Option<Duration>,
    pub(crate) auto_disable_after: Option<Duration>,
    pub(crate) operator_app: String,
    /// Origins that may frame the tenant portal.
    pub(crate) portal_frame_ancestors: Vec<String>,
    /// The portal's accent colour and logo.
    pub(crate) portal_accent: Option<String>,
    pub(crate) portal_logo: Option<String>,
    pub(crate) destinations: transport::DestinationPolicy,
    /// CA certificates trusted for HTTPS receivers and `amqps` brokers besides the system's.
    pub(crate) extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// Where spans go (an OTLP/HTTP collector's base URL); `None`: no spans.
    pub(crate) otlp_endpoint: Option<url::Url>,
    /// The share of traces starting in Herald that are kept.
    pub(crate) otlp_sample_ratio: f64,
    pub(crate) log: String,
    /// One JSON object a log line, instead of text.
    pub(crate) log_json: bool,
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

/// The keys `herald.toml` may hold: the long flag names with `_` for `-`.
const KEYS: &[&str] = &[
    "bind",
    "data_dir",
    "database_url",
    "database_max_connections",
    "admin_token",
    "sync",
    "metrics",
    "max_store_size",
    "max_payload_bytes",
    "retry_schedule",
    "retry_jitter",
    "max_retry_after",
    "attempt_timeout",
    "lease",
    "max_in_flight",
    "max_in_flight_per_endpoint",
    "max_queued",
    "max_queued_per_endpoint",
    "poll_interval",
    "drain_timeout",
    "entity_retention",
    "retention",
    "auto_disable_after",
    "operator_app",
    "portal_frame_ancestors",
    "portal_accent",
    "portal_logo",
    "allow_destination",
    "deny_destination",
    "https_only",
    "tls_ca_file",
    "otlp_endpoint",
    "otlp_sample_ratio",
    "log",
    "log_format",
];

pub(crate) fn default_data_dir() -> PathBuf {
    PathBuf::from("./herald-data")
}

impl Settings {
    pub(crate) fn load(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        let raw = |key: &str, flag: &Option<String>| -> Option<String> {
            flag.clone().or_else(|| file.get(key).cloned())
        };
        let bind = raw("bind", &args.bind).unwrap_or_else(|| "127.0.0.1:8071".into());
        let bind = bind
            .parse::<SocketAddr>()
            .with_context(|| format!("bind: `{bind}` is not an address such as 127.0.0.1:8071"))?;
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.get("data_dir").map(PathBuf::from))
            .unwrap_or_else(default_data_dir);
        let max_connections: usize = number(
            "database_max_connections",
            raw("database_max_connections", &args.database_max_connections),
            16,
        )?;
        if max_connections < 2 {
            bail!("database_max_connections: must be at least 2, not {max_connections}");
        }
        let database = match raw("database_url", &args.database_url) {
            None => None,
            Some(url) => {
                let parsed = url::Url::parse(&url).map_err(|_| {
                    anyhow::anyhow!(
                        "database_url: not a URL such as postgres://user:password@host:5432/herald"
                    )
                })?;
                if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                    bail!(
                        "database_url: `{}` is not a postgres:// URL (only PostgreSQL is supported)",
                        parsed.scheme()
                    );
                }
                Some(Database {
                    url,
                    max_connections,
                })
            }
        };
        let sync_full = match raw("sync", &args.sync).as_deref().unwrap_or("full") {
            "full" => true,
            "normal" => false,
            other => bail!("sync: `{other}` is not one of `full`, `normal`"),
        };
        let metrics = match raw("metrics", &args.metrics).as_deref().unwrap_or("token") {
            "token" => Some(api::MetricsAccess::Token),
            "public" => Some(api::MetricsAccess::Public),
            "off" => None,
            other => bail!("metrics: `{other}` is not one of `token`, `public`, `off`"),
        };
        let max_store_bytes = raw("max_store_size", &args.max_store_size)
            .map(|text| {
                parse_size(text.trim()).with_context(|| format!("max_store_size: `{text}`"))
            })
            .transpose()?;
        let retry_schedule = match raw("retry_schedule", &args.retry_schedule) {
            None => RetryPolicy::svix_default(),
            // No retries: a failed first attempt fails the delivery (recover or resend it).
            Some(text) if text.trim() == "none" => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|part| parse_duration(part.trim()))
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| format!("retry_schedule: `{text}`"))?,
        };
        let retry_jitter: f64 =
            number("retry_jitter", raw("retry_jitter", &args.retry_jitter), 0.2)?;
        if !(0.0..=1.0).contains(&retry_jitter) {
            bail!("retry_jitter: must be between 0 and 1, not {retry_jitter}");
        }
        let attempt_timeout = duration(
            "attempt_timeout",
            raw("attempt_timeout", &args.attempt_timeout),
            "30s",
        )?;
        if attempt_timeout.is_zero() {
            bail!("attempt_timeout: must be more than zero");
        }
        // An attempt starts only with at least half its lease left: half a lease must
        // outlast the attempt, or another node could take the delivery over mid-attempt.
        let lease = match raw("lease", &args.lease) {
            None => attempt_timeout * 2 + Duration::from_secs(60),
            Some(text) => {
                parse_duration(text.trim()).with_context(|| format!("lease: `{text}`"))?
            }
        };
        if lease <= attempt_timeout * 2 {
            bail!(
                "lease: must be more than twice attempt_timeout ({}), so that an attempt ends before anyone may take its delivery over",
                humantime_like(attempt_timeout * 2)
            );
        }
        let max_in_flight_per_endpoint = positive(
            "max_in_flight_per_endpoint",
            raw(
                "max_in_flight_per_endpoint",
                &args.max_in_flight_per_endpoint,
            ),
            32,
        )?;
        let max_queued = positive("max_queued", raw("max_queued", &args.max_queued), 20_000)?;
        let max_queued_per_endpoint = match raw(
            "max_queued_per_endpoint",
            &args.max_queued_per_endpoint,
        ) {
            None => (max_queued / 10)
                .max(2 * max_in_flight_per_endpoint)
                .min(max_queued),
            given => {
                let value = positive("max_queued_per_endpoint", given, 0)?;
                if value > max_queued {
                    bail!(
                        "max_queued_per_endpoint: {value} is more than max_queued ({max_queued})"
                    );
                }
                if value < max_in_flight_per_endpoint {
                    bail!(
                        "max_queued_per_endpoint: {value} is less than \
                         max_in_flight_per_endpoint ({max_in_flight_per_endpoint}), so an \
                         endpoint could not use all its concurrent attempts"
                    );
                }
                value
            }
        };
        Ok(Self {
            bind,
            data_dir,
            database,
            admin_token: args
                .admin_token
                .clone()
                .or_else(|| file.get("admin_token").cloned()),
            sync_full,
            metrics,
            max_store_bytes,
            max_payload_bytes: positive(
                "max_payload_bytes",
                raw("max_payload_bytes", &args.max_payload_bytes),
                1024 * 1024,
            )?,
            retry: RetryPolicy {
                schedule: retry_schedule,
                jitter: retry_jitter,
                max_retry_after: duration(
                    "max_retry_after",
                    raw("max_retry_after", &args.max_retry_after),
                    "1h",
                )?,
            },
            attempt_timeout,
            lease,
            max_in_flight: positive(
                "max_in_flight",
                raw("max_in_flight", &args.max_in_flight),
                512,
            )?,
            max_in_flight_per_endpoint,
            max_queued,
            max_queued_per_endpoint,
            poll_interval: duration(
                "poll_interval",
                raw("poll_interval", &args.poll_interval),
                "250ms",
            )?,
            drain_timeout: duration(
                "drain_timeout",
                raw("drain_timeout", &args.drain_timeout),
                "10s",
            )?,
            auto_disable_after: match raw("auto_disable_after", &args.auto_disable_after) {
                Some(text) if text.trim() == "none" => None,
                other => Some(duration("auto_disable_after", other, "5d")?),
            },
            operator_app: raw("operator_app", &args.operator_app)
                .unwrap_or_else(|| "herald-operator".into()),
            portal_frame_ancestors: raw("portal_frame_ancestors", &args.portal_frame_ancestors)
                .map(|text| {
                    text.split(',')
                        .filter(|s| !s.trim().is_empty())
                        .map(|s| {
                            ui::frame_ancestor(s)
                                .map_err(|e| anyhow::anyhow!("portal_frame_ancestors: {e}"))
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
                .transpose()?
                .unwrap_or_default(),
            portal_accent: raw("portal_accent", &args.portal_accent)
                .map(|text| ui::accent(&text).map_err(|e| anyhow::anyhow!("portal_accent: {e}")))
                .transpose()?,
            portal_logo: raw("portal_logo", &args.portal_logo)
                .map(|text| ui::logo(&text).map_err(|e| anyhow::anyhow!("portal_logo: {e}")))
                .transpose()?,
            entity_retention: duration(
                "entity_retention",
                raw("entity_retention", &args.entity_retention),
                "30d",
            )?,
            retention: match raw("retention", &args.retention) {
                Some(text) if text.trim() == "none" => None,
                other => {
                    let retention = duration("retention", other, "30d")?;
                    if retention.is_zero() {
                        bail!(
                            "retention: must be more than zero, or `none` to keep messages forever"
                        );
                    }
                    Some(retention)
                }
            },
            destinations: transport::DestinationPolicy {
                allow: address_ranges("allow_destination", &args.allow_destination, &file)?,
                deny: address_ranges("deny_destination", &args.deny_destination, &file)?,
                https_only: args.https_only
                    || match file.get("https_only").map(String::as_str) {
                        None | Some("false") => false,
                        Some("true") => true,
                        Some(other) => bail!("https_only: `{other}` is not true or false"),
                    },
            },
            extra_roots: match args
                .tls_ca_file
                .clone()
                .or_else(|| file.get("tls_ca_file").map(PathBuf::from))
            {
                Some(path) => certificates(&path)
                    .with_context(|| format!("tls_ca_file: {}", path.display()))?,
                None => Vec::new(),
            },
            otlp_endpoint: raw("otlp_endpoint", &args.otlp_endpoint)
                .map(|text| {
                    let url = url::Url::parse(&text).map_err(|_| {
                        anyhow::anyhow!(
                            "otlp_endpoint: `{text}` is not a URL such as http://collector:4318"
                        )
                    })?;
                    if !matches!(url.scheme(), "http" | "https") {
                        bail!("otlp_endpoint: `{text}` is not an http:// or https:// URL");
                    }
                    Ok(url)
                })
                .transpose()?,
            otlp_sample_ratio: {
                let ratio: f64 = number(
                    "otlp_sample_ratio",
                    raw("otlp_sample_ratio", &args.otlp_sample_ratio),
                    1.0,
                )?;
                if !(0.0..=1.0).contains(&ratio) {
                    bail!("otlp_sample_ratio: must be between 0 and 1, not {ratio}");
                }
                ratio
            },
            log: raw("log", &args.log).unwrap_or_else(|| "info".into()),
            log_json: match raw("log_format", &args.log_format)
                .as_deref()
                .unwrap_or("text")
            {
                "text" => false,
                "json" => true,
                other => bail!("log_format: `{other}` is not one of `text`, `json`"),
            },
        })
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

/// Reads `herald.toml` into raw strings by key, refusing unknown keys.
fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the config file {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing the config file {}", path.display()))?;
    let mut raw = BTreeMap::new();
    for (key, value) in table {
        if !KEYS.contains(&key.as_str()) {
            bail!(
                "{}: unknown key `{key}`; known keys: {}",
                path.display(),
                KEYS.join(", ")
            );
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string())
                })
                .collect::<Vec<_>>()
                .join(","),
            other => bail!(
                "{}: `{key}` has an unsupported value {other}",
                path.display()
            ),
        };
        raw.insert(key, text);
    }
    Ok(raw)
}

/// `allow_destination`, `deny_destination`: comma-separated CIDR ranges or single
/// addresses, from the flag (already split at commas) or else the file.
fn address_ranges(
    key: &str,
    flag: &[String],
    file: &BTreeMap<String, String>,
) -> anyhow::Result<Vec<ipnet::IpNet>> {
    let text = if flag.is_empty() {
        match file.get(key) {
            Some(text) => text.clone(),
            None => return Ok(Vec::new()),
        }
    } else {
        flag.join(",")
    };
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(|part| {
            part.parse::<ipnet::IpNet>()
                .or_else(|_| part.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "{key}: `{part}` is not an address range such as 127.0.0.0/8 or ::1/128"
                    )
                })
        })
        .collect()
}

fn number<T: std::str::FromStr>(key: &str, raw: Option<String>, default: T) -> anyhow::Result<T> {
    match raw {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{key}: `{text}` is not a number")),
    }
}

fn positive(key: &str, raw: Option<String>, default: usize) -> anyhow::Result<usize> {
    let value = number(key, raw, default)?;
    if value == 0 {
        bail!("{key}: must be at least 1");
    }
    Ok(value)
}

/// A duration as the settings write it, in whole seconds or milliseconds.
fn humantime_like(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn duration(key: &str, raw: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let text = raw.unwrap_or_else(|| default.to_owned());
    parse_duration(text.trim()).with_context(|| format!("{key}: `{text}`"))
}

/// `12.5ms` → `(12.5, "ms")`; `what` says what was expected when there is no number.
fn number_and_unit<'a>(text: &'a str, what: &str) -> anyhow::Result<(f64, &'a str)> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value = number
        .parse()
        .map_err(|_| anyhow::anyhow!("`{text}` is not {what}"))?;
    Ok((value, unit))
}

/// `512MiB`, `10GiB`, `500MB`, `64KiB`, or a plain number of bytes.
pub(crate) fn parse_size(text: &str) -> anyhow::Result<u64> {
    let (value, unit) = number_and_unit(text, "a size such as 512MiB or 10GiB")?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => bail!("`{text}`: unknown unit `{other}`; use B, KB, MB, GB, KiB, MiB or GiB"),
    };
    let bytes = value * factor;
    if bytes < 64.0 * 1024.0 {
        bail!("`{text}` is too small: at least 64KiB");
    }
    Ok(bytes as u64)
}

/// `250ms`, `5s`, `5m`, `2h`, `1d`, or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let (value, unit) = number_and_unit(text, "a duration such as 250ms, 5s, 5m or 2h")?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => bail!("`{text}`: unknown unit `{unit}`; use ms, s, m, h or d"),
    };
    Ok(Duration::from_secs_f64(seconds))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }
}
