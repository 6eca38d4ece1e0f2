//! The bookkeeping's rules, one table each: turns, caps, memory shares, holding once,
//! leases renewed or lost.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use model::{DeliveryId, EndpointId, Trigger};

use super::*;
use crate::testing::message;

fn limits(in_flight: usize, per_endpoint: usize, queued: usize, share: usize) -> Limits {
    Limits {
        max_in_flight: in_flight,
        max_in_flight_per_endpoint: per_endpoint,
        max_queued: queued,
        max_queued_per_endpoint: share,
    }
}

fn endpoints(n: usize) -> Vec<EndpointId> {
    let mut ids: Vec<_> = (0..n).map(|_| EndpointId::generate()).collect();
    ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    ids
}

fn job(endpoint: &EndpointId, generation: u64) -> Job {
    Job {
        delivery_id: DeliveryId::generate(),
        endpoint_id: endpoint.clone(),
        message: Arc::new(message("a.b", None)),
        attempts: 0,
        trigger: Trigger::Scheduled,
        generation,
        lease_until: Utc.timestamp_opt(1_700_000_100, 0).unwrap(),
        due: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
    }
}

/// Pushes `per_endpoint[i]` jobs for endpoint i, then starts what the caps allow; checks
/// which endpoints (by index) started, in order.
#[track_caller]
fn check_starts(limits: Limits, per_endpoint: &[usize], expect: &[usize]) {
    let ids = endpoints(per_endpoint.len());
    let mut q = Queues::new(limits);
    for (i, n) in per_endpoint.iter().enumerate() {
        for _ in 0..*n {
            assert_eq!(q.push(job(&ids[i], 1)), Pushed::Queued);
        }
    }
    let mut started = Vec::new();
    while let Some(job) = q.start_next() {
        started.push(ids.iter().position(|e| *e == job.endpoint_id).unwrap());
    }
    assert_eq!(started, expect);
}

#[test]
fn endpoints_take_turns() {
    check_starts(limits(10, 10, 100, 100), &[3, 1, 2], &[0, 1, 2, 0, 2, 0]);
}

#[test]
fn one_endpoint_gets_at_most_its_slots() {
    check_starts(limits(10, 2, 100, 100), &[5, 1], &[0, 1, 0]);
}

#[test]
fn all_endpoints_share_the_global_slots() {
    check_starts(limits(3, 2, 100, 100), &[5, 5], &[0, 1, 0]);
}

#[test]
fn a_finished_attempt_frees_its_endpoints_slot() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 1, 100, 100));
    q.push(job(&ids[0], 1));
    q.push(job(&ids[0], 1));
    let first = q.start_next().unwrap();
    assert!(q.start_next().is_none(), "one slot per endpoint");
    q.finished(&first.endpoint_id);
    assert!(q.start_next().is_some());
}

#[test]
fn a_delivery_is_held_once() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 10, 100, 100));
    let j = job(&ids[0], 1);
    assert_eq!(q.push(j.clone()), Pushed::Queued);
    assert_eq!(q.push(j.clone()), Pushed::Held);
    let started = q.start_next().unwrap();
    assert_eq!(q.push(j.clone()), Pushed::Held, "in flight, still held");
    assert!(q.start_next().is_none());
    q.finished(&started.endpoint_id);
    q.forget(&started.delivery_id);
    assert_eq!(q.push(j), Pushed::Queued, "forgotten, it can be held again");
}

#[test]
fn a_queued_delivery_leased_again_takes_the_newer_lease() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 10, 100, 100));
    let old = job(&ids[0], 3);
    q.push(old.clone());
    let mut newer = old.clone();
    newer.generation = 4;
    newer.lease_until = old.lease_until + chrono::Duration::seconds(60);
    assert_eq!(q.push(newer.clone()), Pushed::Held);
    let started = q.start_next().unwrap();
    assert_eq!(
        (started.generation, started.lease_until),
        (4, newer.lease_until)
    );
}

/// Reservations for ingests, in order, under a memory of `queued` and a share of
/// `share`: which were granted.
#[track_caller]
fn check_reserve(queued: usize, share: usize, asks: &[usize], expect: &[bool]) {
    let ids = endpoints(3);
    let mut q = Queues::new(limits(10, 10, queued, share));
    let got: Vec<bool> = asks.iter().map(|i| q.reserve(&ids[*i])).collect();
    assert_eq!(got, expect);
}

#[test]
fn reservations_keep_each_endpoints_share() {
    check_reserve(10, 2, &[0, 0, 0, 1], &[true, true, false, true]);
}

