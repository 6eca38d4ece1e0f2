//! The worker: sequences the stages and owns the in-memory side of delivery.
//!
//! Deliveries reach the worker two ways: straight from ingest (already leased in the
//! store, no poll needed) and from `lease_due` polls (retries, recover, resend, and
//! anything left over by a restart). Each endpoint has its own FIFO queue; endpoints
//! with work take turns (round robin), each limited to `max_in_flight_per_endpoint`
//! concurrent attempts, all limited to `max_in_flight`. A slow or dead endpoint thus
//! holds at most its own slots, never another endpoint's queue. Memory is shared the same
//! way: at most `max_queued` deliveries are held, at most `max_queued_per_endpoint` of
//! them for one endpoint, so one endpoint's backlog leaves room for the others; what does
//! not fit waits in the store, where polls let endpoints take turns.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use model::{Clock, DeliveryId, EndpointId, ErrorKind, Message, MessageId, Trigger};
use store::{AttemptRecord, DueDelivery, LeaseRequest, Store};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::Transports;

use crate::attempt::{attempt, refused};
use crate::fanout::CompiledRules;
use crate::health::Health;
use crate::record::attempt_record;
use crate::schedule::{NextStep, RetryPolicy, next_step};
use crate::throttle::Throttle;

/// Settings of the worker; the caller decides every value.
#[derive(Debug, Clone)]
pub struct DispatcherConfig {
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
    /// How long a leased delivery belongs to this process before a poll may take it again.
    pub lease: Duration,
    /// How often the store is polled for due deliveries when nothing wakes the poller.
    pub poll_interval: Duration,
    /// Deliveries leased per poll at most.
    pub poll_batch: usize,
    /// On shutdown, attempts in flight get this long to finish.
    pub drain_timeout: Duration,
    /// Entity snapshots not updated for this long are dropped.
    pub entity_retention: Duration,
    /// An endpoint failing continuously for this long is disabled; `None`: never.
    pub auto_disable_after: Option<Duration>,
    /// The uid of the application operational events are published into, if it exists.
    pub operator_app: Option<String>,
}

/// One delivery to attempt.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) delivery_id: DeliveryId,
    pub(crate) endpoint_id: EndpointId,
    pub(crate) message: Arc<Message>,
    /// Attempts made before this one in the current run.
    pub(crate) attempts: u32,
    pub(crate) trigger: Trigger,
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
    transports: Transports,
    /// Queue state. A `std` mutex: every critical section is a few map operations and
    /// none awaits; it is taken on every enqueue and completion (the hot path).
    queues: Mutex<Queues>,
    /// Endpoint filters and transforms, compiled once per endpoint version.
    pub(crate) rules: CompiledRules,
    /// Pacing of endpoints with a `throttleRate`.
    throttle: Throttle,
    /// Wakes the poller early (resend, recover, freed capacity).
    wake: Notify,
    /// Attempt tasks, so shutdown can wait for them.
    pub(crate) tasks: TaskTracker,
    /// Which endpoints are failing, since when.
    pub(crate) health: Health,
    stopping: CancellationToken,
    /// Finished attempts on their way to the recorder, which writes them in batches.
    records: mpsc::UnboundedSender<(DeliveryId, AttemptRecord)>,
    /// The recorder's end, taken by `run`. A `std` mutex: taken once.
    records_rx: Mutex<Option<mpsc::UnboundedReceiver<(DeliveryId, AttemptRecord)>>>,
}

/// The status with which a receiver asks never to be sent anything again (Standard
/// Webhooks): the delivery is not retried and the endpoint is disabled.
const GONE: u16 = 410;

/// Attempts written in one store call at most.
const MAX_RECORD_BATCH: usize = 1024;

#[derive(Default)]
struct Queues {
    by_endpoint: HashMap<EndpointId, EndpointQueue>,
    /// Endpoints that have queued jobs and a free slot, in turn order.
    ready: VecDeque<EndpointId>,
    in_flight: usize,
    /// Deliveries held in memory, queued or in flight, with their endpoint: a poll never
    /// takes one twice.
    held: HashMap<DeliveryId, EndpointId>,
    /// Per endpoint, its deliveries held plus the slots promised to its ingests.
    taken: HashMap<EndpointId, usize>,
    /// Slots promised to ingests whose transaction has not committed yet.
    reserved: usize,
    /// Set when ingest found no room, so the poller knows the store has leftovers.
    overflowed: bool,
    /// Endpoints whose own room ran out (at ingest or in a poll), so the store may hold
    /// due deliveries of theirs: the poller is woken when they have room again.
    overflowed_endpoints: HashSet<EndpointId>,
    /// Where the next poll's turns start: after the last endpoint the previous one served.
    lease_after: Option<EndpointId>,
}

