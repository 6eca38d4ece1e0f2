//! AMQP delivery: publish to the subscriber's own broker with publisher confirms. One
//! connection per broker URL and on it one confirming channel per exchange (a broker
//! closes a channel over one exchange's error, e.g. a missing exchange, and that must not
//! fail messages bound for other exchanges), opened on first use and reopened after the
//! broker closes them. A message counts as delivered only when the broker has confirmed
//! it and not returned it as unroutable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::tcp::RustlsConnector;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{
    AsyncTcpStream, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
};
use model::{ErrorKind, Outcome};

use crate::guard::DestinationPolicy;

/// One message, ready to publish.
#[derive(Debug, Clone)]
pub struct AmqpRequest {
    /// Connection URL with credentials (`model::destination::AmqpTarget::broker`).
    pub broker: String,
    pub exchange: String,
    pub routing_key: String,
    /// AMQP `message-id` property (the Herald message id).
    pub message_id: String,
    /// AMQP `type` property (the event type).
    pub kind: String,
    /// AMQP `timestamp` property, unix seconds.
    pub timestamp: u64,
    /// Message headers (string values).
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Publishes messages and classifies what happened.
#[derive(Clone)]
pub struct AmqpTransport {
    timeout: Duration,
    policy: Arc<DestinationPolicy>,
    /// For `amqps`: the same verification as HTTPS receivers (the platform's CAs and
    /// `--tls-ca-file`'s).
    tls: RustlsConnector,
    /// Per broker URL, the link to it, behind a lock taken only to (re)open it.
    links: Arc<Mutex<Links>>,
}

#[derive(Default)]
struct Links {
    by_broker: HashMap<String, Slot>,
    last_sweep: Option<Instant>,
}

/// A connection unused this long is closed (its endpoint may be gone or idle).
const IDLE: Duration = Duration::from_secs(300);

/// The link to one broker, `None` until connected.
type Slot = Arc<tokio::sync::Mutex<Option<Link>>>;

struct Link {
    connection: Connection,
    /// Per exchange, its confirming channel.
    channels: HashMap<String, Channel>,
    last_used: Instant,
}

/// A broker URL the policy allowed, and where to connect for it.
struct Checked {
    uri: AMQPUri,
    /// The host's addresses that the policy allows, in the resolver's order.
    addresses: Vec<std::net::SocketAddr>,
    /// For `amqps`: the name the broker's certificate must carry.
    tls_name: Option<String>,
}

/// Why a publish failed, before it becomes an `Outcome`.
struct Failure {
    kind: ErrorKind,
    reason: String,
}

impl AmqpTransport {
    /// `timeout` bounds each attempt: connecting, publishing and waiting for the confirm.
    /// `tls` verifies `amqps` brokers.
    pub fn new(
        timeout: Duration,
        policy: DestinationPolicy,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        Self {
            timeout,
            policy: policy.shared(),
            tls: RustlsConnector::from(tls),
            links: Arc::default(),
        }
    }

    /// Publishes one message. Never fails: every failure is described by the `Outcome`.
    pub async fn send(&self, request: AmqpRequest) -> Outcome {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, self.publish(&request)).await {
            Ok(result) => result,
            Err(_) => {
                // A broker that stops answering may have wedged the link: start afresh.
                self.forget(&request.broker).await;
                Err(Failure {
                    kind: ErrorKind::Timeout,
                    reason: format!(
                        "no confirm from the broker within {} s",
                        self.timeout.as_secs_f64()
                    ),
                })
            }
        };
        let (error, body) = match result {
            Ok(()) => (None, "confirmed by the broker".to_owned()),
            Err(failure) => (Some(failure.kind), redact(&failure.reason, &request.broker)),
        };
        Outcome {
            status_code: None,
            body,
            duration: started.elapsed(),
            error,
            // A refused destination would be refused again.
            permanent: error == Some(ErrorKind::Refused),
            retry_after: None,
        }
    }

