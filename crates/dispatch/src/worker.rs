//! The worker: sequences the stages. It polls the store for due deliveries, starts
//! attempts as the bookkeeping (`queues.rs`) allows, runs each attempt (throttle, lease
//! check, sign and send, schedule, health), hands the result to the recorder
//! (`record.rs`), renews the leases of what waits (`leases.rs`), and drains on shutdown.
//!
//! Deliveries reach the worker two ways: straight from ingest (already leased to this node
//! in the store, no poll needed) and from `lease_due` polls (retries, recover, resend,
//! leases that ran out on any node, and anything left over by a restart).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use model::{Endpoint, ErrorKind, Message};
use store::{DueDelivery, LeaseRequest};
use tokio_util::sync::CancellationToken;

use crate::attempt::{attempt, refused};
use crate::dispatcher::{Dispatcher, Shared, lease_end, renew_every};
use crate::health::{self, Step};
use crate::queues::{Job, Pushed};
use crate::record::attempt_record;
use crate::retention::idempotency_window;
use crate::schedule::{NextStep, next_step};

/// The status with which a receiver asks never to be sent anything again (Standard
/// Webhooks): the delivery is not retried and the endpoint is disabled.
const GONE: u16 = 410;

const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// A finished attempt on its way to the recorder, and the message to announce as
/// `message.attempt.exhausted` once the record is applied, if it ran out of retries.
pub(crate) struct Recorded {
    pub(crate) record: store::AttemptRecord,
    pub(crate) exhausted: Option<Arc<Message>>,
}

/// A started attempt's hold on the node's bookkeeping: its endpoint's slot until the
/// exchange is over, its delivery until the recorder has it. Whatever it still holds is
/// given back when it drops, however the attempt ended (a panic included); a delivery
/// given back this way keeps its lease, and is attempted again when the lease ends.
pub(crate) struct Attempting {
    shared: Arc<Shared>,
    delivery_id: model::DeliveryId,
    endpoint_id: model::EndpointId,
    slot: bool,
    held: bool,
}

impl Attempting {
    async fn run(mut self, job: Job) {
        let shared = self.shared.clone();
        shared.run_job(job, &mut self).await;
    }

    /// Frees the endpoint's concurrency slot and starts what it allows.
    fn free_slot(&mut self) {
        if std::mem::take(&mut self.slot) {
            self.shared.lock().finished(&self.endpoint_id);
            self.shared.pump();
        }
    }
}

impl Drop for Attempting {
    fn drop(&mut self) {
        self.free_slot();
        if self.held {
            self.shared.forget(&self.delivery_id);
        }
    }
}

impl Dispatcher {
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
        let renewer = self.shared.renew_loop(shutdown.clone());
        let retention = self.shared.clone().retention_loop(shutdown.clone());
        let poller = async {
            self.poll_loop(shutdown).await;
            recorder_done.cancel();
        };
        tokio::join!(poller, recorder, renewer, retention);
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
                () = shared.store.woken() => {}
                () = tokio::time::sleep(shared.config.poll_interval) => {}
            }
        }
        shared.drain().await;
    }
}

impl Shared {
    /// Loads the failing endpoints recorded by any node before this one started.
    async fn load_health(&self) {
        match self.store.failing_endpoints().await {
            Ok(rows) => self.health.extend(rows),
            Err(err) => {
                tracing::warn!(error = %err, "loading endpoint health failed; failure streaks are learnt again from the store")
            }
        }
    }

