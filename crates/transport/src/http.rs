//! HTTP(S) delivery on hyper's client connections over rustls, with a pool of its own:
//! connection reuse per destination, HTTP/1.1 and HTTP/2 (negotiated by ALPN), no
//! redirects, no proxies, a total time limit per attempt, and a cap on how much of a
//! response body is read.
//!
//! This was reqwest, then hyper-util's pooled client, until the benchmark showed what
//! their layers cost per loopback exchange (both sides): 47 µs with reqwest, 32 with
//! hyper-util's client, 24 with a bare hyper connection. Herald needs none of what those
//! layers add (redirects, proxies, cookies, decompression, a task spawned per request to
//! watch the connection go idle); what it does need is here: guarded resolution (only
//! allowed addresses are connected to), credentials from the URL, the user agent, TCP
//! keepalive, the time limit, and a pool (`Pool`) that hands an idle connection back out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use model::{ErrorKind, Outcome};
use tokio::net::TcpStream;

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
    /// CA certificates trusted besides the platform's (receivers behind a private CA).
    pub extra_roots: Vec<rustls::pki_types::CertificateDer<'static>>,
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
    pool: Arc<Pool>,
    /// Checked routes by endpoint URL. A `std` mutex: a map lookup or insert, no await.
    routes: Arc<Mutex<HashMap<String, Arc<Route>>>>,
    tls: tokio_rustls::TlsConnector,
    config: HttpTransportConfig,
    user_agent: http::HeaderValue,
    policy: Arc<DestinationPolicy>,
}

/// A connection's sending half. An HTTP/1.1 connection carries one request at a time and
/// is lent out of the pool; an HTTP/2 connection is shared by every request to its
/// destination.
enum Sender {
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// Open connections per destination (`scheme://host:port`), for reuse.
struct Pool {
    /// A `std` mutex: every critical section is a few map and vector operations, and
    /// none awaits.
    destinations: Mutex<PoolState>,
    max_idle_per_host: usize,
}

#[derive(Default)]
struct PoolState {
    by_destination: HashMap<String, Destination>,
    last_sweep: Option<Instant>,
}

#[derive(Default)]
struct Destination {
    /// Idle HTTP/1.1 connections, the most recently used last, with when each went idle.
    idle: Vec<(http1::SendRequest<Full<Bytes>>, Instant)>,
    /// The destination's HTTP/2 connection, if it speaks HTTP/2.
    shared: Option<http2::SendRequest<Full<Bytes>>>,
}

/// An idle connection is closed after this long (receivers commonly close theirs sooner).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often the pool drops connections that closed or idled out, for every destination.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// Pooled connections tried for one request before a new one is opened.
const MAX_POOLED_TRIES: usize = 4;
/// Connecting to one address may take this long at most.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Pool {
    /// A connection to `destination` ready for a request, if one is open.
    fn checkout(&self, destination: &str) -> Option<Sender> {
        let mut state = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.by_destination.get_mut(destination)?;
        if let Some(shared) = &entry.shared {
            if !shared.is_closed() {
                return Some(Sender::Http2(shared.clone()));
            }
            entry.shared = None;
        }
        while let Some((sender, since)) = entry.idle.pop() {
            if !sender.is_closed() && since.elapsed() < IDLE_TIMEOUT {
                return Some(Sender::Http1(sender));
            }
        }
        None
    }

    /// Keeps a connection whose exchange finished cleanly for the next request.
    fn checkin(&self, destination: &str, sender: Sender) {
        let mut state = self.destinations.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if state
            .last_sweep
            .is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY)
        {
            state.last_sweep = Some(now);
            state.by_destination.retain(|_, entry| {
                entry.idle.retain(|(s, since)| {
                    !s.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT
                });
                if entry.shared.as_ref().is_some_and(|s| s.is_closed()) {
                    entry.shared = None;
                }
                !entry.idle.is_empty() || entry.shared.is_some()
            });
        }
        match sender {
            Sender::Http1(sender) => {
                if sender.is_closed() {
                    return;
                }
                let entry = state
                    .by_destination
                    .entry(destination.to_owned())
                    .or_default();
                // Beyond the limit, the connection is dropped, which closes it.
                if entry.idle.len() < self.max_idle_per_host {
                    entry.idle.push((sender, now));
                }
            }
            Sender::Http2(sender) => {
                let entry = state
                    .by_destination
                    .entry(destination.to_owned())
                    .or_default();
                if entry.shared.as_ref().is_none_or(|s| s.is_closed()) {
                    entry.shared = Some(sender);
                }
            }
        }
    }
}

