//! Retention: messages older than `DispatcherConfig::retention` are removed in the
//! background, with their deliveries and attempts, one application and one bounded batch
//! at a time (`Store::purge_messages` says what is kept: whatever a pending delivery
//! still needs); payloads whose publisher asked for a shorter retention of their own are
//! expunged at their time (`Store::expire_payloads`), retention or not. Between batches the remover rests as long as the batch took, so it
//! never has more than half of the store's writes: publishes are never held back for
//! long, and a backlog of old messages is still removed far faster than messages come.

use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{Counter, Histogram, counter, histogram};
use store::{Order, Page, PurgeRequest, Purged};
use tokio_util::sync::CancellationToken;

use crate::dispatcher::Shared;

/// Messages looked at per batch, at most.
const BATCH_MESSAGES: usize = 500;
/// Deliveries and attempts removed per batch, about: a few milliseconds of the embedded
/// store's writer.
const BATCH_ROWS: usize = 2_000;
/// Applications listed per page.
const APPS_PAGE: usize = 100;

/// Idempotency keys are honoured for this long after the first call.
const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// How long an idempotency key is kept: a day, or the retention when that is shorter
/// (a key outliving its message would be free again anyway: `Store::insert_message`).
pub(crate) fn idempotency_window(retention: Option<Duration>) -> chrono::Duration {
    retention
        .and_then(|r| chrono::Duration::from_std(r).ok())
        .map_or(IDEMPOTENCY_WINDOW, |r| r.min(IDEMPOTENCY_WINDOW))
}

/// How often a pass starts: a tenth of the retention, so nothing outlives it by more
/// than a tenth, between a second (short retentions, as in tests) and five minutes (also
/// without a retention, for the payloads that expire, whose retention is counted in days).
pub(crate) fn pass_every(retention: Option<Duration>) -> Duration {
    let most = Duration::from_secs(300);
    retention.map_or(most, |r| (r / 10).clamp(Duration::from_secs(1), most))
}

/// How long to rest after a batch that took `took`: as long again, so the remover has
/// at most half the store's writes, and at least a millisecond.
pub(crate) fn rest_after(took: Duration) -> Duration {
    took.max(Duration::from_millis(1))
}

struct Meters {
    messages: Counter,
    deliveries: Counter,
    attempts: Counter,
    payloads: Counter,
    pass: Histogram,
}

impl Meters {
    fn new() -> Self {
        let removed = "herald_retention_removed_total";
        let meters = Self {
            messages: counter!(removed, "what" => "messages"),
            deliveries: counter!(removed, "what" => "deliveries"),
            attempts: counter!(removed, "what" => "attempts"),
            payloads: counter!(removed, "what" => "payloads"),
            pass: histogram!("herald_retention_pass_seconds"),
        };
        // Shown from the start (at 0), so dashboards find them before the first removal.
        for counter in [
            &meters.messages,
            &meters.deliveries,
            &meters.attempts,
            &meters.payloads,
        ] {
            counter.absolute(0);
        }
        meters
    }

    fn add(&self, batch: &Purged) {
        self.messages.increment(batch.messages);
        self.deliveries.increment(batch.deliveries);
        self.attempts.increment(batch.attempts);
    }
}

