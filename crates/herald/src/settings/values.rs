//! How a setting's text becomes its value: the parsers the settings' flags, variables and
//! file entries all go through (clap's `value_parser`). Each returns what is wrong in
//! words a user can act on.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A duration that may be `none` (never; forever).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct OrNone(pub(crate) Option<Duration>);

/// Delays before each retry; empty for none.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule(pub(crate) Vec<Duration>);

pub(crate) fn address(text: &str) -> Result<SocketAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an address such as 127.0.0.1:8071"))
}

/// `250ms`, `5s`, `5m`, `2h`, `1d`, or a plain number of seconds.
pub(crate) fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (value, unit) = number_and_unit(text, "a duration such as 250ms, 5s, 5m or 2h")?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        _ => {
            return Err(format!(
                "`{text}`: unknown unit `{unit}`; use ms, s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// A duration of more than zero.
pub(crate) fn positive_duration(text: &str) -> Result<Duration, String> {
    match duration(text)? {
        d if d.is_zero() => Err("must be more than zero".to_owned()),
        d => Ok(d),
    }
}

/// A duration of more than zero, or `none`.
pub(crate) fn duration_or_none(text: &str) -> Result<OrNone, String> {
    if text.trim() == "none" {
        return Ok(OrNone(None));
    }
    positive_duration(text)
        .map(|d| OrNone(Some(d)))
        .map_err(|e| format!("{e}, or `none`"))
}

/// Comma-separated durations, or `none` for no retries.
pub(crate) fn schedule(text: &str) -> Result<Schedule, String> {
    if text.trim() == "none" {
        return Ok(Schedule(Vec::new()));
    }
    text.split(',')
        .map(duration)
        .collect::<Result<_, _>>()
        .map(Schedule)
}

/// `512MiB`, `10GiB`, `500MB`, `64KiB`, or a plain number of bytes; at least 64 KiB.
pub(crate) fn size(text: &str) -> Result<u64, String> {
    let text = text.trim();
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
        other => {
            return Err(format!(
                "`{text}`: unknown unit `{other}`; use B, KB, MB, GB, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = value * factor;
    if bytes < 64.0 * 1024.0 {
        return Err(format!("`{text}` is too small: at least 64KiB"));
    }
    Ok(bytes as u64)
}

/// A whole number of at least 1.
pub(crate) fn positive(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

/// A whole number of at least 2 (a pool's connections).
pub(crate) fn at_least_two(text: &str) -> Result<usize, String> {
    match positive(text)? {
        1 => Err("must be at least 2, not 1".to_owned()),
        n => Ok(n),
    }
}

/// A number from 0 to 1.
pub(crate) fn ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Ok(r) => Err(format!("must be between 0 and 1, not {r}")),
        Err(_) => Err(format!("`{text}` is not a number")),
    }
}

/// A `postgres://` URL, kept as text (it may hold a password: never shown).
pub(crate) fn database_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|_| "not a URL such as postgres://user:password@host:5432/herald".to_owned())?;
    if !matches!(url.scheme(), "postgres" | "postgresql") {
        return Err(format!(
            "`{}` is not a postgres:// URL (only PostgreSQL is supported)",
            url.scheme()
        ));
    }
    Ok(text.to_owned())
}

/// An `http://` or `https://` URL.
pub(crate) fn http_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim())
        .map_err(|_| format!("`{text}` is not a URL such as http://collector:4318"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    Ok(url)
}

/// A CIDR range or a single address.
pub(crate) fn address_range(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("`{text}` is not an address range such as 127.0.0.0/8 or ::1/128"))
}

pub(crate) fn path(text: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(text))
}

/// `12.5ms` → `(12.5, "ms")`; `what` says what was expected when there is no number.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(f64, &'a str), String> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value = number
        .parse()
        .map_err(|_| format!("`{text}` is not {what}"))?;
    Ok((value, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, expected) in [
            ("250ms", Ok(Duration::from_millis(250))),
            ("5", Ok(Duration::from_secs(5))),
            (" 2h ", Ok(Duration::from_secs(7200))),
            ("30d", Ok(Duration::from_secs(30 * 86_400))),
        ] {
            assert_eq!(duration(text), expected, "{text}");
        }
        for text in ["5 parsecs", "", "soon"] {
            assert!(duration(text).is_err(), "{text}");
        }
        assert_eq!(duration_or_none("none"), Ok(OrNone(None)));
        assert!(duration_or_none("0s").is_err());
        assert_eq!(schedule("none"), Ok(Schedule(Vec::new())));
        assert_eq!(
            schedule("5s, 1m"),
            Ok(Schedule(vec![
                Duration::from_secs(5),
                Duration::from_secs(60)
            ]))
        );
        assert!(schedule("5s,soon").is_err());
    }

    #[test]
    fn sizes_numbers_and_ranges() {
        assert_eq!(size("10GiB"), Ok(10 * 1024 * 1024 * 1024));
        assert_eq!(size("500MB"), Ok(500_000_000));
        assert!(size("1KiB").is_err(), "below 64 KiB");
        assert!(size("10 parsecs").is_err());
        assert_eq!(positive("3"), Ok(3));
        assert!(positive("0").is_err());
        assert!(at_least_two("1").is_err());
        assert_eq!(ratio("0.2"), Ok(0.2));
        assert!(ratio("1.5").is_err());
        assert_eq!(
            address_range("10.1.2.3"),
            Ok("10.1.2.3/32".parse::<ipnet::IpNet>().unwrap())
        );
        assert!(address_range("10.1.2").is_err());
        assert!(database_url("mysql://x").is_err());
        assert!(http_url("ftp://x").is_err());
    }
}