/// A failed name lookup.
#[derive(Debug)]
struct DnsError(String);

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "dns error: {}", self.0)
    }
}

impl std::error::Error for DnsError {}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the transport could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("TLS roots: {0}")]
    Tls(#[from] rustls::Error),
    #[error("user agent: {0}")]
    UserAgent(#[from] http::header::InvalidHeaderValue),
}

/// The TLS settings of every outbound connection (HTTPS receivers, `amqps` brokers): the
/// platform's verifier, trusting `extra_roots` besides the platform's CAs; no ALPN.
pub(crate) fn client_tls(
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<rustls::ClientConfig, BuildError> {
    // The process-wide rustls provider; a second install (tests) is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        extra_roots.iter().cloned(),
        provider.clone(),
    )?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// What every request to one endpoint URL shares, worked out once per URL.
struct Route {
    target: Target,
    /// The URL without credentials and fragment.
    uri: http::Uri,
    /// The URL's credentials as HTTP Basic authorization.
    authorization: Option<http::HeaderValue>,
}

/// Routes kept at most; past this the cache starts over.
const MAX_ROUTES: usize = 4096;
/// Longer URLs are not kept (a GET endpoint's URLs carry each payload).
const MAX_CACHED_URL: usize = 2048;

/// Where a request goes, taken from its checked URL.
struct Target {
    https: bool,
    host: url::Host<String>,
    port: u16,
    /// `scheme://host:port`: the pool's key.
    destination: String,
    /// The `Host` header of HTTP/1.1 requests (reserved: endpoints cannot set it).
    host_header: http::HeaderValue,
}

impl HttpTransport {
    pub fn new(config: HttpTransportConfig) -> Result<Self, BuildError> {
        let tls = client_tls(&config.extra_roots)?;
        Self::with_tls(config, tls)
    }

    /// With TLS settings made by `client_tls` (shared with the AMQP transport).
    pub(crate) fn with_tls(
        config: HttpTransportConfig,
        mut tls: rustls::ClientConfig,
    ) -> Result<Self, BuildError> {
        let policy = config.destinations.clone().shared();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        // A proxy from the environment is never used: this client knows no proxies.
        Ok(Self {
            pool: Arc::new(Pool {
                destinations: Mutex::new(PoolState::default()),
                max_idle_per_host: config.max_idle_per_host,
            }),
            routes: Arc::new(Mutex::new(HashMap::new())),
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            user_agent: http::HeaderValue::from_str(&config.user_agent)?,
            config,
            policy,
        })
    }

    /// Refuses a URL the policy forbids before any packet is sent: a scheme other than
    /// https under `https_only`, or a host that is an IP literal (which is never resolved,
    /// so `connect` does not check it; the URL parser has already turned spellings such
    /// as `2130706433`, `0x7f.1` and `127.1` into the address they mean). When every
    /// address is denied, every URL is refused here, before its host name is resolved.
    /// Returns the parsed URL.
    fn precheck(&self, url: &str) -> Result<url::Url, Refused> {
        let url = url::Url::parse(url).map_err(|e| Refused(format!("invalid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused(format!(
                "the URL scheme `{}` is not http or https",
                url.scheme()
            )));
        }
        if self.policy.https_only && url.scheme() != "https" {
            return Err(Refused(
                "only https destinations are allowed (--https-only)".into(),
            ));
        }
        if let Some(refused) = self.policy.refuses_everything() {
            return Err(refused);
        }
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.policy.check(ip.into())?,
            Some(url::Host::Ipv6(ip)) => self.policy.check(ip.into())?,
            Some(url::Host::Domain(_)) => {}
            None => return Err(Refused("the URL has no host".into())),
        }
        Ok(url)
    }

    /// Where a URL's requests go, checked: from the cache, or worked out by `precheck`
    /// and `route_of` and kept (the policy does not change while Herald runs).
    fn route(&self, url: &str) -> Result<Arc<Route>, Refused> {
        let cached = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(url)
            .cloned();
        if let Some(route) = cached {
            return Ok(route);
        }
        let route = Arc::new(route_of(self.precheck(url)?)?);
        // A GET endpoint's URL carries each payload: such URLs are long and used once.
        if url.len() <= MAX_CACHED_URL {
            let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
            if routes.len() >= MAX_ROUTES {
                routes.clear();
            }
            routes.insert(url.to_owned(), route.clone());
        }
        Ok(route)
    }

    /// The request hyper sends: the route's URI and `Host`, its credentials as HTTP Basic
    /// authorization unless the endpoint set its own, and the user agent unless the
    /// endpoint set its own.
    fn build(&self, route: &Route, request: HttpRequest) -> http::Request<Full<Bytes>> {
        let mut headers = request.headers;
        if let Some(authorization) = &route.authorization {
            // An endpoint's own Authorization header wins, as it did with reqwest.
            headers
                .entry(http::header::AUTHORIZATION)
                .or_insert_with(|| authorization.clone());
        }
        headers
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        headers
            .entry(http::header::ACCEPT)
            .or_insert(http::HeaderValue::from_static("*/*"));
        headers.insert(http::header::HOST, route.target.host_header.clone());
        let mut built = http::Request::new(Full::new(request.body));
        *built.method_mut() = request.method;
        *built.uri_mut() = route.uri.clone();
        *built.headers_mut() = headers;
        built
    }

    /// Sends one request. Never fails: every failure is described by the `Outcome`.
    pub async fn send(&self, request: HttpRequest) -> Outcome {
        let route = match self.route(&request.url) {
            Ok(route) => route,
            Err(refused) => return refused_outcome(refused),
        };
        let target = &route.target;
        let request = self.build(&route, request);
        let started = Instant::now();
        // The status, once the headers are in: a body cut by the time limit keeps it.
        let mut status = None;
        let exchange = self.exchange(target, request, started, &mut status);
        match tokio::time::timeout(self.config.timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                status_code: status,
                body: format!(
                    "no complete answer within {} s",
                    self.config.timeout.as_secs_f64()
                ),
                duration: started.elapsed(),
                error: Some(ErrorKind::Timeout),
                permanent: false,
                retry_after: None,
            },
        }
    }

    /// The exchange itself, without the time limit: on a pooled connection if one is
    /// open, else on a new one, which goes to the pool afterwards if it is still clean.
    async fn exchange(
        &self,
        target: &Target,
        mut request: http::Request<Full<Bytes>>,
        started: Instant,
        status_seen: &mut Option<u16>,
    ) -> Outcome {
        let absolute = request.uri().clone();
        let origin_form = absolute.path_and_query().map_or_else(
            || http::Uri::from_static("/"),
            |pq| http::Uri::from(pq.clone()),
        );
        let mut tries = 0;
        let response = loop {
            tries += 1;
            // Pooled connections that turn out closed are dropped one by one; past a few,
            // a new connection is opened.
            let pooled = if tries <= MAX_POOLED_TRIES {
                self.pool.checkout(&target.destination)
            } else {
                None
            };
            let reused = pooled.is_some();
            let sender = match pooled {
                Some(sender) => sender,
                // Boxed: connecting (DNS, TCP, TLS handshake) is the rare path, and its
                // future inline would make every exchange's future six times larger,
                // copied with each attempt's task.
                None => match Box::pin(self.connect(target)).await {
                    Ok(sender) => sender,
                    Err(err) => return failure(&*err, started.elapsed()),
                },
            };
            let sent = match sender {
                Sender::Http1(mut sender) => {
                    if let Err(err) = sender.ready().await {
                        if reused {
                            continue; // Closed while idle; nothing was sent on it.
                        }
                        return failure(&err, started.elapsed());
                    }
                    // HTTP/1.1 sends the path and query; the host is in its header.
                    *request.uri_mut() = origin_form.clone();
                    let sent = sender.try_send_request(request).await;
                    sent.map(|response| (response, Sender::Http1(sender)))
                }
                Sender::Http2(mut sender) => {
                    if let Err(err) = sender.ready().await {
                        if reused {
                            continue;
                        }
                        return failure(&err, started.elapsed());
                    }
                    *request.uri_mut() = absolute.clone();
                    request.headers_mut().remove(http::header::HOST);
                    let sent = sender.try_send_request(request).await;
                    sent.map(|response| (response, Sender::Http2(sender)))
                }
            };
            match sent {
                Ok(response) => break response,
                Err(mut err) => match err.take_message() {
                    // A pooled connection that closed before the request went out: the
                    // request was never sent, so it goes on another connection.
                    Some(mut unsent) if reused => {
                        unsent
                            .headers_mut()
                            .insert(http::header::HOST, target.host_header.clone());
                        request = unsent;
                    }
                    _ => return failure(err.error(), started.elapsed()),
                },
            }
        };
        let (response, sender) = response;
        let status = response.status();
        *status_seen = Some(status.as_u16());
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now()));
        let mut body = Vec::new();
        let mut body_error = None;
        let mut complete = false;
        let mut incoming = response.into_body();
        loop {
            match incoming.frame().await {
                Some(Ok(frame)) => {
                    let Ok(chunk) = frame.into_data() else {
                        continue; // trailers
                    };
                    let room = self.config.max_response_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= self.config.max_response_bytes && !incoming.is_end_stream() {
                        break; // The rest is not read; the connection is not reused.
                    }
                }
                None => {
                    complete = true;
                    break;
                }
                Some(Err(err)) => {
                    body_error = Some(err);
                    break;
                }
            }
        }
        if complete {
            self.pool.checkin(&target.destination, sender);
        }
        let duration = started.elapsed();
        if let Some(err) = body_error {
            // The status arrived but the body did not finish: a broken connection means
            // the receiver's answer is unknown, so it is a failure.
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

    /// Opens a connection to the target: its allowed addresses in turn (a host name is
    /// resolved and only the addresses the policy allows are tried, so what was checked
    /// is what is connected to), TLS for https (HTTP/2 when the receiver offers it).
    async fn connect(&self, target: &Target) -> Result<Sender, BoxError> {
        let addrs = match &target.host {
            // Literals were checked by `precheck`.
            url::Host::Ipv4(ip) => vec![SocketAddr::new(IpAddr::V4(*ip), target.port)],
            url::Host::Ipv6(ip) => vec![SocketAddr::new(IpAddr::V6(*ip), target.port)],
            url::Host::Domain(name) => {
                if let Some(refused) = self.policy.refuses_everything() {
                    return Err(refused.into());
                }
                let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), target.port))
                    .await
                    .map_err(|e| DnsError(e.to_string()))?
                    .collect();
                self.policy.filter(name, found)?
            }
        };
        let stream = connect_any(&addrs, self.config.timeout.min(CONNECT_TIMEOUT)).await?;
        if !target.https {
            return handshake_http1(TokioIo::new(stream)).await;
        }
        let name = match &target.host {
            url::Host::Domain(name) => rustls::pki_types::ServerName::try_from(name.clone())?,
            url::Host::Ipv4(ip) => rustls::pki_types::ServerName::IpAddress(IpAddr::V4(*ip).into()),
            url::Host::Ipv6(ip) => rustls::pki_types::ServerName::IpAddress(IpAddr::V6(*ip).into()),
        };
        let tls = self.tls.connect(name, stream).await?;
        if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(TokioIo::new(tls))
                .await?;
            tokio::spawn(connection);
            Ok(Sender::Http2(sender))
        } else {
            handshake_http1(TokioIo::new(tls)).await
        }
    }
}