impl Shared {
    /// Runs retention passes until `shutdown`.
    pub(crate) async fn retention_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let retention = self.config.retention;
        let meters = Meters::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pass_every(retention)) => {}
            }
            let started = Instant::now();
            match self.expire_payloads(&meters, &shutdown).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    payloads = n,
                    "expunged payloads past their publisher's retention"
                ),
                Err(err) => {
                    tracing::warn!(error = %err, "expunging expired payloads failed; the next pass goes on")
                }
            }
            let Some(retention) = retention else {
                continue;
            };
            match self.retention_pass(retention, &meters, &shutdown).await {
                Ok(total) if total.messages > 0 => tracing::info!(
                    messages = total.messages,
                    deliveries = total.deliveries,
                    attempts = total.attempts,
                    kept = total.kept,
                    seconds = started.elapsed().as_secs_f64(),
                    "removed messages past retention"
                ),
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "removing messages past retention failed; the next pass goes on")
                }
            }
            meters.pass.record(started.elapsed().as_secs_f64());
        }
    }

    /// Expunges the payloads whose publisher's retention ended, in bounded batches.
    async fn expire_payloads(
        &self,
        meters: &Meters,
        shutdown: &CancellationToken,
    ) -> store::Result<u64> {
        let mut total = 0;
        while !shutdown.is_cancelled() {
            let took = Instant::now();
            let n = self
                .store
                .expire_payloads(self.clock.now(), BATCH_MESSAGES)
                .await?;
            meters.payloads.increment(n);
            total += n;
            if n < BATCH_MESSAGES as u64 {
                break;
            }
            tokio::time::sleep(rest_after(took.elapsed())).await;
        }
        Ok(total)
    }

    /// One pass over every application. Returns what it removed in all.
    async fn retention_pass(
        &self,
        retention: Duration,
        meters: &Meters,
        shutdown: &CancellationToken,
    ) -> store::Result<Purged> {
        let before = self.clock.now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut total = Purged::default();
        let mut page = Page {
            limit: APPS_PAGE,
            cursor: None,
            order: Order::Ascending,
        };
        loop {
            let apps = self.store.list_apps(None, &page).await?;
            for app in apps.iter().take(APPS_PAGE) {
                let mut after = None;
                loop {
                    if shutdown.is_cancelled() {
                        return Ok(total);
                    }
                    let took = Instant::now();
                    let batch = self
                        .store
                        .purge_messages(PurgeRequest {
                            app: app.id.clone(),
                            before,
                            after,
                            max_messages: BATCH_MESSAGES,
                            max_rows: BATCH_ROWS,
                        })
                        .await?;
                    meters.add(&batch);
                    total.messages += batch.messages;
                    total.deliveries += batch.deliveries;
                    total.attempts += batch.attempts;
                    total.kept += batch.kept;
                    if batch.busy {
                        // Another node is purging: the round is its.
                        return Ok(total);
                    }
                    if batch.messages > 0 {
                        tokio::time::sleep(rest_after(took.elapsed())).await;
                    }
                    match batch.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
            if apps.len() <= APPS_PAGE {
                return Ok(total);
            }
            page.cursor = apps.get(APPS_PAGE - 1).map(|a| a.id.as_str().to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_come_a_tenth_of_the_retention_apart_within_bounds() {
        for (retention, every) in [
            (Some(Duration::from_secs(5)), Duration::from_secs(1)),
            (Some(Duration::from_secs(60)), Duration::from_secs(6)),
            (Some(Duration::from_secs(3600)), Duration::from_secs(300)),
            (
                Some(Duration::from_secs(30 * 86_400)),
                Duration::from_secs(300),
            ),
            (Some(Duration::ZERO), Duration::from_secs(1)),
            (None, Duration::from_secs(300)),
        ] {
            assert_eq!(pass_every(retention), every, "{retention:?}");
        }
    }

    #[test]
    fn idempotency_keys_last_a_day_or_the_retention_if_shorter() {
        let hours = chrono::Duration::hours;
        for (retention, window) in [
            (None, hours(24)),
            (Some(Duration::from_secs(3600)), hours(1)),
            (Some(Duration::from_secs(30 * 86_400)), hours(24)),
        ] {
            assert_eq!(idempotency_window(retention), window, "{retention:?}");
        }
    }

    #[test]
    fn the_remover_rests_as_long_as_a_batch_took() {
        for (took, rest) in [
            (Duration::ZERO, Duration::from_millis(1)),
            (Duration::from_micros(300), Duration::from_millis(1)),
            (Duration::from_millis(4), Duration::from_millis(4)),
        ] {
            assert_eq!(rest_after(took), rest, "{took:?}");
        }
    }
}