impl Queues {
    /// Holds `id` for `endpoint`; false if it is held already.
    fn hold(&mut self, id: &DeliveryId, endpoint: &EndpointId) -> bool {
        match self.held.entry(id.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(endpoint.clone());
                self.take(endpoint);
                true
            }
        }
    }

    /// Stops holding `id`; returns its endpoint if it was held.
    fn unhold(&mut self, id: &DeliveryId) -> Option<EndpointId> {
        let endpoint = self.held.remove(id)?;
        self.untake(&endpoint);
        Some(endpoint)
    }

    fn take(&mut self, endpoint: &EndpointId) {
        // No key is cloned (allocated) for an endpoint already counted: the common case.
        match self.taken.get_mut(endpoint) {
            Some(n) => *n += 1,
            None => {
                self.taken.insert(endpoint.clone(), 1);
            }
        }
    }

    /// Gives back slots promised to ingests for `endpoints`.
    fn unreserve<'a>(&mut self, endpoints: impl IntoIterator<Item = &'a EndpointId>) {
        for endpoint in endpoints {
            self.reserved -= 1;
            self.untake(endpoint);
        }
    }

    fn untake(&mut self, endpoint: &EndpointId) {
        if let Some(n) = self.taken.get_mut(endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.taken.remove(endpoint);
            }
        }
    }

    /// Free slots of `endpoint` under a cap of `cap`.
    fn room(&self, endpoint: &EndpointId, cap: usize) -> usize {
        cap.saturating_sub(self.taken.get(endpoint).copied().unwrap_or(0))
    }

    /// After a delivery of `endpoint` stopped being held: whether the poller should look
    /// for leftovers now (memory half free, or the endpoint's own room half free).
    fn poll_wanted(&mut self, endpoint: Option<&EndpointId>, config: &DispatcherConfig) -> bool {
        let global = self.overflowed && self.held.len() < config.max_queued / 2;
        // The set is almost always empty: no hashing then, on the hot path.
        let own = !self.overflowed_endpoints.is_empty()
            && endpoint.is_some_and(|e| {
                self.room(e, config.max_queued_per_endpoint) >= config.max_queued_per_endpoint / 2
                    && self.overflowed_endpoints.remove(e)
            });
        global || own
    }
}

#[derive(Default)]
struct EndpointQueue {
    jobs: VecDeque<Job>,
    in_flight: usize,
    in_ready: bool,
}

impl Dispatcher {
    pub fn new(
        store: Arc<dyn Store>,
        transports: Transports,
        clock: Arc<dyn Clock>,
        config: DispatcherConfig,
    ) -> Self {
        let (records, records_rx) = mpsc::unbounded_channel();
        Self {
            shared: Arc::new(Shared {
                records,
                records_rx: Mutex::new(Some(records_rx)),
                store,
                clock,
                config,
                transports,
                queues: Mutex::new(Queues::default()),
                rules: CompiledRules::default(),
                throttle: Throttle::default(),
                wake: Notify::new(),
                tasks: TaskTracker::new(),
                health: Health::default(),
                stopping: CancellationToken::new(),
            }),
        }
    }

    /// Asks the poller to look for due deliveries now (after a resend or recover).
    pub fn wake(&self) {
        self.shared.wake.notify_one();
    }

    /// Polls the store for due deliveries until `shutdown`, then drains: no new attempts
    /// start, attempts in flight get `drain_timeout` to finish, and queued deliveries are
    /// released back to the store.
    ///
    /// # Panics
    /// If called twice: one worker runs per dispatcher (a bug otherwise).
    pub async fn run(&self, shutdown: CancellationToken) {
        let records = self
            .shared
            .records_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .expect("Dispatcher::run is called once");
        self.shared.load_health().await;
        let recorder_done = CancellationToken::new();
        let recorder = self
            .shared
            .clone()
            .record_loop(records, recorder_done.clone());
        let poller = async {
            self.poll_loop(shutdown).await;
            recorder_done.cancel();
        };
        tokio::join!(poller, recorder);
    }

