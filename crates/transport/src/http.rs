//! HTTP(S) delivery with reqwest over rustls: connection reuse per destination, HTTP/1.1
//! and HTTP/2 (negotiated by ALPN), no redirects, a total time limit per attempt, and a
//! cap on how much of a response body is read.

use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use model::{ErrorKind, Outcome};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::guard::{DestinationPolicy, Refused};

/// Settings of the HTTP transport; the caller decides every value.
#[derive(Debug, Clone)]
pub struct HttpTransportConfig {
    /// The whole exchange, connect to last body byte, must finish within this.
    pub timeout: Duration,
    /// At most this many bytes of a response body are read and kept.
    pub max_response_bytes: usize,
    pub user_agent: String,
    /// Idle connections kept per destination.
    pub max_idle_per_host: usize,
    /// Which addresses may be called.
    pub destinations: DestinationPolicy,
}

/// One request, ready to send: signed body and every header.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    pub method: http::Method,
    pub url: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Sends requests and classifies what happened.
#[derive(Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    config: HttpTransportConfig,
    policy: Arc<DestinationPolicy>,
}

/// The client's resolver: the system's, keeping only the addresses the policy allows.
/// The client connects only to what this returns, so what was checked is what is called.
struct GuardedResolver {
    policy: Arc<DestinationPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            if let Some(refused) = policy.refuses_everything() {
                return Err(refused.into());
            }
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed = policy.filter(&host, found)?;
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

impl HttpTransport {
    pub fn new(config: HttpTransportConfig) -> Result<Self, reqwest::Error> {
        // The process-wide rustls provider; a second install (tests) is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let policy = config.destinations.clone().shared();
        #[allow(clippy::disallowed_methods, reason = "the one sanctioned HTTP client")]
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect on Herald's behalf, unchecked.
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                policy: policy.clone(),
            }))
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(config.max_idle_per_host)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            client,
            config,
            policy,
        })
    }

    /// Refuses a URL the policy forbids before any packet is sent: a scheme other than
    /// https under `https_only`, or a host that is an IP literal (which the resolver never
    /// sees; the URL parser has already turned spellings such as `2130706433`, `0x7f.1`
    /// and `127.1` into the address they mean). When every address is denied, every URL
    /// is refused here, before its host name is resolved.
    fn precheck(&self, url: &str) -> Result<(), Refused> {
        let url = url::Url::parse(url).map_err(|e| Refused(format!("invalid URL: {e}")))?;
        if self.policy.https_only && url.scheme() != "https" {
            return Err(Refused(
                "only https destinations are allowed (--https-only)".into(),
            ));
        }
        if let Some(refused) = self.policy.refuses_everything() {
            return Err(refused);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.policy.check(ip.into()),
            Some(url::Host::Ipv6(ip)) => self.policy.check(ip.into()),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(Refused("the URL has no host".into())),
        }
    }

    /// Sends one request. Never fails: every failure is described by the `Outcome`.
    pub async fn send(&self, request: HttpRequest) -> Outcome {
        if let Err(refused) = self.precheck(&request.url) {
            return refused_outcome(refused);
        }
        let started = Instant::now();
        let sent = self
            .client
            .request(request.method, &request.url)
            .headers(request.headers)
            .body(request.body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(err) => return failure(&err, started.elapsed()),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let mut body = Vec::new();
        let mut body_error = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.config.max_response_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= self.config.max_response_bytes {
                        break; // The rest is not read; the connection is not reused.
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    body_error = Some(err);
                    break;
                }
            }
        }
        let duration = started.elapsed();
        if let Some(err) = body_error {
            // The status arrived but the body did not finish: a timeout or a broken
            // connection means the receiver's answer is unknown, so it is a failure.
            let mut outcome = failure(&err, duration);
            outcome.status_code = Some(status.as_u16());
            return outcome;
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            Outcome {
                status_code: Some(status.as_u16()),
                body: text,
                duration,
                error: None,
                permanent: false,
                retry_after: None,
            }
        } else {
            Outcome {
                status_code: Some(status.as_u16()),
                body: text,
                duration,
                error: Some(ErrorKind::Status),
                permanent: false,
                retry_after,
            }
        }
    }
}

/// `Retry-After` as delay-seconds or as an HTTP date (RFC 9110 §10.2.3), relative to `now`.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A destination the policy forbids: recorded, and not retried (the same URL would be
/// refused again).
pub(crate) fn refused_outcome(refused: Refused) -> Outcome {
    Outcome {
        status_code: None,
        body: refused.0,
        duration: Duration::ZERO,
        error: Some(ErrorKind::Refused),
        permanent: true,
        retry_after: None,
    }
}

/// A failure before or during the exchange, classified by walking the error's sources.
fn failure(err: &reqwest::Error, duration: Duration) -> Outcome {
    if let Some(refused) = find_refused(err) {
        return refused_outcome(refused);
    }
    let kind = classify(err);
    Outcome {
        status_code: None,
        body: describe(err),
        duration,
        error: Some(kind),
        permanent: false,
        retry_after: None,
    }
}

/// The resolver's refusal, if that is what stopped the request.
fn find_refused(err: &reqwest::Error) -> Option<Refused> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = cause.source();
    }
    None
}

fn classify(err: &reqwest::Error) -> ErrorKind {
    if err.is_timeout() {
        return ErrorKind::Timeout;
    }
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return ErrorKind::ConnectionRefused,
                std::io::ErrorKind::TimedOut => return ErrorKind::Timeout,
                _ => {}
            }
        }
        if cause.downcast_ref::<rustls::Error>().is_some() {
            return ErrorKind::Tls;
        }
        let text = cause.to_string();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return ErrorKind::Dns;
        }
        source = wrapped_or_source(cause);
    }
    if err.is_builder() {
        ErrorKind::Refused
    } else {
        ErrorKind::Connection
    }
}

/// The next error down the chain. An `io::Error`'s `source` skips the error it wraps,
/// and a certificate refused by rustls arrives wrapped in two of them (tokio-rustls's and
/// the connector's), so for those this is the wrapped error.
fn wrapped_or_source<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    match err.downcast_ref::<std::io::Error>() {
        Some(io) => io
            .get_ref()
            .map(|inner| inner as &(dyn std::error::Error + 'static)),
        None => err.source(),
    }
}

/// The error and its causes in one line, without the URL (which may hold credentials).
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "<endpoint url>");
    }
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::{parse_retry_after, wrapped_or_source};

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn a_tls_error_inside_io_errors_is_reached() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let err = std::io::Error::other(std::io::Error::new(std::io::ErrorKind::InvalidData, tls));
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        let mut found = false;
        while let Some(c) = cause {
            found |= c.is::<rustls::Error>();
            cause = wrapped_or_source(c);
        }
        assert!(found);
    }
}