    /// Renews the leases of queued deliveries every quarter of a lease until `shutdown`.
    async fn renew_loop(&self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(renew_every(&self.config)) => self.renew_queued().await,
            }
        }
    }

    /// Drops idempotency keys past their window and entity snapshots past retention.
    async fn prune(&self) {
        let now = self.clock.now();
        match self
            .store
            .prune_idempotency_keys(now - idempotency_window(self.config.retention))
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

    /// Leases due deliveries that fit in memory. Returns whether the batch was full
    /// (more may be due right away).
    async fn poll_once(self: &Arc<Self>) -> store::Result<bool> {
        let Some(asked) = self.lock().poll_room() else {
            return Ok(false);
        };
        let limit = asked.room.min(self.config.poll_batch);
        let now = self.clock.now();
        let lease_until = lease_end(&self.config, now);
        let store::Leased { due, resume_after } = self
            .store
            .lease_due(LeaseRequest {
                owner: self.config.node,
                now,
                leased_until: lease_until,
                limit,
                per_endpoint: self.config.max_queued_per_endpoint,
                room: asked.rooms.clone(),
                after: asked.after.clone(),
            })
            .await?;
        let full = due.len() == limit;
        {
            let mut leased: HashMap<&model::EndpointId, usize> = HashMap::new();
            for d in &due {
                *leased.entry(&d.delivery.endpoint_id).or_default() += 1;
            }
            self.lock().polled(&asked, leased, resume_after);
        }
        let mut messages: HashMap<String, Arc<Message>> = HashMap::new();
        let jobs = due.into_iter().map(
            |DueDelivery {
                 delivery,
                 message,
                 generation,
             }| {
                let message = messages
                    .entry(message.id.as_str().to_owned())
                    .or_insert_with(|| Arc::new(message))
                    .clone();
                Job {
                    due: delivery.next_attempt_at.unwrap_or(now),
                    delivery_id: delivery.id,
                    endpoint_id: delivery.endpoint_id,
                    message,
                    attempts: delivery.attempts,
                    trigger: delivery.trigger,
                    generation,
                    lease_until,
                }
            },
        );
        self.enqueue(jobs, std::iter::empty());
        Ok(full)
    }

    /// Reserves an in-memory slot, for an ingest, for each of `endpoints` that has room
    /// (in all, and of its own); returns which did. The deliveries of the others stay due
    /// in the store for the poller.
    pub(crate) fn reserve<'a>(
        &self,
        endpoints: impl IntoIterator<Item = &'a model::EndpointId>,
    ) -> Vec<bool> {
        let mut q = self.lock();
        endpoints.into_iter().map(|e| q.reserve(e)).collect()
    }

    /// Gives back the slots `reserve` promised to `endpoints`.
    pub(crate) fn unreserve<'a>(&self, endpoints: impl IntoIterator<Item = &'a model::EndpointId>) {
        self.lock().unreserve(endpoints);
    }

    /// Queues jobs (skipping deliveries already held) and starts what capacity allows.
    /// The slots `reserve` promised to `reserved` are taken back (the jobs now hold them).
    pub(crate) fn enqueue<'a>(
        self: &Arc<Self>,
        jobs: impl IntoIterator<Item = Job>,
        reserved: impl IntoIterator<Item = &'a model::EndpointId>,
    ) {
        {
            let mut q = self.lock();
            q.unreserve(reserved);
            for job in jobs {
                let _: Pushed = q.push(job);
            }
        }
        self.pump();
    }

    /// Starts attempts while there are ready endpoints and free slots.
    fn pump(self: &Arc<Self>) {
        let starting: Vec<Job> = {
            let mut q = self.lock();
            std::iter::from_fn(|| q.start_next()).collect()
        };
        for job in starting {
            let attempting = Attempting {
                shared: self.clone(),
                delivery_id: job.delivery_id.clone(),
                endpoint_id: job.endpoint_id.clone(),
                slot: true,
                held: true,
            };
            self.tasks.spawn(async move { attempting.run(job).await });
        }
    }

    /// Attempts one delivery and hands the result to the recorder; `attempting` frees the
    /// slot and lets go of the delivery as it goes (and if anything panics).
    async fn run_job(self: &Arc<Self>, mut job: Job, attempting: &mut Attempting) {
        let endpoints = match self.store.app_endpoints(&job.message.app_id).await {
            Ok(endpoints) => endpoints,
            Err(err) => {
                // The delivery stays leased and is retried after its lease.
                tracing::error!(error = %err, msg_id = %job.message.id, endpoint_id = %job.endpoint_id, delivery_id = %job.delivery_id, "loading the endpoint failed");
                return;
            }
        };
        let cached = endpoints.iter().find(|e| e.id == job.endpoint_id).cloned();
        // An endpoint created on another node may not be in this node's cache yet.
        let endpoint = match cached {
            Some(endpoint) => endpoint,
            None => match self
                .store
                .get_endpoint(&job.message.app_id, job.endpoint_id.as_str())
                .await
            {
                Ok(Some(endpoint)) => endpoint,
                // The endpoint was deleted, and its deliveries with it.
                Ok(None) => return,
                Err(err) => {
                    tracing::error!(error = %err, msg_id = %job.message.id, endpoint_id = %job.endpoint_id, delivery_id = %job.delivery_id, "loading the endpoint failed");
                    return;
                }
            },
        };
        let endpoint = &endpoint;
        if let Some(rate) = endpoint.rate_limit {
            self.wait_turn(&endpoint.id, rate).await;
        }
        // Only with at least half a lease left, which outlasts the attempt: no other node
        // can take the delivery over while it is being attempted here.
        if !self.confirm_lease(&mut job).await {
            return;
        }
        let rules = self.rules.get(endpoint);
        // As shown in the attempt's record and span: any password masked.
        let url = model::destination::masked_url(&endpoint.url);
        let mut outcome = if endpoint.disabled {
            refused("endpoint is disabled".to_owned())
        } else if rules.invalid {
            refused("the endpoint's filter or transform is invalid".to_owned())
        } else {
            let body = rules.body(&job.message);
            let payload = body.as_deref().unwrap_or(&job.message.payload);
            let traced = self
                .traces
                .attempt(&job.message, endpoint, &url, job.attempts + 1);
            let outcome = attempt(
                &self.transports,
                endpoint,
                &job.message,
                payload,
                self.clock.now(),
                traced.traceparent.as_deref(),
            )
            .await;
            traced.attempted(&outcome);
            outcome
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
        attempting.free_slot();
        let step = next_step(
            &self.config.retry,
            job.attempts + 1,
            &outcome,
            now,
            rand::random(),
        );
        let since_publish = (now - job.message.created_at).to_std().unwrap_or_default();
        self.meters
            .attempted(&outcome, &step, job.trigger, since_publish);
        let record = attempt_record(&job, &url, &outcome, &step, now);
        tracing::debug!(
            msg_id = %job.message.id,
            endpoint_id = %endpoint.id,
            attempt_id = %record.attempt.id,
            delivery_id = %job.delivery_id,
            status = outcome.status_code,
            error_kind = outcome.error.map(|e| e.as_str()),
            ms = outcome.duration.as_millis() as u64,
            "attempt"
        );
        // Announced once the record is applied (a stale one is not).
        let exhausted =
            (step == NextStep::Failed && !endpoint.disabled).then(|| job.message.clone());
        // Recorded before the health checks' store calls, well within the lease, and so
        // that a success is seen by the other nodes' streak checks as soon as possible.
        if self.records.send(Recorded { record, exhausted }).is_ok() {
            // The recorder lets go of the delivery once it is written.
            attempting.held = false;
        }
        // The receiver's health: not when Herald refused to send (a disabled endpoint, a
        // refused destination), which says nothing about the receiver.
        if !gone && !endpoint.disabled && outcome.error != Some(ErrorKind::Refused) {
            self.note_health(endpoint, outcome.delivered(), now).await;
        }
    }

    /// Acts on what an attempt means for its endpoint's failure streak (`health.rs`).
    async fn note_health(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        delivered: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) {
        let window = self.config.auto_disable_after;
        match health::after_attempt(delivered, self.health.failing_since(&endpoint.id)) {
            Step::Nothing => return,
            Step::EndStreak => {
                self.health.remove(&endpoint.id);
                if let Err(err) = self.store.clear_failing(&endpoint.id).await {
                    tracing::warn!(error = %err, endpoint_id = %endpoint.id, "clearing an endpoint's failure streak failed");
                }
                return;
            }
            Step::JoinStreak => {}
            Step::Continue(since) if !health::lasted(since, now, window) => return,
            Step::Continue(_) => {}
        }
        // The store's streak: joined (or started) here, whichever node began it.
        let since = match self
            .store
            .mark_failing(&endpoint.app_id, &endpoint.id, now)
            .await
        {
            Ok(since) => since,
            Err(err) => {
                tracing::warn!(error = %err, endpoint_id = %endpoint.id, "recording an endpoint's failure streak failed");
                return;
            }
        };
        self.health.set(&endpoint.id, since);
        if !health::lasted(since, now, window) {
            return;
        }
        // A success on another node may have ended the streak since it began.
        let start = match self.streak_start(endpoint, since, now).await {
            Ok(start) => start,
            Err(err) => {
                tracing::warn!(error = %err, endpoint_id = %endpoint.id, "checking an endpoint's streak failed; a later failure checks again");
                return;
            }
        };
        if start != since {
            self.health.set(&endpoint.id, start);
            let restarted = match self.store.clear_failing(&endpoint.id).await {
                Ok(()) => self
                    .store
                    .mark_failing(&endpoint.app_id, &endpoint.id, start)
                    .await
                    .map(|_| ()),
                Err(err) => Err(err),
            };
            if let Err(err) = restarted {
                tracing::warn!(error = %err, endpoint_id = %endpoint.id, "restarting an endpoint's failure streak failed");
            }
        }
        if health::lasted(start, now, window) {
            self.disable(endpoint, start, "failing").await;
        }
    }

    /// Where the streak recorded as starting at `since` really starts, by the attempts
    /// every node recorded.
    async fn streak_start(
        &self,
        endpoint: &Endpoint,
        since: chrono::DateTime<chrono::Utc>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> store::Result<chrono::DateTime<chrono::Utc>> {
        let success = self.store.success_since(&endpoint.id, since).await?;
        let failure = match success {
            Some(at) => self.store.failure_after(&endpoint.id, at).await?,
            None => None,
        };
        Ok(health::streak_start(since, success, failure, now))
    }

    async fn drain(&self) {
        let queued = self.lock().stop();
        self.tasks.close();
        let drained = tokio::time::timeout(self.config.drain_timeout, self.tasks.wait()).await;
        if drained.is_err() {
            tracing::warn!(
                "attempts still in flight after the drain timeout; they will be retried after their leases"
            );
        }
        // Ingests that reserved memory before the stop and committed after it queued
        // their deliveries meanwhile: those are released too.
        let mut queued = queued;
        queued.extend(self.lock().stop());
        let leases: Vec<_> = queued.iter().map(Job::lease).collect();
        if !leases.is_empty() {
            match self
                .store
                .release(self.config.node, &leases, self.clock.now())
                .await
            {
                Ok(stale) => self.refused_as_stale(
                    "releasing",
                    stale.iter().map(|i| (&queued[*i].delivery_id, &leases[*i])),
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "releasing queued deliveries failed; they stay leased until their lease ends")
                }
            }
        }
        tracing::info!(released = leases.len(), "delivery worker stopped");
    }
}
