//! Herald's HTTP API: a superset of the Svix API. One module per resource under
//! `routes/`; `error.rs` renders Svix's error shapes; `extract.rs` wraps the JSON and
//! query extractors so bad input gets those shapes; `auth.rs` checks tokens and `scope.rs` what an application token may do;
//! `list.rs` is Svix pagination. The OpenAPI document is generated from the handlers.
//! The API never opens outbound connections: it hands messages to `dispatch`.

mod auth;
mod contracts;
mod error;
mod extract;
mod list;
mod metrics;
mod routes;
mod scope;
mod time;
mod validate;

use std::sync::Arc;

use axum::Router;
use dispatch::Dispatcher;
use model::Clock;
use store::Store;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use auth::AdminToken;
use auth::BearerAuth;

/// Settings of the API; the caller decides every value.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest accepted message payload, in bytes.
    pub max_payload_bytes: usize,
    /// Set when the node has begun shutting down: it is no longer ready.
    pub draining: Arc<std::sync::atomic::AtomicBool>,
    /// `/metrics`, if served: who may read it and what renders it.
    pub metrics: Option<Metrics>,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    /// Requests with the admin token only (the default: the API port is often reachable
    /// by the platform's customers, and volumes and error rates are the operator's).
    Token,
    /// Anyone who reaches the port (a scraper on a private network without a token).
    Public,
}

/// `/metrics`: who may read it, and the Prometheus text of what the process recorded.
#[derive(Clone)]
pub struct Metrics {
    pub access: MetricsAccess,
    pub render: Arc<dyn Fn() -> String + Send + Sync>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("access", &self.access)
            .finish()
    }
}

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) dispatcher: Dispatcher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: ApiConfig,
    /// Event types' compiled schemas, for those that enforce them.
    pub(crate) contracts: Arc<contracts::Contracts>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Herald API",
        description = "Webhook delivery server. A superset of the Svix API: the official Svix SDKs work unchanged.",
        license(name = "MIT OR Apache-2.0")
    ),
    components(schemas(error::HttpErrorOut, error::HttpValidationError, error::ValidationErrorItem, list::Ordering)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// The whole API as a router, with its OpenAPI document served at `/api/v1/openapi.json`.
pub fn router(
    store: Arc<dyn Store>,
    dispatcher: Dispatcher,
    clock: Arc<dyn Clock>,
    token: AdminToken,
    config: ApiConfig,
) -> Router {
    let state = AppState {
        store,
        dispatcher,
        clock,
        config: config.clone(),
        contracts: Arc::default(),
    };
    let (public, authenticated) = routers();
    let auth = auth::Auth {
        admin: token,
        store: state.store.clone(),
        clock: state.clock.clone(),
    };
    if config.metrics.is_some() {
        metrics::register();
    }
    let metrics_route = config.metrics.as_ref().map(|m| {
        let route = Router::new().route("/metrics", axum::routing::get(metrics::render));
        match m.access {
            MetricsAccess::Public => route,
            MetricsAccess::Token => route.layer(axum::middleware::from_fn_with_state(
                auth.clone(),
                auth::require_admin,
            )),
        }
    });
    let authenticated = authenticated.layer(axum::middleware::from_fn_with_state(
        auth,
        auth::require_token,
    ));
    let (mut router, doc) = public.merge(authenticated).split_for_parts();
    if let Some(route) = metrics_route {
        router = router.merge(route);
    }
    let doc = Arc::new(doc);
    let body_limit = config.max_payload_bytes + extract::ENVELOPE_SLACK;
    router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |request, next| {
            edge(body_limit, request, next)
        }))
        .with_state(state)
}

/// What every request passes through, in one middleware (each layer costs an allocation
/// and a boxed future per request, about 1.5 µs; this was three, and tower-http's trace
/// layer): oversize bodies are refused (`refuse_oversize`), server errors are logged with
/// their cause, and at `debug` level every request is logged with its status and time.
async fn edge(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let uri = request.uri().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = refuse_oversize(limit, request, next).await;
    error::log_server_error(&method, uri.path(), &response);
    metrics::record_request(
        &method,
        route.as_ref().map(|r| r.as_str()),
        response.status(),
        started.elapsed(),
    );
    if debug {
        tracing::debug!(
            %method,
            path = uri.path(),
            status = response.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "request"
        );
    }
    response
}

/// Bodies declared larger than this are refused without being read (the connection is
/// closed); smaller oversize bodies are read and dropped first.
const DRAIN_MAX: u64 = 16 * 1024 * 1024;

/// Answers a body whose `content-length` exceeds `limit` with a 413 in the API's error
/// shape. The body is read (and dropped) first, up to `DRAIN_MAX`: a client still sending
/// it would otherwise see its connection closed under it, not the answer.
async fn refuse_oversize(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit as u64 => {
            if length <= DRAIN_MAX {
                let _ = axum::body::to_bytes(request.into_body(), DRAIN_MAX as usize).await;
            }
            error::ApiError::PayloadTooLarge(
                "The request body is larger than the configured limit.".to_owned(),
            )
            .into_response()
        }
        _ => next.run(request).await,
    }
}

/// The OpenAPI document of what Herald implements, as generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (public, authenticated) = routers();
    public.merge(authenticated).into_openapi()
}

/// The routes that need no token, and those that do.
fn routers() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let public = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::health::router());
    let authenticated = OpenApiRouter::new()
        .merge(routes::applications::router())
        .merge(routes::event_types::router())
        .merge(routes::endpoints::router())
        .merge(routes::messages::router())
        .merge(routes::attempts::router())
        .merge(routes::examples::router())
        .merge(routes::expunge::router())
        .merge(routes::endpoint_health::router())
        .merge(routes::attention::router())
        .merge(routes::auth::router());
    (public, authenticated)
}