/// What requests to a checked URL need: credentials in the URL become HTTP Basic
/// authorization (and leave the URL), a fragment is dropped, and the target and `Host`
/// are taken from what remains.
fn route_of(mut url: url::Url) -> Result<Route, Refused> {
    let mut authorization = None;
    if !url.username().is_empty() || url.password().is_some() {
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let credentials = format!(
            "{}:{}",
            decode(url.username()),
            decode(url.password().unwrap_or(""))
        );
        let mut value = http::HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        ))
        .map_err(|_| Refused("the URL's credentials cannot be sent".into()))?;
        value.set_sensitive(true);
        authorization = Some(value);
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    // A fragment is never sent.
    url.set_fragment(None);
    let uri: http::Uri = url
        .as_str()
        .parse()
        .map_err(|e| Refused(format!("invalid URL: {e}")))?;
    let (Some(host), Some(port)) = (url.host(), url.port_or_known_default()) else {
        return Err(Refused("the URL has no host".into()));
    };
    let authority = uri
        .authority()
        .ok_or_else(|| Refused("the URL has no host".into()))?;
    // HTTP/1.1 names the host in a header (HTTP/2 in the request's :authority).
    let host_header = http::HeaderValue::from_str(authority.as_str())
        .map_err(|_| Refused("the URL's host cannot be sent".into()))?;
    let target = Target {
        destination: format!("{}://{}:{port}", url.scheme(), authority.host()),
        host_header,
        https: url.scheme() == "https",
        host: host.to_owned(),
        port,
    };
    Ok(Route {
        target,
        uri,
        authorization,
    })
}

