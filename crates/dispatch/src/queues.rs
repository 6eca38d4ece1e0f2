//! The worker's in-memory bookkeeping, with no I/O and no clock: which deliveries this node
//! holds, one FIFO queue per endpoint, the endpoints ready to start an attempt (they take
//! turns), the slots in flight, and the memory promised to ingests. Every method is a few
//! map operations; `worker.rs` calls them under one lock and does the waiting and the I/O.
//!
//! Memory is shared out two ways: at most `max_queued` deliveries are held (queued or in
//! flight), at most `max_queued_per_endpoint` of one endpoint, so one endpoint's backlog
//! leaves room for the others. Concurrency likewise: `max_in_flight` attempts in all, at
//! most `max_in_flight_per_endpoint` to one endpoint.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{DeliveryId, EndpointId, Message, Trigger};
use store::LeasedDelivery;

/// One delivery to attempt, under the lease this node holds on it.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub(crate) delivery_id: DeliveryId,
    pub(crate) endpoint_id: EndpointId,
    pub(crate) message: Arc<Message>,
    /// Attempts made before this one in the current run.
    pub(crate) attempts: u32,
    pub(crate) trigger: Trigger,
    /// The lease's fencing generation: every write about the delivery names it.
    pub(crate) generation: u64,
    /// When the lease ends, as far as this node knows (it renews it while it waits).
    pub(crate) lease_until: DateTime<Utc>,
    /// When the delivery became due: its publish, its retry's time, or the end of a lease
    /// that ran out. How long it waits in a queue is the backlog `/metrics` shows.
    pub(crate) due: DateTime<Utc>,
}

impl Job {
    /// How the store names this job's lease.
    pub(crate) fn lease(&self) -> LeasedDelivery {
        LeasedDelivery {
            msg_id: self.message.id.clone(),
            endpoint_id: self.endpoint_id.clone(),
            generation: self.generation,
        }
    }
}

/// The caps the bookkeeping keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_in_flight: usize,
    pub(crate) max_in_flight_per_endpoint: usize,
    pub(crate) max_queued: usize,
    pub(crate) max_queued_per_endpoint: usize,
}

/// What a poll may ask the store for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PollRoom {
    /// Deliveries that fit in memory now.
    pub(crate) room: usize,
    /// The room of each endpoint that holds deliveries (others have the full share).
    pub(crate) rooms: HashMap<EndpointId, usize>,
    /// Where the turns start: after the last endpoint the previous poll visited.
    pub(crate) after: Option<EndpointId>,
}

/// What `push` did with a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    Queued,
    /// Its delivery is held already (queued or in flight); the job was dropped. A queued
    /// one takes the pushed job's lease when it is newer (a poll re-leased it to this node).
    Held,
}

pub(crate) struct Queues {
    limits: Limits,
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
    /// Where the next poll's turns start.
    lease_after: Option<EndpointId>,
    /// Set on shutdown: nothing more is reserved or started.
    stopping: bool,
}

#[derive(Default)]
struct EndpointQueue {
    jobs: VecDeque<Job>,
    in_flight: usize,
    in_ready: bool,
}

