//! The `relay` baseline: the least a webhook server can do, which the benchmark runs as its
//! own process, like Herald, so that its CPU time can be read from /proc the same way.
//!
//! It answers the API calls the scenarios make (create an application, create an
//! endpoint, publish a message: the same paths, admin token and JSON shapes, as far as the
//! benchmark reads the answers) and forwards each published body, as it came, to every
//! endpoint of the application, with a `webhook-id` header naming the message it answered
//! with. Nothing else: no storage, no parsing of the event, no filters, no signing, no
//! retries. What it delivers is the most any webhook server could deliver on this
//! machine; the scenarios report Herald's rate as a share of it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::sync::Semaphore;

/// The allocator Herald uses, so that the two differ in the work they do, not in how
/// they allocate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Deliveries in flight to one endpoint at most: Herald's default
/// `max_in_flight_per_endpoint`, so both keep as many connections open to a receiver.
const IN_FLIGHT_PER_ENDPOINT: usize = 32;

#[derive(Parser)]
#[command(about = "The benchmark's baseline: forwards every published body, nothing else")]
struct Args {
    /// Where the API listens (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// The token every request must carry as `Authorization: Bearer …`.
    #[arg(long)]
    admin_token: String,
}

/// One endpoint: where its deliveries go, its idle keep-alive connections, and a slot per
/// delivery it may have in flight.
struct Endpoint {
    authority: String,
    host: HeaderValue,
    path: Uri,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    slots: Arc<Semaphore>,
}

