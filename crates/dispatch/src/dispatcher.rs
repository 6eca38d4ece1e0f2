//! The pipeline's handle, `Dispatcher`, and `Shared`, what its stages share: the store,
//! the clock, the settings, this node's id, the in-memory bookkeeping (`queues.rs`) and
//! the caches. The stages are methods on `Shared` in their own modules: `ingest.rs`,
//! `worker.rs` (polls, attempts), `record.rs` (the recorder), `leases.rs` (renewal),
//! `operational.rs` (disabling endpoints, operational events).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{Clock, DeliveryId};
use store::{NodeId, Store};
use tokio::sync::{Notify, mpsc};
use tokio_util::task::TaskTracker;
use transport::Transports;

use crate::fanout::CompiledRules;
use crate::health::Health;
use crate::meters::Meters;
use crate::queues::{Limits, Queues};
use crate::schedule::RetryPolicy;
use crate::traces::Traces;
use crate::worker::Recorded;

/// Settings of the worker; the caller decides every value.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// This process, as the owner of the leases it takes. A new one for every start.
    pub node: NodeId,
    pub retry: RetryPolicy,
    /// Concurrent attempts in all.
    pub max_in_flight: usize,
    /// Concurrent attempts to one endpoint.
    pub max_in_flight_per_endpoint: usize,
    /// Deliveries held in memory (queued or in flight); beyond this they wait in the store.
    pub max_queued: usize,
    /// Deliveries of one endpoint held in memory at most, so that a backlog (a dead
    /// endpoint's, say) leaves room for other endpoints' deliveries.
    pub max_queued_per_endpoint: usize,
    /// How long a lease lasts. It must be more than twice the attempt timeout: an attempt
    /// starts only with at least half its lease left (`leases::needs_renewal`).
    pub lease: Duration,
    /// How often the store is polled for due deliveries when nothing wakes the poller.
    pub poll_interval: Duration,
    /// Deliveries leased per poll at most.
    pub poll_batch: usize,
    /// How long at most the recorder waits for more finished attempts before writing a
    /// batch (only while they keep finishing: `store::batching`): zero for a store whose
    /// writes share commits anyway (the embedded one), a few milliseconds for one that
    /// pays a commit per call.
    pub record_linger: Duration,
    /// On shutdown, attempts in flight get this long to finish.
    pub drain_timeout: Duration,
    /// Entity snapshots not updated for this long are dropped.
    pub entity_retention: Duration,
    /// Messages older than this are removed with their deliveries and attempts, unless a
    /// pending delivery still needs them (`retention.rs`); `None`: kept forever.
    pub retention: Option<Duration>,
    /// An endpoint failing continuously for this long is disabled; `None`: never.
    pub auto_disable_after: Option<Duration>,
    /// The uid of the application operational events are published into, if it exists.
    pub operator_app: Option<String>,
    /// Make a span of each publish and attempt for the process's tracer provider.
    pub export_traces: bool,
}

/// The delivery pipeline's handle: ingest goes in, attempts come out. Cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: DispatcherConfig,
    pub(crate) transports: Transports,
    /// The in-memory bookkeeping. A `std` mutex: every critical section is a few map
    /// operations and none awaits; it is taken on every enqueue and completion (the hot
    /// path).
    queues: Mutex<Queues>,
    /// Endpoint filters and transforms, compiled once per endpoint revision.
    pub(crate) rules: CompiledRules,
    /// Wakes the poller early (resend, recover, freed capacity).
    pub(crate) wake: Notify,
    /// Attempt tasks, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Which endpoints this node knows to be failing, since when.
    pub(crate) health: Health,
    /// Finished attempts on their way to the recorder, which writes them in batches.
    pub(crate) records: mpsc::UnboundedSender<Recorded>,
    /// The recorder's end, taken by `run`. A `std` mutex: taken once.
    pub(crate) records_rx: Mutex<Option<mpsc::UnboundedReceiver<Recorded>>>,
    /// Writes the store refused because this node's lease was no longer current.
    stale_writes: AtomicU64,
    /// What `/metrics` shows of deliveries.
    pub(crate) meters: Meters,
    /// Spans of publishes and attempts (`traces.rs`).
    pub(crate) traces: Traces,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        transports: Transports,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Self {
        let (records, records_rx) = mpsc::unbounded_channel();
        let limits = Limits {
            max_in_flight: config.max_in_flight,
            max_in_flight_per_endpoint: config.max_in_flight_per_endpoint,
            max_queued: config.max_queued,
            max_queued_per_endpoint: config.max_queued_per_endpoint,
        };
        let traces = Traces::new(config.export_traces);
        Self {
            shared: Arc::new(Shared {
                records,
                records_rx: Mutex::new(Some(records_rx)),
                store,
                clock,
                config,
                transports,
                queues: Mutex::new(Queues::new(limits)),
                rules: CompiledRules::default(),
                wake: Notify::new(),
                tasks: TaskTracker::new(),
                health: Health::default(),
                stale_writes: AtomicU64::new(0),
                meters: Meters::new(),
                traces,
            }),
        }
    }

    /// Asks the poller to look for due deliveries now (after a resend or recover).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// This node's id, the owner of its leases.
    pub fn node(&self) -> NodeId {
        self.shared.config.node
    }

    /// Writes about deliveries (records, releases, renewals) the store refused since
    /// start because another lease had replaced this node's.
    pub fn stale_writes(&self) -> u64 {
        self.shared.stale_writes.load(Ordering::Relaxed)
    }

    /// Deliveries held in this node's memory (queued or in flight), and those in flight.
    pub fn in_memory(&self) -> (usize, usize) {
        self.shared.lock().counts()
    }

    /// When the delivery waiting longest in this node's queues (not in flight) became due.
    pub fn oldest_queued_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.shared.lock().oldest_queued_due()
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A poisoned lock means a panic inside a few map operations: a bug. Keep going
        // with the state as it is rather than stopping every delivery.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts and logs writes the store refused as stale: `what` (recording, releasing,
    /// renewing) about `deliveries`, whose leases another one has replaced.
    pub(crate) fn refused_as_stale<'a>(
        &self,
        what: &'static str,
        deliveries: impl IntoIterator<Item = (&'a DeliveryId, &'a store::LeasedDelivery)>,
    ) {
        let mut n = 0;
        for (id, lease) in deliveries {
            n += 1;
            tracing::warn!(
                msg_id = %lease.msg_id,
                endpoint_id = %lease.endpoint_id,
                delivery_id = %id,
                generation = lease.generation,
                node = %self.config.node,
                what,
                "lease lost: the store refused this node's write (another lease replaced it, or the delivery was deleted)"
            );
        }
        self.stale_writes.fetch_add(n, Ordering::Relaxed);
        self.meters.stale_writes.increment(n);
    }

    /// Stops holding a delivery whose attempt is recorded (or abandoned to its lease),
    /// waking the poller if leftovers may now fit.
    pub(crate) fn forget(&self, id: &DeliveryId) {
        if self.lock().forget(id) {
            self.wake.notify_one();
        }
    }
}

/// The lease end for a lease taken at `now`.
pub(crate) fn lease_end(
    config: &DispatcherConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> chrono::DateTime<chrono::Utc> {
    now + chrono::Duration::from_std(config.lease).unwrap_or_default()
}

/// How long to wait before renewing leases again.
pub(crate) fn renew_every(config: &DispatcherConfig) -> Duration {
    (config.lease / 4).max(Duration::from_millis(100))
}