impl Queues {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            limits,
            by_endpoint: HashMap::new(),
            ready: VecDeque::new(),
            in_flight: 0,
            held: HashMap::new(),
            taken: HashMap::new(),
            reserved: 0,
            overflowed: false,
            overflowed_endpoints: HashSet::new(),
            lease_after: None,
            stopping: false,
        }
    }

    /// Promises an ingest a slot for a delivery to `endpoint`, if memory (in all, and the
    /// endpoint's share) has room; otherwise its delivery waits in the store for a poll.
    pub(crate) fn reserve(&mut self, endpoint: &EndpointId) -> bool {
        if self.stopping || self.held.len() + self.reserved >= self.limits.max_queued {
            self.overflowed = true;
            return false;
        }
        if self.room(endpoint) == 0 {
            self.overflowed_endpoints.insert(endpoint.clone());
            return false;
        }
        self.reserved += 1;
        self.take(endpoint);
        true
    }

    /// Gives back slots promised to ingests for `endpoints`.
    pub(crate) fn unreserve<'a>(&mut self, endpoints: impl IntoIterator<Item = &'a EndpointId>) {
        for endpoint in endpoints {
            self.reserved -= 1;
            self.untake(endpoint);
        }
    }

    /// When the longest-waiting queued delivery (not in flight) became due.
    pub(crate) fn oldest_queued_due(&self) -> Option<DateTime<Utc>> {
        self.by_endpoint
            .values()
            .flat_map(|q| q.jobs.iter())
            .map(|job| job.due)
            .min()
    }

    /// Deliveries held (queued or in flight), and those in flight.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (self.held.len(), self.in_flight)
    }

    /// Slots promised to ingests, and deliveries held plus promised, counted by endpoint.
    #[cfg(test)]
    pub(crate) fn promised(&self) -> (usize, usize) {
        (self.reserved, self.taken.values().sum())
    }

    /// Queues a job, holding its delivery, unless the delivery is held already.
    pub(crate) fn push(&mut self, job: Job) -> Pushed {
        match self.held.entry(job.delivery_id.clone()) {
            Entry::Occupied(_) => {
                self.adopt(job);
                return Pushed::Held;
            }
            Entry::Vacant(slot) => {
                slot.insert(job.endpoint_id.clone());
            }
        }
        self.take(&job.endpoint_id);
        let endpoint = job.endpoint_id.clone();
        let per_endpoint = self.limits.max_in_flight_per_endpoint;
        let queue = self.by_endpoint.entry(endpoint.clone()).or_default();
        queue.jobs.push_back(job);
        if !queue.in_ready && queue.in_flight < per_endpoint {
            queue.in_ready = true;
            self.ready.push_back(endpoint);
        }
        Pushed::Queued
    }

    /// A queued job whose delivery was leased to this node again (its lease had run out)
    /// takes the new lease, so its writes are not refused as stale.
    fn adopt(&mut self, newer: Job) {
        let Some(queue) = self.by_endpoint.get_mut(&newer.endpoint_id) else {
            return;
        };
        if let Some(job) = queue
            .jobs
            .iter_mut()
            .find(|j| j.delivery_id == newer.delivery_id && j.generation < newer.generation)
        {
            job.generation = newer.generation;
            job.lease_until = newer.lease_until;
        }
    }

    /// The next job to start, if a slot is free: endpoints with queued jobs take turns.
    pub(crate) fn start_next(&mut self) -> Option<Job> {
        if self.stopping {
            return None;
        }
        let per_endpoint = self.limits.max_in_flight_per_endpoint;
        while self.in_flight < self.limits.max_in_flight {
            let endpoint = self.ready.pop_front()?;
            let Some(queue) = self.by_endpoint.get_mut(&endpoint) else {
                continue;
            };
            queue.in_ready = false;
            let Some(job) = queue.jobs.pop_front() else {
                // Its jobs were dropped while it waited for its turn.
                if queue.in_flight == 0 {
                    self.by_endpoint.remove(&endpoint);
                }
                continue;
            };
            queue.in_flight += 1;
            let again = !queue.jobs.is_empty() && queue.in_flight < per_endpoint;
            if again {
                queue.in_ready = true;
            }
            self.in_flight += 1;
            if again {
                self.ready.push_back(endpoint);
            }
            return Some(job);
        }
        None
    }

    /// An attempt to `endpoint` is over: its slot is free (its delivery stays held until
    /// `forget`).
    pub(crate) fn finished(&mut self, endpoint: &EndpointId) {
        let per_endpoint = self.limits.max_in_flight_per_endpoint;
        self.in_flight -= 1;
        let Some(queue) = self.by_endpoint.get_mut(endpoint) else {
            return;
        };
        queue.in_flight -= 1;
        if !queue.jobs.is_empty() && !queue.in_ready && queue.in_flight < per_endpoint {
            queue.in_ready = true;
            self.ready.push_back(endpoint.clone());
        }
        if queue.jobs.is_empty() && queue.in_flight == 0 && !queue.in_ready {
            self.by_endpoint.remove(endpoint);
        }
    }

    /// Stops holding a delivery (recorded, or given up to its lease). Returns whether the
    /// poller should look for leftovers now: memory half free after an overflow, or the
    /// delivery's endpoint's own room half free after its share ran out.
    pub(crate) fn forget(&mut self, id: &DeliveryId) -> bool {
        let Some(endpoint) = self.held.remove(id) else {
            return false;
        };
        self.untake(&endpoint);
        let share = self.limits.max_queued_per_endpoint;
        let global = self.overflowed && self.held.len() < self.limits.max_queued / 2;
        // The set is almost always empty: no hashing then, on the hot path.
        let own = !self.overflowed_endpoints.is_empty()
            && self.room(&endpoint) >= share / 2
            && self.overflowed_endpoints.remove(&endpoint);
        global || own
    }

    /// What the next poll may lease; `None` when memory is full.
    pub(crate) fn poll_room(&mut self) -> Option<PollRoom> {
        self.overflowed = false;
        let room = self
            .limits
            .max_queued
            .saturating_sub(self.held.len() + self.reserved);
        if room == 0 {
            return None;
        }
        let share = self.limits.max_queued_per_endpoint;
        let rooms = self
            .taken
            .iter()
            .map(|(e, n)| (e.clone(), share.saturating_sub(*n)))
            .collect();
        Some(PollRoom {
            room,
            rooms,
            after: self.lease_after.clone(),
        })
    }

    /// After a poll that asked with `asked` and leased `leased` deliveries per endpoint:
    /// endpoints that got all the room they had may have more due in the store.
    pub(crate) fn polled(
        &mut self,
        asked: &PollRoom,
        leased: HashMap<&EndpointId, usize>,
        resume_after: Option<EndpointId>,
    ) {
        let share = self.limits.max_queued_per_endpoint;
        for (endpoint, n) in leased {
            if n >= asked.rooms.get(endpoint).copied().unwrap_or(share) {
                self.overflowed_endpoints.insert(endpoint.clone());
            }
        }
        self.lease_after = resume_after;
    }

    /// The leases of the queued jobs (not those in flight) that end before `before`, for
    /// renewal.
    pub(crate) fn queued_leases(&self, before: DateTime<Utc>) -> Vec<(DeliveryId, LeasedDelivery)> {
        self.by_endpoint
            .values()
            .flat_map(|q| q.jobs.iter())
            .filter(|j| j.lease_until < before)
            .map(|j| (j.delivery_id.clone(), j.lease()))
            .collect()
    }

    /// After a renewal: queued jobs whose lease was renewed (`renewed`, by delivery and
    /// generation) now hold it until `until`; those whose lease is lost (`lost`) are
    /// dropped, since another node may attempt them. Returns how many were dropped.
    pub(crate) fn renewed(
        &mut self,
        renewed: &HashMap<DeliveryId, u64>,
        lost: &HashMap<DeliveryId, u64>,
        until: DateTime<Utc>,
    ) -> usize {
        let mut dropped = Vec::new();
        for queue in self.by_endpoint.values_mut() {
            queue.jobs.retain_mut(|job| {
                if renewed.get(&job.delivery_id) == Some(&job.generation) {
                    job.lease_until = until;
                }
                let keep = lost.get(&job.delivery_id) != Some(&job.generation);
                if !keep {
                    dropped.push(job.delivery_id.clone());
                }
                keep
            });
        }
        // A queue waiting for its turn stays until the turn comes (it is in `ready`).
        self.by_endpoint
            .retain(|_, q| q.in_ready || !q.jobs.is_empty() || q.in_flight > 0);
        for id in &dropped {
            self.forget(id);
        }
        dropped.len()
    }

    /// Stops starting attempts and reserving memory; returns the queued jobs, which
    /// stay held (their leases are to be released).
    pub(crate) fn stop(&mut self) -> Vec<Job> {
        self.stopping = true;
        self.by_endpoint
            .values_mut()
            .flat_map(|q| q.jobs.drain(..))
            .collect()
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

    fn untake(&mut self, endpoint: &EndpointId) {
        if let Some(n) = self.taken.get_mut(endpoint) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.taken.remove(endpoint);
            }
        }
    }

    /// Free slots of `endpoint` under its share of memory.
    fn room(&self, endpoint: &EndpointId) -> usize {
        self.limits
            .max_queued_per_endpoint
            .saturating_sub(self.taken.get(endpoint).copied().unwrap_or(0))
    }
}

#[cfg(test)]
mod tests;