struct Relay {
    /// `Bearer <admin token>`.
    authorization: String,
    /// Each application's endpoints, replaced as a whole when one is added.
    apps: RwLock<HashMap<String, Arc<Vec<Arc<Endpoint>>>>>,
    next_id: AtomicU64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    // The benchmark waits for this line, as it does for Herald's.
    println!("Relay listening on http://{}", listener.local_addr()?);
    let relay = Arc::new(Relay {
        authorization: format!("Bearer {}", args.admin_token),
        apps: RwLock::new(HashMap::new()),
        next_id: AtomicU64::new(1),
    });
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                eprintln!("relay: accepting a connection failed: {error}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let relay = relay.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let relay = relay.clone();
                async move { Ok::<_, Infallible>(relay.handle(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error(status: StatusCode, code: &str, detail: &str) -> Response<Full<Bytes>> {
    answer(status, json!({"code": code, "detail": detail}))
}

impl Relay {
    async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let authorized = request
            .headers()
            .get(AUTHORIZATION)
            .is_some_and(|value| value.as_bytes() == self.authorization.as_bytes());
        if !authorized {
            return error(
                StatusCode::UNAUTHORIZED,
                "authentication_failed",
                "Invalid token",
            );
        }
        if request.method() != Method::POST {
            return error(StatusCode::NOT_FOUND, "not_found", "Not found");
        }
        let path = request.uri().path().to_owned();
        let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
            return error(StatusCode::BAD_REQUEST, "bad_request", "Unreadable body");
        };
        let segments: Vec<&str> = path.split('/').collect();
        match segments.as_slice() {
            ["", "api", "v1", "app"] => self.create_app(&body),
            ["", "api", "v1", "app", app, "endpoint"] => self.create_endpoint(app, &body),
            ["", "api", "v1", "app", app, "msg"] => self.publish(app, body).await,
            _ => error(StatusCode::NOT_FOUND, "not_found", "Not found"),
        }
    }

    fn id(&self, prefix: &str) -> String {
        format!("{prefix}_{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// `POST /api/v1/app`: 201 with the new application's id.
    fn create_app(&self, body: &[u8]) -> Response<Full<Bytes>> {
        let Ok(app) = serde_json::from_slice::<serde_json::Value>(body) else {
            return error(StatusCode::BAD_REQUEST, "bad_request", "Not JSON");
        };
        let id = self.id("app");
        self.apps
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), Arc::new(Vec::new()));
        answer(
            StatusCode::CREATED,
            json!({"id": id, "name": app.get("name")}),
        )
    }

    /// `POST /api/v1/app/{app}/endpoint` with an `http://` URL: 201 with the endpoint's
    /// id. Every other field (filters, transforms…) is ignored.
    fn create_endpoint(&self, app: &str, body: &[u8]) -> Response<Full<Bytes>> {
        #[derive(serde::Deserialize)]
        struct EndpointIn {
            url: String,
        }
        let Ok(EndpointIn { url }) = serde_json::from_slice(body) else {
            return error(StatusCode::UNPROCESSABLE_ENTITY, "validation", "No url");
        };
        let Some(endpoint) = Endpoint::new(&url) else {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Only http:// URLs",
            );
        };
        let mut apps = self.apps.write().unwrap_or_else(PoisonError::into_inner);
        let Some(endpoints) = apps.get_mut(app) else {
            return error(StatusCode::NOT_FOUND, "not_found", "No such application");
        };
        let mut list = endpoints.as_ref().clone();
        list.push(Arc::new(endpoint));
        *endpoints = Arc::new(list);
        answer(
            StatusCode::CREATED,
            json!({"id": self.id("ep"), "url": url}),
        )
    }

    /// `POST /api/v1/app/{app}/msg`: 202 with the message's id as soon as each endpoint
    /// has a slot for it (so publishers slow down to the pace of deliveries rather than
    /// queue without bound); the body is sent to every endpoint meanwhile.
    async fn publish(&self, app: &str, body: Bytes) -> Response<Full<Bytes>> {
        let endpoints = self
            .apps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(app)
            .cloned();
        let Some(endpoints) = endpoints else {
            return error(StatusCode::NOT_FOUND, "not_found", "No such application");
        };
        let id = self.id("msg");
        let webhook_id = HeaderValue::from_str(&id).expect("an id is ASCII");
        for endpoint in endpoints.iter() {
            let Ok(slot) = endpoint.slots.clone().acquire_owned().await else {
                continue;
            };
            let (endpoint, webhook_id, body) = (endpoint.clone(), webhook_id.clone(), body.clone());
            tokio::spawn(async move {
                endpoint.deliver(&webhook_id, &body).await;
                drop(slot);
            });
        }
        answer(StatusCode::ACCEPTED, json!({"id": id}))
    }
}

impl Endpoint {
    /// An endpoint for `http://host:port/path`, or None for any other URL.
    fn new(url: &str) -> Option<Self> {
        let rest = url.strip_prefix("http://")?;
        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, "/"),
        };
        Some(Self {
            authority: authority.to_owned(),
            host: HeaderValue::from_str(authority).ok()?,
            path: path.parse().ok()?,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(IN_FLIGHT_PER_ENDPOINT)),
        })
    }

    /// One delivery. A failure is reported and dropped: the relay does not retry.
    async fn deliver(&self, webhook_id: &HeaderValue, body: &Bytes) {
        if let Err(error) = self.send(webhook_id, body).await {
            eprintln!(
                "relay: a delivery to http://{}{} failed: {error:#}",
                self.authority, self.path
            );
        }
    }

    /// Sends one delivery on an idle keep-alive connection, or on a new one. A reused
    /// connection that fails is replaced once, as any keep-alive client does (the
    /// receiver may have closed it meanwhile); that is not a retry of a refused delivery.
    async fn send(&self, webhook_id: &HeaderValue, body: &Bytes) -> anyhow::Result<()> {
        let reused = self.take_idle();
        let fresh = reused.is_none();
        let mut sender = match reused {
            Some(sender) => sender,
            None => self.connect().await?,
        };
        if let Err(error) = self.exchange(&mut sender, webhook_id, body).await {
            if fresh {
                return Err(error);
            }
            sender = self.connect().await?;
            self.exchange(&mut sender, webhook_id, body).await?;
        }
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
        Ok(())
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        std::iter::from_fn(|| idle.pop()).find(|sender| !sender.is_closed())
    }

    async fn connect(&self) -> anyhow::Result<SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(&self.authority).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// One request and its whole answer (read to the end, so the connection can be
    /// reused); the answer's status is not looked at.
    async fn exchange(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        webhook_id: &HeaderValue,
        body: &Bytes,
    ) -> anyhow::Result<()> {
        sender.ready().await?;
        let mut request = Request::new(Full::new(body.clone()));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.host.clone());
        headers.insert("webhook-id", webhook_id.clone());
        let response = sender.send_request(request).await?;
        response.into_body().collect().await?;
        Ok(())
    }
}
