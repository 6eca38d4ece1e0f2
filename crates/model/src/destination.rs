//! Where an endpoint delivers. An `http`/`https` URL is a receiver; an `amqp`/`amqps` URL
//! is the subscriber's own broker:
//! `amqp://user:pass@host:port/vhost?exchange=X&routingKey=Y`, with the AMQP client's own
//! connection parameters (`heartbeat`, `connection_timeout`, …) allowed alongside.

use std::borrow::Cow;

/// Parameters of an AMQP URL that the AMQP client reads itself.
const CLIENT_PARAMS: &[&str] = &[
    "heartbeat",
    "connection_timeout",
    "frame_max",
    "channel_max",
    "auth_mechanism",
];

/// AMQP's limit on exchange names and routing keys (a short string).
const MAX_AMQP_NAME: usize = 255;

/// Whether `url` names an AMQP broker rather than an HTTP receiver.
pub fn is_amqp(url: &str) -> bool {
    let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
    scheme.eq_ignore_ascii_case("amqp") || scheme.eq_ignore_ascii_case("amqps")
}

/// An AMQP endpoint's URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpTarget {
    /// The URL the AMQP client connects with: scheme, credentials, host, port, virtual
    /// host and client parameters, without `exchange` and `routingKey`. Holds the password.
    pub broker: String,
    /// The exchange to publish to; empty is the broker's default exchange, which routes
    /// by queue name.
    pub exchange: String,
    /// The routing key; `None` means the message's event type.
    pub routing_key: Option<String>,
}

impl AmqpTarget {
    /// Parses an `amqp://` or `amqps://` URL; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("invalid URL: {e}"))?;
        if !matches!(url.scheme(), "amqp" | "amqps") {
            return Err(format!("scheme `{}` is not an AMQP scheme", url.scheme()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the URL has no host".into());
        }
        if url.fragment().is_some() {
            return Err("an AMQP URL has no fragment (`#…`)".into());
        }
        if url.path().trim_start_matches('/').contains('/') {
            return Err(
                "the path is the virtual host and has one segment; write `/` inside it as `%2f`"
                    .into(),
            );
        }
        let mut exchange = None;
        let mut routing_key = None;
        let mut broker = url.clone();
        broker.set_query(None);
        {
            let mut kept = broker.query_pairs_mut();
            for (key, value) in url.query_pairs() {
                match key.as_ref() {
                    "exchange" | "routingKey" => {
                        let slot = if key == "exchange" {
                            &mut exchange
                        } else {
                            &mut routing_key
                        };
                        if slot.is_some() {
                            return Err(format!("`{key}` is given twice"));
                        }
                        if value.len() > MAX_AMQP_NAME {
                            return Err(format!("`{key}` must be at most {MAX_AMQP_NAME} bytes"));
                        }
                        *slot = Some(value.into_owned());
                    }
                    known if CLIENT_PARAMS.contains(&known) => {
                        kept.append_pair(&key, &value);
                    }
                    other => {
                        return Err(format!(
                            "unknown parameter `{other}`; an AMQP URL takes `exchange`, \
                             `routingKey`, {}",
                            CLIENT_PARAMS
                                .iter()
                                .map(|p| format!("`{p}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
        }
        let exchange = exchange.unwrap_or_default();
        if let Some(bad) = exchange
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')))
        {
            return Err(format!(
                "exchange names use letters, digits, `-`, `_`, `.` and `:`; `{bad}` is not allowed"
            ));
        }
        if routing_key.as_deref() == Some("") {
            routing_key = None;
        }
        let mut broker = String::from(broker);
        if broker.ends_with('?') {
            broker.pop();
        }
        Ok(Self {
            broker,
            exchange,
            routing_key,
        })
    }
}

/// `url` with its password, if it has one, replaced by `***`: what the API shows and
/// what attempt records keep.
pub fn masked_url(url: &str) -> Cow<'_, str> {
    // Cheap test first: this runs once per attempt.
    if !url.contains('@') {
        return Cow::Borrowed(url);
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            Cow::Owned(parsed.into())
        }
        _ => Cow::Borrowed(url),
    }
}

/// The URL to store when a client sends `new` for an endpoint whose URL is `stored`. A
/// client that read the endpoint and writes it back sends the password as `***`; that
/// keeps the stored password rather than saving `***`, as long as the URL still names the
/// same user on the same host and port (a password is never carried to another host).
pub fn url_to_store(stored: &str, new: String) -> String {
    if !new.contains(":***@") {
        return new;
    }
    let (Ok(old), Ok(mut next)) = (url::Url::parse(stored), url::Url::parse(&new)) else {
        return new;
    };
    let same_place = old.scheme() == next.scheme()
        && old.username() == next.username()
        && old.host_str() == next.host_str()
        && old.port_or_known_default() == next.port_or_known_default();
    match old.password() {
        Some(password) if same_place && next.password() == Some("***") => {
            let _ = next.set_password(Some(password));
            next.into()
        }
        _ => new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_urls_are_taken_apart() {
        let target = AmqpTarget::parse(
            "amqp://user:secret@127.0.0.1:5672/%2f?exchange=orders&routingKey=x.y&heartbeat=10",
        )
        .unwrap();
        assert_eq!(
            target.broker,
            "amqp://user:secret@127.0.0.1:5672/%2f?heartbeat=10"
        );
        assert_eq!(target.exchange, "orders");
        assert_eq!(target.routing_key.as_deref(), Some("x.y"));

        let target = AmqpTarget::parse("amqps://broker.example/vhost").unwrap();
        assert_eq!(target.broker, "amqps://broker.example/vhost");
        assert_eq!(target.exchange, "");
        assert_eq!(target.routing_key, None);
    }

    #[test]
    fn bad_amqp_urls_say_what_is_wrong() {
        for (url, expected) in [
            ("amqp://h/?exchange=a&exchange=b", "twice"),
            ("amqp://h/?queue=a", "unknown parameter `queue`"),
            ("amqp://h/?exchange=a%20b", "` ` is not allowed"),
            ("amqp://h/a/b", "one segment"),
            ("amqp:///vhost", "no host"),
            ("amqp://h/#frag", "fragment"),
        ] {
            let err = AmqpTarget::parse(url).unwrap_err();
            assert!(err.contains(expected), "{url}: {err}");
        }
        assert!(is_amqp("AMQPS://h"));
        assert!(!is_amqp("https://h"));
    }

    #[test]
    fn passwords_are_masked_and_kept_on_write_back() {
        let stored = "amqp://user:secret@host/%2f?exchange=e";
        let masked = masked_url(stored);
        assert_eq!(masked, "amqp://user:***@host/%2f?exchange=e");
        assert_eq!(masked_url("https://host/a@b"), "https://host/a@b");
        assert_eq!(url_to_store(stored, masked.clone().into_owned()), stored);
        let changed = "amqp://user:other@host/%2f?exchange=e".to_owned();
        assert_eq!(url_to_store(stored, changed.clone()), changed);
        // Other parameters may change while the password stays masked…
        assert_eq!(
            url_to_store(stored, "amqp://user:***@host/%2f?exchange=f".into()),
            "amqp://user:secret@host/%2f?exchange=f"
        );
        // …but it never travels to another host or user.
        for elsewhere in [
            "amqp://user:***@other/%2f?exchange=e",
            "amqp://user:***@host:5673/%2f?exchange=e",
            "amqp://admin:***@host/%2f?exchange=e",
        ] {
            assert_eq!(url_to_store(stored, elsewhere.into()), elsewhere);
        }
        assert_eq!(
            url_to_store("https://host/", "https://host/***".into()),
            "https://host/***"
        );
    }
}