    async fn poll_loop(&self, shutdown: CancellationToken) {
        let shared = &self.shared;
        let mut next_prune = tokio::time::Instant::now();
        loop {
            if tokio::time::Instant::now() >= next_prune {
                next_prune += PRUNE_EVERY;
                shared.prune().await;
            }
            let full_batch = match shared.poll_once().await {
                Ok(full) => full,
                Err(err) => {
                    tracing::error!(error = %err, source = ?std::error::Error::source(&err), "polling the store failed");
                    false
                }
            };
            if full_batch {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::task::yield_now() => continue,
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep(shared.config.poll_interval) => {}
            }
        }
        shared.drain().await;
    }
}

/// Idempotency keys are honoured for this long after the first call.
const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

impl Shared {
    /// Writes finished attempts in batches until `finish`, then flushes what is left.
    async fn record_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<(DeliveryId, AttemptRecord)>,
        finish: CancellationToken,
    ) {
        loop {
            let first = tokio::select! {
                biased;
                record = rx.recv() => record,
                () = finish.cancelled() => None,
            };
            let mut batch = Vec::with_capacity(64);
            if let Some(first) = first {
                batch.push(first);
            }
            while batch.len() < MAX_RECORD_BATCH {
                match rx.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            self.write_records(batch).await;
        }
    }

    async fn write_records(&self, batch: Vec<(DeliveryId, AttemptRecord)>) {
        let (ids, records): (Vec<DeliveryId>, Vec<AttemptRecord>) = batch.into_iter().unzip();
        if let Err(err) = self.store.record_attempts(records).await {
            tracing::error!(error = %err, attempts = ids.len(), "recording attempts failed; their deliveries will be retried after their leases");
        }
        let wake_poller = {
            let mut q = self.lock();
            let mut wanted = false;
            for id in &ids {
                let endpoint = q.unhold(id);
                wanted |= q.poll_wanted(endpoint.as_ref(), &self.config);
            }
            wanted
        };
        if wake_poller {
            self.wake.notify_one();
        }
    }

    /// Drops idempotency keys past their window and entity snapshots past retention.
    async fn prune(&self) {
        let now = self.clock.now();
        match self
            .store
            .prune_idempotency_keys(now - IDEMPOTENCY_WINDOW)
            .await
        {
            Ok(n) => tracing::debug!(pruned = n, "idempotency keys pruned"),
            Err(err) => tracing::warn!(error = %err, "pruning idempotency keys failed"),
        }
        let retention = chrono::Duration::from_std(self.config.entity_retention)
            .unwrap_or(chrono::Duration::MAX);
        match self
            .store
            .prune_entities(
                now.checked_sub_signed(retention)
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC),
            )
            .await
        {
            Ok(n) => tracing::debug!(pruned = n, "entity snapshots past retention dropped"),
            Err(err) => tracing::warn!(error = %err, "pruning entity snapshots failed"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        // A poisoned lock means a panic inside a few map operations: a bug. Keep going
        // with the state as it is rather than stopping every delivery.
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Leases due deliveries that fit in memory. Returns whether the batch was full
    /// (more may be due right away).
    async fn poll_once(self: &Arc<Self>) -> store::Result<bool> {
        let cap = self.config.max_queued_per_endpoint;
        let (room, rooms, after) = {
            let mut q = self.lock();
            q.overflowed = false;
            let room = self
                .config
                .max_queued
                .saturating_sub(q.held.len() + q.reserved);
            let rooms: HashMap<EndpointId, usize> = q
                .taken
                .iter()
                .map(|(e, n)| (e.clone(), cap.saturating_sub(*n)))
                .collect();
            (room, rooms, q.lease_after.clone())
        };
        let limit = room.min(self.config.poll_batch);
        if limit == 0 {
            return Ok(false);
        }
        let now = self.clock.now();
        let lease_end = now + chrono::Duration::from_std(self.config.lease).unwrap_or_default();
        let store::Leased { due, resume_after } = self
            .store
            .lease_due(LeaseRequest {
                now,
                leased_until: lease_end,
                limit,
                per_endpoint: cap,
                room: rooms.clone(),
                after,
            })
            .await?;
        let full = due.len() == limit;
        {
            // Endpoints that got all the room they had may have more due in the store.
            let mut leased: HashMap<&EndpointId, usize> = HashMap::new();
            for d in &due {
                *leased.entry(&d.delivery.endpoint_id).or_default() += 1;
            }
            let mut q = self.lock();
            for (endpoint, n) in leased {
                if n >= rooms.get(endpoint).copied().unwrap_or(cap) {
                    q.overflowed_endpoints.insert(endpoint.clone());
                }
            }
            q.lease_after = resume_after;
        }
        let mut messages: HashMap<String, Arc<Message>> = HashMap::new();
        let jobs = due.into_iter().map(|DueDelivery { delivery, message }| {
            let message = messages
                .entry(message.id.as_str().to_owned())
                .or_insert_with(|| Arc::new(message))
                .clone();
            Job {
                delivery_id: delivery.id,
                endpoint_id: delivery.endpoint_id,
                message,
                attempts: delivery.attempts,
                trigger: delivery.trigger,
            }
        });
        self.enqueue(jobs, std::iter::empty());
        Ok(full)
    }

    /// Reserves an in-memory slot, for an ingest, for each of `endpoints` that has room
    /// (in all, and of its own); returns which did. The deliveries of the others stay due
    /// in the store for the poller.
    pub(crate) fn reserve<'a>(
        &self,
        endpoints: impl IntoIterator<Item = &'a EndpointId>,
    ) -> Vec<bool> {
        let mut q = self.lock();
        let stopping = self.stopping.is_cancelled();
        let cap = self.config.max_queued_per_endpoint;
        endpoints
            .into_iter()
            .map(|endpoint| {
                if stopping || q.held.len() + q.reserved >= self.config.max_queued {
                    q.overflowed = true;
                    return false;
                }
                if q.room(endpoint, cap) == 0 {
                    q.overflowed_endpoints.insert(endpoint.clone());
                    return false;
                }
                q.reserved += 1;
                q.take(endpoint);
                true
            })
            .collect()
    }

    /// Slots promised to ingests, and deliveries held plus promised, counted by endpoint.
    #[cfg(test)]
    pub(crate) fn promised(&self) -> (usize, usize) {
        let q = self.lock();
        (q.reserved, q.taken.values().sum())
    }

    /// Gives back the slots `reserve` promised to `endpoints`.
    pub(crate) fn unreserve<'a>(&self, endpoints: impl IntoIterator<Item = &'a EndpointId>) {
        self.lock().unreserve(endpoints);
    }

    /// Queues jobs (skipping deliveries already held) and starts what capacity allows.
    /// The slots `reserve` promised to `reserved` are taken back (the jobs now hold them).
    pub(crate) fn enqueue<'a>(
        self: &Arc<Self>,
        jobs: impl IntoIterator<Item = Job>,
        reserved: impl IntoIterator<Item = &'a EndpointId>,
    ) {
        let per_endpoint = self.config.max_in_flight_per_endpoint;
        {
            let mut q = self.lock();
            q.unreserve(reserved);
            for job in jobs {
                if !q.hold(&job.delivery_id, &job.endpoint_id) {
                    continue;
                }
                let endpoint = job.endpoint_id.clone();
                let queue = q.by_endpoint.entry(endpoint.clone()).or_default();
                queue.jobs.push_back(job);
                if !queue.in_ready && queue.in_flight < per_endpoint {
                    queue.in_ready = true;
                    q.ready.push_back(endpoint);
                }
            }
        }
        self.pump();
    }

    /// Starts attempts while there are ready endpoints and free slots.
    fn pump(self: &Arc<Self>) {
        if self.stopping.is_cancelled() {
            return;
        }
        let per_endpoint = self.config.max_in_flight_per_endpoint;
        let mut starting = Vec::new();
        {
            let mut q = self.lock();
            while q.in_flight < self.config.max_in_flight {
                let Some(endpoint) = q.ready.pop_front() else {
                    break;
                };
                let Some(queue) = q.by_endpoint.get_mut(&endpoint) else {
                    continue;
                };
                queue.in_ready = false;
                let Some(job) = queue.jobs.pop_front() else {
                    continue;
                };
                queue.in_flight += 1;
                let again = !queue.jobs.is_empty() && queue.in_flight < per_endpoint;
                if again {
                    queue.in_ready = true;
                }
                q.in_flight += 1;
                if again {
                    q.ready.push_back(endpoint);
                }
                starting.push(job);
            }
        }
        for job in starting {
            let shared = self.clone();
            self.tasks.spawn(async move { shared.run_job(job).await });
        }
    }

    /// Attempts one delivery and records the result, then frees its slot.
    async fn run_job(self: Arc<Self>, job: Job) {
        let endpoints = match self.store.app_endpoints(&job.message.app_id).await {
            Ok(endpoints) => endpoints,
            Err(err) => {
                // The delivery stays leased and is retried after its lease.
                tracing::error!(error = %err, delivery_id = %job.delivery_id, "loading the endpoint failed");
                self.free_slot(&job);
                self.forget(&job);
                return;
            }
        };
        let Some(endpoint) = endpoints.iter().find(|e| e.id == job.endpoint_id) else {
            // The endpoint was deleted, and its deliveries with it.
            self.free_slot(&job);
            self.forget(&job);
            return;
        };
        if let Some(rate) = endpoint.rate_limit {
            self.throttle.wait_turn(&endpoint.id, rate).await;
        }
        let rules = self.rules.get(endpoint);
        let mut outcome = if endpoint.disabled {
            refused("endpoint is disabled".to_owned())
        } else if rules.invalid {
            refused("the endpoint's filter or transform is invalid".to_owned())
        } else {
            let body = rules.body(&job.message);
            let payload = body.as_deref().unwrap_or(&job.message.payload);
            attempt(
                &self.transports,
                endpoint,
                &job.message,
                payload,
                self.clock.now(),
            )
            .await
        };
        let now = self.clock.now();
        let gone = outcome.status_code == Some(GONE);
        if gone {
            // Disabled before the slot is freed, so the endpoint's next queued delivery
            // is refused rather than sent to a receiver that asked for nothing more.
            outcome.permanent = true;
            let since = self.health.failing_since(&endpoint.id).unwrap_or(now);
            self.disable(endpoint, since, "gone").await;
        }
        // The endpoint's slot limits concurrent requests to the receiver, so it is free
        // once the exchange is over; the delivery stays held until it is recorded.
        self.free_slot(&job);
        // The receiver's health: not when Herald refused to send (a disabled endpoint, a
        // refused destination), which says nothing about the receiver.
        if !gone && !endpoint.disabled && outcome.error != Some(ErrorKind::Refused) {
            self.note_health(endpoint, outcome.delivered(), now).await;
        }
        let step = next_step(
            &self.config.retry,
            job.attempts + 1,
            &outcome,
            now,
            rand::random(),
        );
        let url = model::destination::masked_url(&endpoint.url);
        let record = attempt_record(&job, &url, &outcome, &step, now);
        if step == NextStep::Failed && !endpoint.disabled {
            self.attempts_exhausted(endpoint, &job.message, &record.attempt);
        }
        if self
            .records
            .send((job.delivery_id.clone(), record))
            .is_err()
        {
            // The recorder has stopped (shutdown): the delivery stays leased and is
            // attempted again after its lease or the next start.
            self.forget(&job);
        }
    }

    /// Frees the job's concurrency slots and starts what they allow.
    fn free_slot(self: &Arc<Self>, job: &Job) {
        let per_endpoint = self.config.max_in_flight_per_endpoint;
        {
            let mut q = self.lock();
            q.in_flight -= 1;
            let mut ready = false;
            let mut remove = false;
            if let Some(queue) = q.by_endpoint.get_mut(&job.endpoint_id) {
                queue.in_flight -= 1;
                if !queue.jobs.is_empty() && !queue.in_ready && queue.in_flight < per_endpoint {
                    queue.in_ready = true;
                    ready = true;
                }
                remove = queue.jobs.is_empty() && queue.in_flight == 0;
            }
            if ready {
                q.ready.push_back(job.endpoint_id.clone());
            }
            if remove {
                q.by_endpoint.remove(&job.endpoint_id);
            }
        }
        self.pump();
    }

    /// Stops holding a delivery whose attempt is recorded (or abandoned to its lease).
    fn forget(&self, job: &Job) {
        let wake_poller = {
            let mut q = self.lock();
            let endpoint = q.unhold(&job.delivery_id);
            q.poll_wanted(endpoint.as_ref(), &self.config)
        };
        if wake_poller {
            self.wake.notify_one();
        }
    }

    async fn drain(&self) {
        self.stopping.cancel();
        self.tasks.close();
        let drained = tokio::time::timeout(self.config.drain_timeout, self.tasks.wait()).await;
        if drained.is_err() {
            tracing::warn!(
                "attempts still in flight after the drain timeout; they will be retried after restart"
            );
        }
        let queued: Vec<(MessageId, EndpointId)> = {
            let q = self.lock();
            q.by_endpoint
                .values()
                .flat_map(|queue| {
                    queue
                        .jobs
                        .iter()
                        .map(|j| (j.message.id.clone(), j.endpoint_id.clone()))
                })
                .collect()
        };
        if !queued.is_empty()
            && let Err(err) = self.store.release(&queued, self.clock.now()).await
        {
            tracing::warn!(error = %err, "releasing queued deliveries failed; they stay leased until their lease ends");
        }
        tracing::info!(released = queued.len(), "delivery worker stopped");
    }
}
