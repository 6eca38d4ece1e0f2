//! Keeping leases. A node holds a delivery only under a lease (`store::Lease`); while the
//! delivery waits in its endpoint's queue, the node renews the lease, so a long queue never
//! lets another node take it; and before an attempt it makes sure at least half a lease is
//! left, which outlasts the attempt, so a second node can never attempt the delivery while
//! this one still is. A lease the store says is lost is given up: the job is dropped and
//! whoever holds the delivery now attempts it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::dispatcher::{Shared, lease_end};
use crate::queues::Job;

/// Whether a lease ending at `lease_until` must be renewed before an attempt at `now`:
/// an attempt starts only with at least half of a `lease` left.
pub(crate) fn needs_renewal(
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
    lease: Duration,
) -> bool {
    let half = chrono::Duration::from_std(lease / 2).unwrap_or(chrono::Duration::MAX);
    lease_until.signed_duration_since(now) < half
}

impl Shared {
    /// Renews the leases of queued deliveries that have used a quarter of their lease;
    /// drops the jobs whose lease the store says is lost.
    pub(crate) async fn renew_queued(&self) {
        let now = self.clock.now();
        let due_for_renewal = lease_end(&self.config, now)
            - chrono::Duration::from_std(self.config.lease / 4).unwrap_or_default();
        let queued = self.lock().queued_leases(due_for_renewal);
        if queued.is_empty() {
            return;
        }
        let until = lease_end(&self.config, now);
        let leases: Vec<_> = queued.iter().map(|(_, lease)| lease.clone()).collect();
        let lost = match self.store.renew(self.config.node, &leases, until).await {
            Ok(lost) => lost,
            Err(err) => {
                tracing::warn!(error = %err, leases = leases.len(), "renewing leases failed; trying again shortly");
                return;
            }
        };
        self.refused_as_stale(
            "renewing",
            lost.iter().map(|i| (&queued[*i].0, &queued[*i].1)),
        );
        let lost: HashMap<_, _> = lost
            .into_iter()
            .map(|i| (queued[i].0.clone(), queued[i].1.generation))
            .collect();
        let renewed: HashMap<_, _> = queued
            .iter()
            .filter(|(id, _)| !lost.contains_key(id))
            .map(|(id, lease)| (id.clone(), lease.generation))
            .collect();
        let dropped = self.lock().renewed(&renewed, &lost, until);
        tracing::debug!(renewed = renewed.len(), dropped, "leases renewed");
    }

    /// Makes sure `job`'s lease is this node's for at least half a lease before its
    /// attempt. `false`: the lease is lost (or could not be renewed), and the job must not
    /// be attempted.
    pub(crate) async fn confirm_lease(&self, job: &mut Job) -> bool {
        let now = self.clock.now();
        if !needs_renewal(job.lease_until, now, self.config.lease) {
            return true;
        }
        let until = lease_end(&self.config, now);
        match self
            .store
            .renew(self.config.node, &[job.lease()], until)
            .await
        {
            Ok(lost) if lost.is_empty() => {
                job.lease_until = until;
                // A renewal that waited long for the store may itself have used up what
                // the attempt needs.
                !needs_renewal(until, self.clock.now(), self.config.lease)
            }
            Ok(_) => {
                let lease = job.lease();
                self.refused_as_stale("renewing", [(&job.delivery_id, &lease)]);
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, msg_id = %job.message.id, endpoint_id = %job.endpoint_id, delivery_id = %job.delivery_id, "renewing a lease before its attempt failed; the delivery is attempted after its lease");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[track_caller]
    fn check(left_seconds: i64, lease_seconds: u64, renew: bool) {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let until = now + chrono::Duration::seconds(left_seconds);
        assert_eq!(
            needs_renewal(until, now, Duration::from_secs(lease_seconds)),
            renew
        );
    }

    #[test]
    fn a_fresh_lease_is_attempted_at_once() {
        check(120, 120, false);
        check(60, 120, false);
    }

    #[test]
    fn less_than_half_a_lease_left_is_renewed_first() {
        check(59, 120, true);
        check(0, 120, true);
    }

    #[test]
    fn a_lease_that_ran_out_is_renewed_first() {
        check(-5, 120, true);
    }
}
