//! Group commit for plain publishes (no idempotency key, no entity): concurrent publishes
//! on one node share one statement, so one commit, instead of paying a commit (a WAL
//! flush) each. A writer task takes the first publish waiting, adds every other one
//! already waiting (up to `MAX_GROUP`), and inserts all their messages and deliveries in
//! one statement. Publishes that arrive while a group is being written wait for the next
//! group, which is the larger for it; a second group is written beside the first only once
//! `SECOND_GROUP` publishes are waiting, so a node with few concurrent publishes (one of
//! several nodes sharing the load) still writes them in few commits, and one with many
//! does not make them queue behind one commit at a time. With no group being written, the
//! first publishes waiting may wait a little for as many as the last group held
//! (`store::batching`: only while this node's publish rate says they are coming, at most
//! `MAX_LINGER`), so that a node's share of a steady load is not written a few publishes a
//! commit. A publish is answered only when its group committed: a 2xx still means stored.
//!
//! A group is all or nothing. If its statement fails for one message's sake (a duplicate
//! `eventId`), the group is written again one message at a time, so each publish gets its
//! own answer; if the database is unreachable, every publish of the group gets that error.

use deadpool_postgres::Pool;
use futures::stream::{FuturesUnordered, StreamExt};
use model::Message;
use store::batching::{Arrivals, linger};
use store::{FIRST_GENERATION, NewDelivery, Result, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::error;
use crate::ingest::insert_message;
use crate::query::execute;
use crate::rows::{ms, signed};

/// Publishes written in one statement at most.
const MAX_GROUP: usize = 512;

/// Publishes waiting that start a second group while one is being written: fewer wait
/// for it to commit and join the next group.
const SECOND_GROUP: usize = 16;

/// How long at most a lone writer waits for as many publishes as its last group held:
/// about one commit's time on an unloaded database, so a publish waits at most that much
/// more, and only while publishes keep coming.
const MAX_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// The writer of plain publishes. Dropping it ends the writer task once the groups it
/// holds are written.
pub(crate) struct Group {
    tx: mpsc::UnboundedSender<Pending>,
    writer: tokio::task::JoinHandle<()>,
    /// What the writer did, for the tests.
    #[cfg(test)]
    counts: std::sync::Arc<Counts>,
}

/// Statements written (fewer than the publishes means they shared), and how many times the
/// writer waited for more.
#[derive(Default)]
struct Counts {
    written: std::sync::atomic::AtomicUsize,
    lingered: std::sync::atomic::AtomicUsize,
}

struct Pending {
    message: Message,
    owner: u64,
    deliveries: Vec<NewDelivery>,
    done: oneshot::Sender<Result<()>>,
    /// When it was handed to the writer.
    since: std::time::Instant,
}

impl Group {
    /// Starts the writer on `pool`'s connections.
    pub(crate) fn start(pool: Pool) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let counts = std::sync::Arc::new(Counts::default());
        Self {
            tx,
            writer: tokio::spawn(write_groups(pool, rx, counts.clone())),
            #[cfg(test)]
            counts,
        }
    }

    /// Stores a message without an idempotency key or entity, with its deliveries, in the
    /// next group; returns once that group committed.
    pub(crate) async fn insert(
        &self,
        message: Message,
        owner: u64,
        deliveries: Vec<NewDelivery>,
    ) -> Result<()> {
        let (done, answer) = oneshot::channel();
        self.tx
            .send(Pending {
                message,
                owner,
                deliveries,
                done,
                since: std::time::Instant::now(),
            })
            .map_err(|_| error::backend_msg("the store's group writer stopped"))?;
        answer
            .await
            .map_err(|_| error::backend_msg("the store's group writer stopped"))?
    }
}

