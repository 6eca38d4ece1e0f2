//! Record: the attempt row and the delivery's new state, what happened in the log, and
//! the recorder, which writes finished attempts in batches under the leases they were made
//! with (a record whose lease another one replaced is refused by the store, counted and
//! logged, never applied).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{Attempt, AttemptId, Outcome, Status};
use store::{AttemptRecord, DeliveryUpdate, batching};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::dispatcher::Shared;
use crate::queues::Job;
use crate::schedule::NextStep;
use crate::worker::Recorded;

/// Attempts written in one store call at most.
const MAX_RECORD_BATCH: usize = 1024;

/// The batch the recorder waits for while attempts keep finishing (at most the configured
/// linger): records are not what a publisher or a receiver waits for, so the recorder
/// waits for more than the publishes' group does.
const TARGET_RECORD_BATCH: usize = 128;

impl Shared {
    /// Writes finished attempts in batches until `finish`, then flushes what is left.
    pub(crate) async fn record_loop(
        self: Arc<Self>,
        mut rx: mpsc::UnboundedReceiver<Recorded>,
        finish: CancellationToken,
    ) {
        let mut arrivals = batching::Arrivals::new(std::time::Instant::now());
        let mut previous = 0;
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
            // A store that pays a commit per call gets larger batches: a short wait for
            // more records while the rate of finished attempts says they are coming and
            // the last batch held more than one (never at shutdown).
            let now = std::time::Instant::now();
            arrivals.add(batch.len(), now);
            let target = if previous > 1 { TARGET_RECORD_BATCH } else { 1 };
            let linger = batching::linger(
                batch.len(),
                target,
                arrivals.per_second(now),
                self.config.record_linger,
            );
            if !batch.is_empty() && !linger.is_zero() {
                let until = tokio::time::Instant::now() + linger;
                while batch.len() < target {
                    tokio::select! {
                        biased;
                        () = finish.cancelled() => break,
                        record = tokio::time::timeout_at(until, rx.recv()) => match record {
                            Ok(Some(record)) => {
                                batch.push(record);
                                arrivals.add(1, std::time::Instant::now());
                            }
                            _ => break,
                        },
                    }
                }
            }
            if batch.is_empty() {
                break;
            }
            previous = batch.len();
            self.write_records(batch).await;
        }
    }

    async fn write_records(self: &Arc<Self>, batch: Vec<Recorded>) {
        let ids: Vec<_> = batch
            .iter()
            .map(|r| {
                let a = &r.record.attempt;
                let lease = store::LeasedDelivery {
                    msg_id: a.msg_id.clone(),
                    endpoint_id: a.endpoint_id.clone(),
                    generation: r.record.generation,
                };
                (a.delivery_id.clone(), lease)
            })
            .collect();
        let (records, exhausted): (Vec<AttemptRecord>, Vec<Option<Arc<model::Message>>>) =
            batch.into_iter().map(|r| (r.record, r.exhausted)).unzip();
        // What the operator is told needs the attempts after the write.
        let announce: Vec<_> = exhausted
            .into_iter()
            .zip(&records)
            .enumerate()
            .filter_map(|(i, (message, r))| message.map(|m| (i, m, r.attempt.clone())))
            .collect();
        match self.store.record_attempts(self.config.node, records).await {
            Ok(stale) => {
                self.refused_as_stale("recording", stale.iter().map(|i| (&ids[*i].0, &ids[*i].1)));
                for (i, message, attempt) in announce {
                    if !stale.contains(&i) {
                        self.attempts_exhausted(&attempt.endpoint_id, &message, &attempt);
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, attempts = ids.len(), "recording attempts failed; their deliveries will be retried after their leases")
            }
        }
        let wake_poller = {
            let mut q = self.lock();
            let mut wanted = false;
            for (id, _) in &ids {
                wanted |= q.forget(id);
            }
            wanted
        };
        if wake_poller {
            self.wake.notify_one();
        }
    }
}

/// Response bodies are kept up to this many bytes in attempt records.
pub(crate) const MAX_RECORDED_RESPONSE: usize = 20 * 1024;

/// The attempt row and the delivery's next state for a finished attempt. The worker's
/// recorder writes these in batches (`Store::record_attempts`).
pub(crate) fn attempt_record(
    job: &Job,
    url: &str,
    outcome: &Outcome,
    step: &NextStep,
    now: DateTime<Utc>,
) -> AttemptRecord {
    let attempts = job.attempts + 1;
    let update = match step {
        NextStep::Delivered => DeliveryUpdate {
            status: Status::Success,
            attempts,
            next_attempt_at: None,
        },
        NextStep::RetryAt(at) => DeliveryUpdate {
            status: Status::Pending,
            attempts,
            next_attempt_at: Some(*at),
        },
        NextStep::Failed => DeliveryUpdate {
            status: Status::Fail,
            attempts,
            next_attempt_at: None,
        },
    };
    let attempt = Attempt {
        id: AttemptId::generate(),
        delivery_id: job.delivery_id.clone(),
        msg_id: job.message.id.clone(),
        app_id: job.message.app_id.clone(),
        endpoint_id: job.endpoint_id.clone(),
        url: url.to_owned(),
        status: if outcome.delivered() {
            Status::Success
        } else {
            Status::Fail
        },
        response_status_code: outcome.status_code.map(i32::from).unwrap_or(0),
        response: truncate(&outcome.body, MAX_RECORDED_RESPONSE).to_owned(),
        response_duration_ms: i64::try_from(outcome.duration.as_millis()).unwrap_or(i64::MAX),
        error: outcome.error,
        trigger: job.trigger,
        created_at: now,
    };
    log_outcome(job, outcome, step);
    AttemptRecord {
        attempt,
        update,
        generation: job.generation,
    }
}

/// Per-delivery events are TRACE: at a million events a receiver outage would otherwise
/// flood the log. Operators see failures through the API (attempts, stats).
fn log_outcome(job: &Job, outcome: &Outcome, step: &NextStep) {
    let (msg, ep) = (job.message.id.as_str(), job.endpoint_id.as_str());
    let error = outcome.error.map(|e| e.as_str()).unwrap_or("");
    let status = outcome.status_code.unwrap_or(0);
    match step {
        NextStep::Delivered => tracing::trace!(msg_id = msg, endpoint_id = ep, status, "delivered"),
        NextStep::RetryAt(at) => tracing::trace!(
            msg_id = msg, endpoint_id = ep, status, error, retry_at = %at,
            "attempt failed, retry scheduled"
        ),
        NextStep::Failed => tracing::trace!(
            msg_id = msg,
            endpoint_id = ep,
            status,
            error,
            attempts = job.attempts + 1,
            "message.attempt.exhausted: delivery failed, no retries left"
        ),
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
