//! An ingest whose caller goes away gives back the memory it reserved.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use model::{Clock, SystemClock};
use transport::{DestinationPolicy, HttpTransportConfig, Transports};

use super::Publish;
use crate::dispatcher::{Dispatcher, DispatcherConfig};
use crate::schedule::RetryPolicy;
use crate::testing::{endpoint, store_with_app};

/// A client that disconnects mid-publish drops the handler's future, and with it the
/// ingest's, possibly while its write is in the store's queue. The slots it reserved for
/// its deliveries must come back; kept, they would shrink an endpoint's share of memory,
/// then all of memory, one dropped publish at a time, until nothing more could be queued.
#[tokio::test]
async fn a_cancelled_ingest_gives_its_reserved_memory_back() {
    let dir = tempfile::tempdir().unwrap();
    let (store, app) = store_with_app(dir.path()).await;
    let mut ep = endpoint(None, None, false);
    ep.app_id = app.id.clone();
    // `http://127.0.0.1/`, which the default policy refuses: an ingest that does complete
    // queues an attempt that sends nothing.
    store.create_endpoint(ep).await.unwrap();
    let transports = Transports::new(HttpTransportConfig {
        timeout: Duration::from_secs(1),
        max_response_bytes: 1024,
        user_agent: "Herald/test".into(),
        max_idle_per_host: 1,
        destinations: DestinationPolicy::default(),
        extra_roots: Vec::new(),
    })
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let dispatcher = Dispatcher::new(
        store,
        transports,
        clock,
        DispatcherConfig {
            node: store::NodeId::generate(),
            retry: RetryPolicy {
                schedule: Vec::new(),
                jitter: 0.0,
                max_retry_after: Duration::from_secs(1),
            },
            max_in_flight: 8,
            max_in_flight_per_endpoint: 4,
            max_queued: 100,
            max_queued_per_endpoint: 10,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(250),
            poll_batch: 100,
            drain_timeout: Duration::from_secs(1),
            record_linger: Duration::ZERO,
            entity_retention: Duration::from_secs(3600),
            retention: None,
            auto_disable_after: None,
            operator_app: None,
            export_traces: false,
        },
    );
    let publish = || Publish::event(app.id.clone(), "order.created".into(), Arc::from("{}"));

    // Poll an ingest until it holds its reservation and waits for the store, then drop it.
    let mut cancelled = 0;
    for _ in 0..20 {
        let mut ingest = Box::pin(dispatcher.ingest(publish()));
        let mut cx = Context::from_waker(Waker::noop());
        let mut held = false;
        for _ in 0..1000 {
            match ingest.as_mut().poll(&mut cx) {
                Poll::Ready(done) => {
                    done.unwrap();
                    break;
                }
                Poll::Pending if dispatcher.shared.lock().promised().0 > 0 => {
                    held = true;
                    break;
                }
                Poll::Pending => tokio::task::yield_now().await,
            }
        }
        drop(ingest);
        cancelled += usize::from(held);
        assert_eq!(
            dispatcher.shared.lock().promised().0,
            0,
            "no slot stays promised to a dropped ingest"
        );
    }
    assert!(cancelled > 0, "no ingest was caught waiting for the store");
}