#[test]
fn reservations_keep_the_memory_cap() {
    check_reserve(3, 10, &[0, 1, 2, 0], &[true, true, true, false]);
}

#[test]
fn given_back_reservations_make_room_again() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 10, 10, 1));
    assert!(q.reserve(&ids[0]));
    assert!(!q.reserve(&ids[0]));
    q.unreserve([&ids[0]]);
    assert_eq!(q.promised(), (0, 0));
    assert!(q.reserve(&ids[0]));
}

#[test]
fn nothing_is_reserved_or_started_once_stopping() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 10, 10, 10));
    q.push(job(&ids[0], 1));
    q.push(job(&ids[0], 1));
    let left = q.stop();
    assert_eq!(left.len(), 2, "queued jobs are handed back for release");
    assert!(q.start_next().is_none());
    assert!(!q.reserve(&ids[0]));
}

#[test]
fn a_poll_asks_for_what_fits() {
    let ids = endpoints(2);
    let mut q = Queues::new(limits(10, 10, 5, 3));
    q.push(job(&ids[0], 1));
    q.push(job(&ids[0], 1));
    assert!(q.reserve(&ids[1]));
    let room = q.poll_room().unwrap();
    assert_eq!(room.room, 2);
    assert_eq!(
        room.rooms,
        HashMap::from([(ids[0].clone(), 1), (ids[1].clone(), 2)])
    );
    q.push(job(&ids[1], 1));
    q.push(job(&ids[1], 1));
    assert_eq!(q.poll_room(), None, "memory full");
}

/// `forget` wakes the poller when the store may hold leftovers that now fit.
#[test]
fn the_poller_is_woken_when_an_overflowed_endpoint_has_room_again() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 10, 100, 2));
    let (a, b) = (job(&ids[0], 1), job(&ids[0], 1));
    q.push(a.clone());
    q.push(b.clone());
    assert!(!q.reserve(&ids[0]), "its share is full: overflowed");
    assert!(q.forget(&a.delivery_id), "half its share free: poll");
    assert!(!q.forget(&b.delivery_id), "woken once");
}

#[test]
fn renewal_extends_kept_leases_and_drops_lost_ones() {
    let ids = endpoints(2);
    let mut q = Queues::new(limits(10, 10, 100, 100));
    let (kept, lost, other) = (job(&ids[0], 1), job(&ids[0], 2), job(&ids[1], 5));
    for j in [&kept, &lost, &other] {
        q.push(j.clone());
    }
    assert_eq!(
        q.queued_leases(kept.lease_until).len(),
        0,
        "none ends before"
    );
    let leases = q.queued_leases(kept.lease_until + chrono::Duration::seconds(1));
    assert_eq!(leases.len(), 3);
    let until = kept.lease_until + chrono::Duration::seconds(120);
    let renewed = HashMap::from([
        (kept.delivery_id.clone(), 1),
        (other.delivery_id.clone(), 4),
    ]);
    let lost_ids = HashMap::from([(lost.delivery_id.clone(), 2)]);
    assert_eq!(q.renewed(&renewed, &lost_ids, until), 1);
    let mut started = Vec::new();
    while let Some(job) = q.start_next() {
        started.push((job.delivery_id, job.lease_until));
    }
    started.sort_by_key(|(id, _)| id.as_str().to_owned());
    let mut expect = vec![
        (kept.delivery_id.clone(), until),
        (other.delivery_id.clone(), other.lease_until),
    ];
    expect.sort_by_key(|(id, _)| id.as_str().to_owned());
    assert_eq!(
        started, expect,
        "a renewal of another generation changes nothing"
    );
    assert_eq!(
        q.push(lost),
        Pushed::Queued,
        "the lost one is no longer held"
    );
}

/// An endpoint whose queued jobs all lost their leases while it waited for its turn keeps
/// its place in the turns, once: new jobs for it still start one slot at a time.
#[test]
fn an_endpoint_emptied_by_lost_leases_keeps_its_cap() {
    let ids = endpoints(1);
    let mut q = Queues::new(limits(10, 1, 100, 100));
    let lost = job(&ids[0], 1);
    q.push(lost.clone());
    let gone = HashMap::from([(lost.delivery_id.clone(), 1)]);
    assert_eq!(q.renewed(&HashMap::new(), &gone, lost.lease_until), 1);
    q.push(job(&ids[0], 1));
    q.push(job(&ids[0], 1));
    assert!(q.start_next().is_some());
    assert!(q.start_next().is_none(), "one slot per endpoint");
}
