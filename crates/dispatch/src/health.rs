//! Endpoint health, as decisions: what an attempt's result means for its endpoint's failure
//! streak, and when a streak is long enough to disable the endpoint (`auto_disable_after`,
//! 5 days by default, as Svix). The worker acts on them (`worker.rs`: store writes;
//! `operational.rs`: disabling and telling the operator).
//!
//! The streak is kept in the store, shared by every node: any node's failure joins it
//! (`Store::mark_failing` returns its start), and before an endpoint is disabled the
//! store is asked for a success since the streak began (`Store::success_since`), on any
//! node. Each node keeps a copy of the streaks it knows (`Health`) only so that a success
//! costs a store write when it ends a streak this node knows of, and a failure when it
//! starts one; the copy can be stale, the decision to disable never rests on it alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use model::EndpointId;

/// This node's copy of the failing endpoints, since when.
#[derive(Default)]
pub(crate) struct Health {
    failing: Mutex<HashMap<EndpointId, DateTime<Utc>>>,
}

impl Health {
    pub(crate) fn failing_since(&self, endpoint: &EndpointId) -> Option<DateTime<Utc>> {
        self.lock().get(endpoint).copied()
    }

    pub(crate) fn set(&self, endpoint: &EndpointId, since: DateTime<Utc>) {
        self.lock().insert(endpoint.clone(), since);
    }

    pub(crate) fn remove(&self, endpoint: &EndpointId) {
        self.lock().remove(endpoint);
    }

    pub(crate) fn extend(&self, rows: Vec<(EndpointId, DateTime<Utc>)>) {
        self.lock().extend(rows);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, DateTime<Utc>>> {
        // A `std` mutex: one map operation at a time, never held across an await.
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What an attempt that reached (or tried to reach) the receiver means for the streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A success, and no streak known: nothing to write.
    Nothing,
    /// A success ends the known streak.
    EndStreak,
    /// A failure, and no streak known here: join (or start) the store's.
    JoinStreak,
    /// A failure in a streak known to have started then: disable if it has lasted.
    Continue(DateTime<Utc>),
}

/// The step for an attempt that `delivered` or not, with the streak this node knows.
pub(crate) fn after_attempt(delivered: bool, known_since: Option<DateTime<Utc>>) -> Step {
    match (delivered, known_since) {
        (true, None) => Step::Nothing,
        (true, Some(_)) => Step::EndStreak,
        (false, None) => Step::JoinStreak,
        (false, Some(since)) => Step::Continue(since),
    }
}

/// Whether a streak that started at `since` has lasted the `window` at `now`.
pub(crate) fn lasted(since: DateTime<Utc>, now: DateTime<Utc>, window: Option<Duration>) -> bool {
    let Some(window) = window else {
        return false;
    };
    let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
    now.signed_duration_since(since) >= window
}

/// Where a streak recorded as starting at `since` really starts at `now`, given the latest
/// success recorded since then on any node (`last_success`) and the first failure recorded
/// after that success (`failure_after`): a success ends a streak, and the next one starts
/// with the next failure (this one, `now`, when none is recorded yet).
pub(crate) fn streak_start(
    since: DateTime<Utc>,
    last_success: Option<DateTime<Utc>>,
    failure_after: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    match last_success {
        None => since,
        Some(_) => failure_after.unwrap_or(now),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn steps_after_an_attempt() {
        for (delivered, known, step) in [
            (true, None, Step::Nothing),
            (true, Some(at(1)), Step::EndStreak),
            (false, None, Step::JoinStreak),
            (false, Some(at(1)), Step::Continue(at(1))),
        ] {
            assert_eq!(
                after_attempt(delivered, known),
                step,
                "{delivered} {known:?}"
            );
        }
    }

    #[test]
    fn a_streak_lasts_its_window() {
        let day = Duration::from_secs(86_400);
        for (since, now, window, expect) in [
            (0, 86_399, Some(day), false),
            (0, 86_400, Some(day), true),
            (0, 1_000_000, None, false),
        ] {
            assert_eq!(lasted(at(since), at(now), window), expect, "{since} {now}");
        }
    }

    #[test]
    fn a_success_on_any_node_restarts_the_streak() {
        // (recorded start, last success, first failure after it, now) -> real start
        for (since, success, failure, now, expect) in [
            (10, None, None, 100, 10),
            (10, Some(50), Some(60), 100, 60),
            (10, Some(50), None, 100, 100),
        ] {
            assert_eq!(
                streak_start(at(since), success.map(at), failure.map(at), at(now)),
                at(expect),
                "{since} {success:?} {failure:?}"
            );
        }
    }
}
