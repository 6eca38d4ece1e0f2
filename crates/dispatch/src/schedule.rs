//! Schedule: after an attempt, retry when, or stop. Pure; jitter and `Retry-After` live here.

use std::time::Duration;

use chrono::{DateTime, Utc};
use model::Outcome;

/// The redrive schedule: the delay before each retry, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delays before retry 1, 2, …; after the last, the delivery fails.
    pub schedule: Vec<Duration>,
    /// Each delay is scaled by a random factor in `1 ± jitter` (0.2 = ±20 %).
    pub jitter: f64,
    /// A receiver's `Retry-After` is honoured up to this long.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// Svix's default: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
    pub fn svix_default() -> Vec<Duration> {
        [5, 300, 1800, 7200, 18000, 36000, 36000]
            .into_iter()
            .map(Duration::from_secs)
            .collect()
    }
}

/// What happens to a delivery after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum NextStep {
    Delivered,
    RetryAt(DateTime<Utc>),
    /// No more attempts: the schedule is exhausted or the failure is permanent.
    Failed,
}

/// Decides the next step after attempt number `attempts_made` (1 for the first) ended with
/// `outcome` at `now`. `unit_random` is a number in `[0, 1)` that picks the jitter.
pub fn next_step(
    policy: &RetryPolicy,
    attempts_made: u32,
    outcome: &Outcome,
    now: DateTime<Utc>,
    unit_random: f64,
) -> NextStep {
    if outcome.delivered() {
        return NextStep::Delivered;
    }
    if outcome.permanent {
        return NextStep::Failed;
    }
    let Some(base) = policy
        .schedule
        .get(attempts_made.saturating_sub(1) as usize)
    else {
        return NextStep::Failed;
    };
    let factor = 1.0 + policy.jitter * (2.0 * unit_random - 1.0);
    let mut delay = base.mul_f64(factor.max(0.0));
    if let Some(asked) = outcome.retry_after {
        delay = delay.max(asked.min(policy.max_retry_after));
    }
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    NextStep::RetryAt(now + delay)
}

#[cfg(test)]
mod tests;