    async fn publish(&self, request: &AmqpRequest) -> Result<(), Failure> {
        let channel = self.channel(&request.broker, &request.exchange).await?;
        let mut headers = FieldTable::default();
        for (name, value) in &request.headers {
            headers.insert(
                ShortString::from(name.as_str()),
                AMQPValue::LongString(LongString::from(value.as_bytes())),
            );
        }
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2) // persistent
            .with_message_id(request.message_id.as_str().into())
            .with_type(request.kind.as_str().into())
            .with_timestamp(request.timestamp)
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                request.exchange.as_str().into(),
                request.routing_key.as_str().into(),
                // Mandatory: a message no queue would take comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &request.body,
                properties,
            )
            .await
            .map_err(failure)?;
        match confirm.await.map_err(failure)? {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(Failure {
                    kind: ErrorKind::Broker,
                    reason: format!(
                        "the broker returned the message: {} {} (no queue is bound to exchange \
                         `{}` for routing key `{}`)",
                        returned.reply_code,
                        returned.reply_text,
                        request.exchange,
                        request.routing_key
                    ),
                })
            }
            Confirmation::Nack(None) => Err(Failure {
                kind: ErrorKind::Broker,
                reason: "the broker refused the message (nack)".into(),
            }),
            Confirmation::NotRequested => Err(Failure {
                kind: ErrorKind::Broker,
                reason: "the channel is not in confirm mode".into(),
            }),
        }
    }

    /// The confirming channel for `exchange` on `broker`, (re)opening the connection and
    /// the channel as needed.
    async fn channel(&self, broker: &str, exchange: &str) -> Result<Channel, Failure> {
        let slot = self.slot(broker);
        let mut link = slot.lock().await;
        if link
            .as_ref()
            .is_some_and(|open| !open.connection.status().connected())
        {
            *link = None;
        }
        let open = match link.as_mut() {
            Some(open) => open,
            None => {
                let connection = self.connect(self.checked(broker).await?).await?;
                link.insert(Link {
                    connection,
                    channels: HashMap::new(),
                    last_used: Instant::now(),
                })
            }
        };
        open.last_used = Instant::now();
        if let Some(channel) = open.channels.get(exchange)
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        // New, or closed by the broker (e.g. the exchange was missing): open it again.
        let channel = open.connection.create_channel().await.map_err(failure)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(failure)?;
        open.channels.insert(exchange.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Where to connect for `broker`, after the destination policy: the host's addresses
    /// are resolved and checked, and the connection goes only to those (it is pinned to
    /// what was checked, as the HTTP transport's are), for `amqps` too, whose certificate
    /// is verified against the host name of the URL.
    async fn checked(&self, broker: &str) -> Result<Checked, Failure> {
        let refused = |reason: String| Failure {
            kind: ErrorKind::Refused,
            reason,
        };
        let url = url::Url::parse(broker).map_err(|e| refused(format!("invalid URL: {e}")))?;
        let tls = url.scheme() == "amqps";
        if self.policy.https_only && !tls {
            return Err(refused(
                "only TLS destinations are allowed (--https-only): use amqps".into(),
            ));
        }
        if let Some(everything) = self.policy.refuses_everything() {
            return Err(refused(everything.0));
        }
        let uri: AMQPUri = broker
            .parse()
            .map_err(|e| refused(format!("invalid AMQP URL: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.authority.port;
        let addresses = if let Ok(ip) = bare.parse::<std::net::IpAddr>() {
            self.policy.check(ip).map_err(|e| refused(e.0))?;
            vec![std::net::SocketAddr::new(ip, port)]
        } else {
            let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
                .await
                .map_err(|e| Failure {
                    kind: ErrorKind::Dns,
                    reason: format!("resolving {bare}: {e}"),
                })?
                .collect();
            self.policy.filter(&bare, found).map_err(|e| refused(e.0))?
        };
        Ok(Checked {
            uri,
            addresses,
            tls_name: tls.then_some(bare),
        })
    }

    /// Opens a connection to the checked addresses (the first that accepts), with TLS for
    /// `amqps`, then the AMQP handshake with the URL's credentials and virtual host.
    async fn connect(&self, checked: Checked) -> Result<Connection, Failure> {
        let Checked {
            uri,
            addresses,
            tls_name,
        } = checked;
        let tls = self.tls.clone();
        let runtime = lapin::runtime::default_runtime().map_err(failure)?;
        Connection::connector(
            uri,
            runtime,
            async move |_uri, runtime| {
                let stream = AsyncTcpStream::connect(&runtime, addresses.clone()).await?;
                Ok(match &tls_name {
                    Some(name) => stream.into_rustls(&tls, name).await?,
                    None => stream,
                })
            },
            ConnectionProperties::default(),
        )
        .await
        .map_err(failure)
    }

    fn slot(&self, broker: &str) -> Slot {
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if links
            .last_sweep
            .is_none_or(|at| now.duration_since(at) > IDLE / 5)
        {
            links.last_sweep = Some(now);
            sweep(&mut links.by_broker, now);
        }
        links
            .by_broker
            .entry(broker.to_owned())
            .or_default()
            .clone()
    }

    /// Drops the link to `broker`; the next attempt connects again.
    async fn forget(&self, broker: &str) {
        let slot = self.slot(broker);
        // A publish stuck while holding the lock is cancelled with its attempt, so this
        // lock is not held for long.
        let Ok(mut link) = slot.try_lock() else {
            return;
        };
        if let Some(old) = link.take() {
            tokio::spawn(async move {
                let _ = old
                    .connection
                    .close(200, "herald: reconnecting".into())
                    .await;
            });
        }
    }
}

/// Closes connections idle for `IDLE` and forgets brokers without one, so that links to
/// brokers no endpoint uses any more do not pile up.
fn sweep(by_broker: &mut HashMap<String, Slot>, now: Instant) {
    by_broker.retain(|_, slot| {
        // A slot someone holds or is about to lock is kept.
        if Arc::strong_count(slot) > 1 {
            return true;
        }
        let Ok(mut link) = slot.try_lock() else {
            return true;
        };
        match link.as_ref() {
            Some(open) if now.duration_since(open.last_used) < IDLE => true,
            Some(_) => {
                let old = link.take().expect("matched Some");
                tokio::spawn(async move {
                    let _ = old.connection.close(200, "herald: idle".into()).await;
                });
                false
            }
            None => false,
        }
    });
}

fn failure(err: lapin::Error) -> Failure {
    let kind = match err.kind() {
        lapin::ErrorKind::IOError(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorKind::ConnectionRefused,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ if io.to_string().contains("failed to lookup address") => ErrorKind::Dns,
            _ if io.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => ErrorKind::Tls,
            _ => ErrorKind::Connection,
        },
        // The broker closed the channel or connection: missing exchange, access refused, …
        lapin::ErrorKind::ProtocolError(_) => ErrorKind::Broker,
        lapin::ErrorKind::MissingHeartbeatError => ErrorKind::Timeout,
        _ => ErrorKind::Connection,
    };
    Failure {
        kind,
        reason: err.to_string(),
    }
}

/// `text` with the broker password, should an error quote it, replaced by `***`.
fn redact(text: &str, broker: &str) -> String {
    match url::Url::parse(broker) {
        Ok(url) => match url.password() {
            Some(password) if !password.is_empty() => text.replace(password, "***"),
            _ => text.to_owned(),
        },
        Err(_) => text.to_owned(),
    }
}