#[cfg(test)]
impl Group {
    pub(crate) fn written(&self) -> usize {
        self.counts
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn lingered(&self) -> usize {
        self.counts
            .lingered
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.writer.abort();
    }
}

/// The writer task: groups what is waiting and writes one group at a time, or two while
/// at least `SECOND_GROUP` publishes are waiting.
async fn write_groups(
    pool: Pool,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    counts: std::sync::Arc<Counts>,
) {
    // `/metrics`: how long each group took to write and commit, its size, and how long its
    // first publish waited for it to start (behind a group being written, or for more).
    let meters = Meters {
        commit_seconds: metrics::histogram!("herald_store_commit_seconds", "store" => "postgres"),
        group_size: metrics::histogram!("herald_store_group_size", "store" => "postgres"),
        group_wait: metrics::histogram!("herald_store_group_wait_seconds", "store" => "postgres"),
    };
    let mut in_flight = FuturesUnordered::new();
    let mut waiting = std::collections::VecDeque::new();
    let mut open = true;
    let mut arrivals = Arrivals::new(std::time::Instant::now());
    // Until when the waiting publishes wait for more, once decided; the last group's size.
    let mut lingering: Option<tokio::time::Instant> = None;
    let mut previous = 0;
    while open || !waiting.is_empty() || !in_flight.is_empty() {
        while starts_group(in_flight.len(), waiting.len(), open) {
            if in_flight.is_empty() && open {
                let now = tokio::time::Instant::now();
                let until = *lingering.get_or_insert_with(|| {
                    let rate = arrivals.per_second(now.into_std());
                    let wait = linger(waiting.len(), previous, rate, MAX_LINGER);
                    if !wait.is_zero() {
                        counts
                            .lingered
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    now + wait
                });
                if now < until && waiting.len() < previous {
                    break;
                }
            }
            lingering = None;
            let group: Vec<Pending> = waiting.drain(..waiting.len().min(MAX_GROUP)).collect();
            previous = group.len();
            counts
                .written
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            meters.group_size.record(group.len() as f64);
            if let Some(first) = group.first() {
                meters
                    .group_wait
                    .record(first.since.elapsed().as_secs_f64());
            }
            in_flight.push(timed(
                meters.commit_seconds.clone(),
                write(pool.clone(), group),
            ));
        }
        tokio::select! {
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            next = rx.recv(), if open => match next {
                Some(pending) => {
                    let before = waiting.len();
                    waiting.push_back(pending);
                    while let Ok(more) = rx.try_recv() {
                        waiting.push_back(more);
                    }
                    arrivals.add(waiting.len() - before, std::time::Instant::now());
                }
                None => open = false,
            },
            () = tokio::time::sleep_until(lingering.unwrap_or_else(tokio::time::Instant::now)), if lingering.is_some() => {}
        }
    }
}

struct Meters {
    commit_seconds: metrics::Histogram,
    group_size: metrics::Histogram,
    group_wait: metrics::Histogram,
}

/// Runs `write`, recording how long it took.
async fn timed(took: metrics::Histogram, write: impl std::future::Future<Output = ()>) {
    let started = std::time::Instant::now();
    write.await;
    took.record(started.elapsed().as_secs_f64());
}

/// Whether the writer starts a group now, with `in_flight` groups being written and
/// `waiting` publishes waiting (`open`: more may come).
fn starts_group(in_flight: usize, waiting: usize, open: bool) -> bool {
    match in_flight {
        _ if waiting == 0 => false,
        0 => true,
        1 => waiting >= SECOND_GROUP || !open,
        _ => false,
    }
}

/// Writes one group and answers each of its publishes.
async fn write(pool: Pool, group: Vec<Pending>) {
    let client = match pool.get().await {
        Ok(client) => client,
        Err(err) => {
            let err = error::pool(err);
            for pending in group {
                let _ = pending.done.send(Err(err.clone()));
            }
            return;
        }
    };
    if group.len() > 1 {
        match insert_group(&client, &group).await {
            Ok(()) => {
                for pending in group {
                    let _ = pending.done.send(Ok(()));
                }
                return;
            }
            Err(err) if unreachable_store(&err) => {
                for pending in group {
                    let _ = pending.done.send(Err(err.clone()));
                }
                return;
            }
            // One message's fault (a duplicate eventId): each on its own below.
            Err(_) => {}
        }
    }
    for pending in group {
        let stored = insert_message(
            &client,
            &pending.message,
            None,
            pending.owner,
            &pending.deliveries,
        )
        .await;
        let _ = pending.done.send(stored);
    }
}

fn unreachable_store(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(_) | StoreError::StorageFull(_))
}

/// Inserts every message of `group` and all their deliveries in one statement.
async fn insert_group(client: &deadpool_postgres::Object, group: &[Pending]) -> Result<()> {
    let first = signed(FIRST_GENERATION)?;
    let n = group.len();
    let mut apps = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut event_ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut channels = Vec::with_capacity(n);
    let mut tags = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut origins = Vec::with_capacity(n);
    let mut traceparents = Vec::with_capacity(n);
    let mut expiries = Vec::with_capacity(n);
    let deliveries: usize = group.iter().map(|p| p.deliveries.len()).sum();
    let mut d_msgs = Vec::with_capacity(deliveries);
    let mut d_endpoints = Vec::with_capacity(deliveries);
    let mut d_ids = Vec::with_capacity(deliveries);
    let mut d_apps = Vec::with_capacity(deliveries);
    let mut d_next = Vec::with_capacity(deliveries);
    let mut d_leased = Vec::with_capacity(deliveries);
    let mut d_times = Vec::with_capacity(deliveries);
    let mut d_owners = Vec::with_capacity(deliveries);
    let mut d_generations = Vec::with_capacity(deliveries);
    for pending in group {
        let m = &pending.message;
        let created = ms(m.created_at);
        let owner = signed(pending.owner)?;
        apps.push(m.app_id.as_str());
        ids.push(m.id.as_str());
        event_ids.push(m.event_id.as_deref());
        types.push(m.event_type.as_str());
        payloads.push(&*m.payload);
        channels.push(m.channels.as_ref().map(json_list));
        tags.push(m.tags.as_ref().map(json_list));
        times.push(created);
        origins.push(m.origin.as_deref());
        traceparents.push(m.traceparent.as_deref());
        expiries.push(m.payload_expires_at.map(ms));
        for d in &pending.deliveries {
            d_msgs.push(m.id.as_str());
            d_endpoints.push(d.endpoint_id.as_str());
            d_ids.push(d.id.as_str());
            d_apps.push(m.app_id.as_str());
            d_times.push(created);
            match d.leased_until {
                Some(until) => {
                    d_next.push(ms(until));
                    d_leased.push(1_i32);
                    d_owners.push(Some(owner));
                    d_generations.push(first);
                }
                None => {
                    d_next.push(created);
                    d_leased.push(0);
                    d_owners.push(None);
                    d_generations.push(0_i64);
                }
            }
        }
    }
    // The messages' data-modifying CTE runs whether or not the deliveries' insert reads
    // it; both are one statement, so one transaction.
    execute(
        client,
        "WITH message AS ( \
             INSERT INTO messages (app_id, id, event_id, event_type, payload, channels, tags, created_at, origin, entity_type, entity_id, entity_deleted, previous_id, traceparent, payload_expires_at) \
             SELECT x.app_id, x.id, x.event_id, x.event_type, x.payload, \
                 CASE WHEN x.channels IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(x.channels::jsonb)) END, \
                 CASE WHEN x.tags IS NULL THEN NULL ELSE ARRAY(SELECT jsonb_array_elements_text(x.tags::jsonb)) END, \
                 x.created_at, x.origin, NULL, NULL, false, NULL, x.traceparent, x.payload_expires_at \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[], $9::text[], $19::text[], $20::bigint[]) \
                 AS x(app_id, id, event_id, event_type, payload, channels, tags, created_at, origin, traceparent, payload_expires_at) \
         ) \
         INSERT INTO deliveries (msg_id, endpoint_id, id, app_id, status, attempts, next_attempt_at, leased, trigger, created_at, updated_at, lease_owner, lease_gen) \
         SELECT d.msg_id, d.endpoint_id, d.id, d.app_id, 1, 0, d.next_attempt_at, d.leased, 0, d.created_at, d.created_at, d.lease_owner, d.lease_gen \
         FROM UNNEST($10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], $15::int[], $16::bigint[], $17::bigint[], $18::bigint[]) \
             AS d(msg_id, endpoint_id, id, app_id, next_attempt_at, leased, created_at, lease_owner, lease_gen)",
        &[
            &apps,
            &ids,
            &event_ids,
            &types,
            &payloads,
            &channels,
            &tags,
            &times,
            &origins,
            &d_msgs,
            &d_endpoints,
            &d_ids,
            &d_apps,
            &d_next,
            &d_leased,
            &d_times,
            &d_owners,
            &d_generations,
            &traceparents,
            &expiries,
        ],
    )
    .await
    .map_err(error::map)?;
    Ok(())
}

/// A list of strings as a JSON array, for a text[] column passed through `UNNEST`.
fn json_list(list: &Vec<String>) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_group_starts() {
        // (groups being written, publishes waiting, more may come) → starts a group
        let table = [
            (0, 0, true, false),
            (0, 1, true, true),
            (1, 1, true, false),
            (1, SECOND_GROUP - 1, true, false),
            (1, SECOND_GROUP, true, true),
            (1, 1, false, true),
            (2, MAX_GROUP, true, false),
            (2, 1, false, false),
        ];
        for (in_flight, waiting, open, starts) in table {
            assert_eq!(
                starts_group(in_flight, waiting, open),
                starts,
                "{in_flight} in flight, {waiting} waiting, open {open}"
            );
        }
    }
}