/// An HTTP/1.1 connection on `io`, driven by a task of its own until it closes.
async fn handshake_http1<T>(io: TokioIo<T>) -> Result<Sender, BoxError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = http1::handshake(io).await?;
    tokio::spawn(connection);
    Ok(Sender::Http1(sender))
}

/// Connects to the first of `addrs` that answers, each within `timeout`, and sets the
/// socket up: no Nagle delay, and keepalive probes with a user timeout, so that a pooled
/// connection a NAT or load balancer dropped silently is found dead (as reqwest did by
/// default) instead of hanging the next attempt until its time limit.
async fn connect_any(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, BoxError> {
    let mut last: Option<std::io::Error> = None;
    for addr in addrs {
        let error = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                stream.set_nodelay(true)?;
                let socket = socket2::SockRef::from(&stream);
                socket.set_tcp_keepalive(
                    &socket2::TcpKeepalive::new()
                        .with_time(Duration::from_secs(15))
                        .with_interval(Duration::from_secs(15))
                        .with_retries(3),
                )?;
                #[cfg(target_os = "linux")]
                socket.set_tcp_user_timeout(Some(Duration::from_secs(30)))?;
                return Ok(stream);
            }
            Ok(Err(err)) => err,
            Err(_) => std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("connecting to {addr} timed out"),
            ),
        };
        last = Some(error);
    }
    Err(last
        .unwrap_or_else(|| std::io::Error::other("no address to connect to"))
        .into())
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
fn failure(err: &(dyn std::error::Error + 'static), duration: Duration) -> Outcome {
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

/// The destination policy's refusal, if that is what stopped the request.
fn find_refused(err: &(dyn std::error::Error + 'static)) -> Option<Refused> {
    let mut source = Some(err);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return Some(refused.clone());
        }
        source = cause.source();
    }
    None
}

fn classify(err: &(dyn std::error::Error + 'static)) -> ErrorKind {
    let mut source = Some(err);
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
        if cause.is::<DnsError>() {
            return ErrorKind::Dns;
        }
        source = wrapped_or_source(cause);
    }
    ErrorKind::Connection
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

/// The error and its causes in one line (hyper's errors never hold the URL, which may
/// hold credentials).
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
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
