//! Field rules shared by several resources. Each pushes a `ValidationErrorItem` naming
//! the field's location and returns nothing, so a request's problems are reported together.

use std::collections::BTreeMap;

use model::destination;

use crate::error::ValidationErrorItem;

pub(crate) type Problems = Vec<ValidationErrorItem>;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// `^[a-zA-Z0-9\-_.]+$`, 1 to `max` characters.
pub(crate) fn name(problems: &mut Problems, loc: &[&str], value: &str, max: usize) {
    if value.is_empty() || value.len() > max {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("must be 1 to {max} characters long"),
        ));
    } else if !value.chars().all(is_name_char) {
        problems.push(ValidationErrorItem::new(
            loc,
            "may contain only letters, digits, '-', '_' and '.'",
        ));
    }
}

/// A uid: a name that cannot be mistaken for an id of the resource.
pub(crate) fn uid(problems: &mut Problems, loc: &[&str], value: &str, id_prefix: &str) {
    name(problems, loc, value, 256);
    if value.starts_with(&format!("{id_prefix}_")) {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("a uid may not start with the id prefix `{id_prefix}_`"),
        ));
    }
}

pub(crate) fn non_empty(problems: &mut Problems, loc: &[&str], value: &str, max: usize) {
    if value.trim().is_empty() {
        problems.push(ValidationErrorItem::new(loc, "must not be empty"));
    } else if value.len() > max {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("must be at most {max} bytes"),
        ));
    }
}

/// A list of names: `min..=max` items, each valid, no duplicates.
pub(crate) fn name_list(
    problems: &mut Problems,
    loc: &[&str],
    values: &[String],
    (min, max): (usize, usize),
    item_max: usize,
) {
    if values.len() < min || values.len() > max {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("must have {min} to {max} items"),
        ));
    }
    for (i, value) in values.iter().enumerate() {
        let index = i.to_string();
        let mut at: Vec<&str> = loc.to_vec();
        at.push(&index);
        name(problems, &at, value, item_max);
        if values[..i].contains(value) {
            problems.push(ValidationErrorItem::new(
                &at,
                format!("`{value}` is listed twice"),
            ));
        }
    }
}

/// An endpoint URL, at most 65,536 bytes: absolute `http` or `https` with a host, or an
/// `amqp`/`amqps` broker URL (`model::destination::AmqpTarget`).
pub(crate) fn endpoint_url(problems: &mut Problems, loc: &[&str], value: &str) {
    if value.len() > 65_536 {
        problems.push(ValidationErrorItem::new(loc, "must be at most 65536 bytes"));
        return;
    }
    if destination::is_amqp(value) {
        if let Err(err) = destination::AmqpTarget::parse(value) {
            problems.push(ValidationErrorItem::new(loc, err));
        }
        return;
    }
    match url::Url::parse(value) {
        Err(err) => problems.push(ValidationErrorItem::new(loc, format!("invalid URL: {err}"))),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            problems.push(ValidationErrorItem::new(
                loc,
                format!(
                    "scheme `{}` is not supported; use http, https, amqp or amqps",
                    url.scheme()
                ),
            ))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            problems.push(ValidationErrorItem::new(loc, "the URL has no host"))
        }
        Ok(_) => {}
    }
}

/// A signing secret: `whsec_` + base64 of 24 to 64 bytes.
pub(crate) fn secret(problems: &mut Problems, loc: &[&str], value: &str) {
    if let Err(err) = signing::Key::parse(value) {
        problems.push(ValidationErrorItem::new(loc, err.to_string()));
    }
}

/// Headers Herald sets itself, which custom headers may not replace.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "connection",
    "transfer-encoding",
    "user-agent",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "webhook-event-type",
];
const MAX_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 4096;

/// Custom headers: valid names, no CR/LF or other control characters in values, none of
/// Herald's own headers, sane sizes.
pub(crate) fn headers<'a>(
    problems: &mut Problems,
    loc: &[&str],
    headers: impl IntoIterator<Item = (&'a String, Option<&'a String>)>,
) {
    let mut count = 0;
    for (name, value) in headers {
        count += 1;
        let mut at: Vec<&str> = loc.to_vec();
        at.push(name);
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() || name.len() > 256 {
            problems.push(ValidationErrorItem::new(&at, "invalid header name"));
            continue;
        }
        if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            problems.push(ValidationErrorItem::new(
                &at,
                format!("`{name}` is set by Herald and cannot be overridden"),
            ));
        }
        if let Some(value) = value {
            if value.len() > MAX_HEADER_VALUE {
                problems.push(ValidationErrorItem::new(
                    &at,
                    format!("header value must be at most {MAX_HEADER_VALUE} bytes"),
                ));
            } else if value
                .chars()
                .any(|c| c == '\r' || c == '\n' || (c.is_control() && c != '\t'))
            {
                problems.push(ValidationErrorItem::new(
                    &at,
                    "header value must not contain CR, LF or other control characters",
                ));
            }
        }
    }
    if count > MAX_HEADERS {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
}

pub(crate) fn metadata(problems: &mut Problems, loc: &[&str], metadata: &BTreeMap<String, String>) {
    let size: usize = metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > 64 * 1024 {
        problems.push(ValidationErrorItem::new(
            loc,
            "metadata must be at most 64 KiB",
        ));
    }
}

/// A subscription filter (see the `filter` crate); the error's location extends `loc`.
pub(crate) fn filter(problems: &mut Problems, loc: &[&str], value: &serde_json::Value) {
    if let Err(err) = filter::Filter::compile(value) {
        let mut at: Vec<&str> = loc.to_vec();
        at.extend(err.location.iter().map(String::as_str));
        problems.push(ValidationErrorItem::new(&at, err.message));
    }
}

/// A payload transform (see `filter::Transform`); the error's location extends `loc`.
pub(crate) fn transform(problems: &mut Problems, loc: &[&str], value: &serde_json::Value) {
    if let Err(err) = filter::Transform::compile(value) {
        let mut at: Vec<&str> = loc.to_vec();
        at.extend(err.location.iter().map(String::as_str));
        problems.push(ValidationErrorItem::new(&at, err.message));
    }
}

/// The paths a diff always keeps: what `filter::Diff` accepts.
pub(crate) fn diff_keep(problems: &mut Problems, loc: &[&str], keep: &[String]) {
    if let Err(err) = filter::Diff::compile(keep) {
        let mut at: Vec<&str> = loc.to_vec();
        at.extend(err.location.iter().map(String::as_str));
        problems.push(ValidationErrorItem::new(&at, err.message));
    }
}

/// A payload that filters, transforms and diffs can read as published. Any JSON is
/// accepted on the wire, but an event document holds numbers as `f64` and nests at most
/// 128 levels (`serde_json`'s limit): `1e999`, or a deeper payload, would reach them as
/// `null` (and a transforming endpoint would be sent `null`). Checked in one pass without
/// building the document.
pub(crate) fn readable_json(problems: &mut Problems, loc: &[&str], text: &str) {
    use serde::Deserializer as _;
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

    /// Reads any value as the event document would, keeping nothing.
    struct Readable;

    impl<'de> DeserializeSeed<'de> for Readable {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Readable {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Readable)?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while map.next_key_seed(Readable)?.is_some() {
                map.next_value_seed(Readable)?;
            }
            Ok(())
        }
    }

    let mut de = serde_json::Deserializer::from_str(text);
    let read = (&mut de).deserialize_any(Readable).and_then(|()| de.end());
    if let Err(err) = read {
        problems.push(ValidationErrorItem::new(
            loc,
            format!("Herald cannot read this JSON: {err}"),
        ));
    }
}
