//! `herald serve`: opens the store, starts the delivery worker and the HTTP API, and on
//! SIGINT/SIGTERM stops accepting requests, drains attempts in flight, and exits.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use dispatch::{Dispatcher, DispatcherConfig};
use model::{Clock, SystemClock};
use store::{NodeId, Store};
use store_sqlite::{EmbeddedConfig, EmbeddedStore};
use tokio_util::sync::CancellationToken;
use transport::{HttpTransportConfig, Transports};

use crate::config::{self, Settings};

pub(crate) fn run(settings: Settings) -> anyhow::Result<()> {
    // The AMQP client logs a subscriber's broker refusing it as an error; Herald records
    // those as failed attempts, like any receiver's failure, so they stay out of the log
    // unless the filter names `lapin`.
    let mut filter = settings.log.clone();
    if !filter.contains("lapin") {
        filter.push_str(",lapin=off");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&filter)
                .with_context(|| format!("log: `{}` is not a valid filter", settings.log))?,
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("herald")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(settings))
}

/// Connections waiting to be accepted, at most. The standard library's (and tokio's) 128
/// overflows when a fleet of publishers connects at once, and a SYN the kernel drops is
/// sent again only after a second. The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;

/// The API's listening socket.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted Herald can bind while old connections
    // linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    // The store first: it locks the data directory, so a second Herald on it stops here,
    // before anything in the directory is read or written.
    let db_path = settings.data_dir.join("herald.db");
    let store = EmbeddedStore::open(EmbeddedConfig {
        path: db_path.clone(),
        sync_full: settings.sync_full,
        max_bytes: settings.max_store_bytes,
    })
    .with_context(|| format!("opening the store at {}", db_path.display()))?;
    // The embedded store is this process's alone: it released at open whatever the
    // previous process left leased.
    if store.released_at_open() > 0 {
        tracing::info!(
            released = store.released_at_open(),
            "resuming deliveries left in flight by the previous run"
        );
    }
    let store: Arc<dyn Store> = Arc::new(store);
    let node = NodeId::generate();

    let token = match &settings.admin_token {
        Some(token) => token.clone(),
        None => match config::stored_token(&settings.data_dir)? {
            Some(token) => token,
            None => {
                let token = config::generate_token(&settings.data_dir)?;
                // Printed once, on the console only; `herald token` prints it again.
                println!("Generated an admin token (shown once; `herald token` prints it again):");
                println!("  {token}");
                token
            }
        },
    };

    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let transports = Transports::new(HttpTransportConfig {
        timeout: settings.attempt_timeout,
        max_response_bytes: 20 * 1024,
        user_agent: format!("Herald/{} (webhook delivery)", env!("CARGO_PKG_VERSION")),
        // Every attempt in flight may go to one host (many endpoints of one receiver): with
        // fewer idle connections kept, connections are closed and reopened under load.
        max_idle_per_host: settings.max_in_flight,
        destinations: settings.destinations.clone(),
        extra_roots: settings.extra_roots.clone(),
    })
    .context("building the HTTP client")?;
    let dispatcher = Dispatcher::new(
        store.clone(),
        transports,
        clock.clone(),
        DispatcherConfig {
            node,
            retry: settings.retry.clone(),
            max_in_flight: settings.max_in_flight,
            max_in_flight_per_endpoint: settings.max_in_flight_per_endpoint,
            max_queued: settings.max_queued,
            max_queued_per_endpoint: settings.max_queued_per_endpoint,
            lease: settings.attempt_timeout * 2 + Duration::from_secs(60),
            poll_interval: settings.poll_interval,
            poll_batch: 1000,
            drain_timeout: settings.drain_timeout,
            entity_retention: settings.entity_retention,
            auto_disable_after: settings.auto_disable_after,
            operator_app: Some(settings.operator_app.clone()),
        },
    );
    let router = api::router(
        store.clone(),
        dispatcher.clone(),
        clock,
        api::AdminToken::new(&token),
        api::ApiConfig {
            max_payload_bytes: settings.max_payload_bytes,
        },
    );

    let listener = listen(settings.bind).with_context(|| format!("binding {}", settings.bind))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, %node, data_dir = %settings.data_dir.display(), sync = if settings.sync_full { "full" } else { "normal" }, "herald started");
    println!("Herald listening on http://{addr}");
    let policy = &settings.destinations;
    if policy.refuses_everything().is_some() {
        tracing::info!("delivering nowhere: every destination is denied (--deny-destination)");
    } else if policy.allow.is_empty() {
        tracing::info!(
            https_only = policy.https_only,
            "delivering to public addresses only (--allow-destination opens ranges)"
        );
    } else {
        let allow: Vec<String> = policy.allow.iter().map(ToString::to_string).collect();
        tracing::info!(
            https_only = policy.https_only,
            allowed = %allow.join(","),
            "delivering to public addresses and the allowed ranges"
        );
    }
    if !policy.deny.is_empty() && policy.refuses_everything().is_none() {
        let deny: Vec<String> = policy.deny.iter().map(ToString::to_string).collect();
        tracing::info!(denied = %deny.join(","), "refusing the denied ranges");
    }

    let shutdown = CancellationToken::new();
    let worker = tokio::spawn({
        let dispatcher = dispatcher.clone();
        let shutdown = shutdown.clone();
        async move { dispatcher.run(shutdown).await }
    });
    // Answers go out as soon as they are written, not held back by Nagle's algorithm.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, router).with_graceful_shutdown({
        let shutdown = shutdown.clone();
        async move {
            wait_for_signal().await;
            tracing::info!("shutting down: no new requests, draining attempts in flight");
            shutdown.cancel();
        }
    });
    let served = server.await.context("serving HTTP");
    shutdown.cancel();
    worker.await.context("the delivery worker panicked")?;
    tracing::info!("herald stopped");
    served
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
