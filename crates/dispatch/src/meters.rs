//! What the delivery side counts for `/metrics`, by Prometheus' conventions. The handles
//! are registered once with the process's recorder (there is none in tests: they count
//! nothing), so an attempt pays a few atomic adds, never a lookup by name. Labels have a
//! fixed, small set of values: no application or endpoint ids.

use std::time::Duration;

use metrics::{Counter, Histogram, counter, histogram};
use model::{ErrorKind, Outcome, Trigger};

use crate::schedule::NextStep;

/// Why Herald disables an endpoint (`Meters::disabled`).
const DISABLED_FOR: [&str; 2] = ["failing", "gone"];

/// Every error kind, in the order of `Meters::failed`.
const KINDS: [ErrorKind; 8] = [
    ErrorKind::Status,
    ErrorKind::Timeout,
    ErrorKind::ConnectionRefused,
    ErrorKind::Dns,
    ErrorKind::Tls,
    ErrorKind::Connection,
    ErrorKind::Refused,
    ErrorKind::Broker,
];

pub(crate) struct Meters {
    delivered: Counter,
    failed: [Counter; KINDS.len()],
    attempt_duration: Histogram,
    first_success: Histogram,
    retries: Counter,
    exhausted: Counter,
    pub(crate) stale_writes: Counter,
}

impl Meters {
    pub(crate) fn new() -> Self {
        // Shown from the start (at 0), so dashboards and alerts find them before it happens.
        for reason in DISABLED_FOR {
            counter!("herald_endpoints_disabled_total", "reason" => reason).absolute(0);
        }
        let attempts = "herald_attempts_total";
        Self {
            delivered: counter!(attempts, "outcome" => "success", "error_kind" => "none"),
            failed: KINDS
                .map(|k| counter!(attempts, "outcome" => "failure", "error_kind" => k.as_str())),
            attempt_duration: histogram!("herald_attempt_duration_seconds"),
            first_success: histogram!("herald_delivery_latency_seconds"),
            retries: counter!("herald_retries_scheduled_total"),
            exhausted: counter!("herald_deliveries_failed_total"),
            stale_writes: counter!("herald_stale_writes_total"),
        }
    }

    /// One finished attempt: its outcome and duration; for a scheduled delivery's success,
    /// the time from publish to it; what comes next.
    pub(crate) fn attempted(
        &self,
        outcome: &Outcome,
        step: &NextStep,
        trigger: Trigger,
        since_publish: Duration,
    ) {
        self.attempt_duration.record(outcome.duration.as_secs_f64());
        match outcome.error {
            None => {
                self.delivered.increment(1);
                // A resend of a delivered message is not its first success.
                if trigger == Trigger::Scheduled {
                    self.first_success.record(since_publish.as_secs_f64());
                }
            }
            Some(kind) => {
                let at = KINDS.iter().position(|k| *k == kind).unwrap_or(0);
                self.failed[at].increment(1);
            }
        }
        match step {
            NextStep::RetryAt(_) => self.retries.increment(1),
            NextStep::Failed => self.exhausted.increment(1),
            NextStep::Delivered => {}
        }
    }

    /// An endpoint Herald disabled, by why (`failing`, `gone`).
    pub(crate) fn disabled(reason: &'static str) {
        counter!("herald_endpoints_disabled_total", "reason" => reason).increment(1);
    }
}
