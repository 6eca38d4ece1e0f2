//! Leases: `lease_due` hands due deliveries to one node under a new generation, and the
//! writes about a leased delivery (`record_attempts`, `renew`, `release`) apply only while
//! that lease is current.
//!
//! Several nodes poll at once. A poll locks the rows it is about to lease with
//! `FOR UPDATE SKIP LOCKED`: a row another poll has locked is passed over rather than
//! waited for, and a row another poll leased and committed no longer matches (PostgreSQL
//! checks the condition again on the row as committed), so no two polls lease one
//! delivery. The fenced writes match on the owner and the generation in the statement
//! that changes the row (a delivery has an owner exactly while it is leased, a constraint
//! of the schema), and return the positions they applied to. They look each delivery up
//! by its key: had they said `leased = 1`, PostgreSQL could choose to read every leased
//! delivery from that partial index instead.
//!
//! For the same reason they compare a delivery's status and owner with columns of their
//! keys, not with constants. With the table's statistics missing or stale (a new database
//! under sudden load, before autovacuum analyzed it), PostgreSQL took `status = 1 AND
//! lease_owner = $n` for matching about one row, and planned a loop over the keys for
//! each row of a scan of the whole table: 2 million comparisons and 200 ms for 1,024
//! records among 40,000 deliveries, where looking each key up takes 12 ms. As join
//! conditions they say nothing about how many deliveries match, so the planner sizes the
//! table as it is and looks the keys up.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use deadpool_postgres::Transaction;
use model::EndpointId;
use store::{AttemptRecord, DueDelivery, LeaseRequest, Leased, LeasedDelivery, NodeId, Result};
use tokio_postgres::Row;

use crate::PostgresStore;
use crate::error;
use crate::query::rows;
use crate::rows::{self as row, get, int, ms, signed};

/// Endpoints with deliveries waiting that one poll visits at most, so a poll costs about
/// the same however many endpoints have retries scheduled; the next poll goes on from
/// where this one stopped (`Leased::resume_after`).
pub(crate) const TURNS_PER_POLL: usize = 1024;

/// Endpoints one planning query visits; a poll that needs more runs another.
const TURNS_PER_QUERY: usize = 128;

/// The end of both leasing statements: `leased` (the rows just leased, with their due
/// time and turn) joined to their messages, in turn order, each endpoint's oldest due
/// first.
fn leased_with_messages() -> String {
    format!(
        "SELECT l.id, l.msg_id, l.app_id, l.endpoint_id, l.status, l.attempts, l.due_at, l.trigger, l.created_at, l.updated_at, {}, l.lease_gen \
         FROM leased l JOIN messages m ON m.app_id = l.app_id AND m.id = l.msg_id \
         ORDER BY l.turn, l.due_at, l.msg_id",
        row::MESSAGE_COLUMNS
    )
}

/// The update of both leasing statements, on the rows of `picked`: leased to the owner ($2)
/// until the lease's end ($3) under the next generation. The delivery is returned as it
/// was before (with its due time).
const LEASE_PICKED: &str = "leased AS ( \
    UPDATE deliveries d SET leased = 1, lease_owner = $2, lease_gen = d.lease_gen + 1, next_attempt_at = $3 \
    FROM picked p WHERE d.msg_id = p.msg_id AND d.endpoint_id = p.endpoint_id \
    RETURNING d.id, d.msg_id, d.app_id, d.endpoint_id, d.status, d.attempts, p.due_at, d.trigger, d.created_at, d.updated_at, d.lease_gen, p.turn \
)";

/// Leases whose end is past ($1 = now), oldest end first, at most $4.
static LEASE_EXPIRED: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH picked AS ( \
             SELECT msg_id, endpoint_id, next_attempt_at AS due_at, 0::bigint AS turn FROM deliveries \
             WHERE status = 1 AND leased = 1 AND next_attempt_at <= $1 \
             ORDER BY next_attempt_at LIMIT $4 \
             FOR UPDATE SKIP LOCKED \
         ), {LEASE_PICKED} {}",
        leased_with_messages()
    )
});

/// Waiting deliveries due at $1, up to the number planned per endpoint ($4 endpoints, $5
/// how many of each, $6 their turns), each endpoint's oldest due first.
static LEASE_TURNS: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH want AS ( \
             SELECT * FROM UNNEST($4::text[], $5::bigint[], $6::bigint[]) AS w(endpoint_id, take, turn) \
         ), picked AS ( \
             SELECT c.msg_id, c.endpoint_id, c.next_attempt_at AS due_at, w.turn \
             FROM want w CROSS JOIN LATERAL ( \
                 SELECT d.msg_id, d.endpoint_id, d.next_attempt_at FROM deliveries d \
                 WHERE d.endpoint_id = w.endpoint_id AND d.status = 1 AND d.leased = 0 AND d.next_attempt_at <= $1 \
                 ORDER BY d.next_attempt_at LIMIT w.take \
                 FOR UPDATE OF d SKIP LOCKED \
             ) c \
         ), {LEASE_PICKED} {}",
        leased_with_messages()
    )
});

/// The endpoints with deliveries waiting after $1 (in id order, up to $8 inclusive when
/// given), at most $2 of them, one index seek each (a loose index scan); with how many
/// deliveries each has due at $3, counted up to its room ($5 endpoints with the rooms $6,
/// the others $7) and at most $4.
const PLAN_TURNS: &str = "WITH RECURSIVE turns(endpoint_id, n) AS ( \
        (SELECT d.endpoint_id, 1::bigint FROM deliveries d \
         WHERE d.status = 1 AND d.leased = 0 AND d.endpoint_id > $1 \
         ORDER BY d.endpoint_id LIMIT 1) \
        UNION ALL \
        SELECT (SELECT d.endpoint_id FROM deliveries d \
                WHERE d.status = 1 AND d.leased = 0 AND d.endpoint_id > t.endpoint_id \
                ORDER BY d.endpoint_id LIMIT 1), t.n + 1 \
        FROM turns t \
        WHERE t.endpoint_id IS NOT NULL AND t.n < $2 AND ($8::text IS NULL OR t.endpoint_id < $8) \
    ), rooms AS ( \
        SELECT * FROM UNNEST($5::text[], $6::bigint[]) AS r(endpoint_id, room) \
    ) \
    SELECT t.endpoint_id, ( \
        SELECT count(*) FROM ( \
            SELECT 1 FROM deliveries d \
            WHERE d.status = 1 AND d.leased = 0 AND d.endpoint_id = t.endpoint_id AND d.next_attempt_at <= $3 \
            LIMIT LEAST($4, COALESCE(r.room, $7)) \
        ) due \
    ) \
    FROM turns t LEFT JOIN rooms r ON r.endpoint_id = t.endpoint_id \
    WHERE t.endpoint_id IS NOT NULL AND ($8::text IS NULL OR t.endpoint_id <= $8) \
    ORDER BY t.n";

impl PostgresStore {
    pub(crate) async fn lease(&self, request: LeaseRequest) -> Result<Leased> {
        if request.limit == 0 {
            return Ok(Leased {
                due: Vec::new(),
                resume_after: request.after,
            });
        }
        let now = ms(request.now);
        let owner = signed(request.owner.0)?;
        let until = ms(request.leased_until);
        let limit = signed(request.limit)?;
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(error::map)?;

        // Leases that ran out, whatever their endpoint's room: their holder may be gone,
        // or may still hold them in memory, which the new generation fences off. They use
        // up their endpoint's room for the turns.
        let expired = rows(&tx, &LEASE_EXPIRED, &[&now, &owner, &until, &limit])
            .await
            .map_err(error::map)?;
        let mut due = expired.iter().map(due_row).collect::<Result<Vec<_>>>()?;
        let mut taken: HashMap<EndpointId, usize> = HashMap::new();
        for d in &due {
            *taken.entry(d.delivery.endpoint_id.clone()).or_default() += 1;
        }

        let plan = plan_turns(&tx, &request, &taken, due.len()).await?;
        if !plan.takes.is_empty() {
            let endpoints: Vec<&str> = plan.takes.iter().map(|(e, _)| e.as_str()).collect();
            let takes = plan
                .takes
                .iter()
                .map(|(_, n)| signed(*n))
                .collect::<Result<Vec<i64>>>()?;
            let turns: Vec<i64> = (1..=signed(plan.takes.len())?).collect();
            let leased = rows(
                &tx,
                &LEASE_TURNS,
                &[&now, &owner, &until, &endpoints, &takes, &turns],
            )
            .await
            .map_err(error::map)?;
            for r in &leased {
                due.push(due_row(r)?);
            }
        }
        tx.commit().await.map_err(error::map)?;
        Ok(Leased {
            due,
            resume_after: plan.last_visited.or(request.after),
        })
    }

    pub(crate) async fn fenced(
        &self,
        set: Fenced,
        owner: NodeId,
        deliveries: &[LeasedDelivery],
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<usize>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        let set = match set {
            Fenced::Renew => "next_attempt_at = GREATEST(d.next_attempt_at, $5)",
            Fenced::Release => "leased = 0, lease_owner = NULL, next_attempt_at = $5",
        };
        // The owner and the pending status are columns of the keys, not constants (see
        // the module's comment); `OFFSET 0` keeps PostgreSQL from folding them back.
        let sql = format!(
            "UPDATE deliveries d SET {set} \
             FROM (SELECT u.*, $4::bigint AS owner, 1 AS pending \
                   FROM UNNEST($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS u(msg_id, endpoint_id, gen, pos) \
                   OFFSET 0) x \
             WHERE d.msg_id = x.msg_id AND d.endpoint_id = x.endpoint_id \
               AND d.status = x.pending AND d.lease_owner = x.owner AND d.lease_gen = x.gen \
             RETURNING x.pos"
        );
        let msgs: Vec<&str> = deliveries.iter().map(|d| d.msg_id.as_str()).collect();
        let endpoints: Vec<&str> = deliveries.iter().map(|d| d.endpoint_id.as_str()).collect();
        let generations = deliveries
            .iter()
            .map(|d| signed(d.generation))
            .collect::<Result<Vec<i64>>>()?;
        let client = self.client().await?;
        let applied = rows(
            &client,
            &sql,
            &[&msgs, &endpoints, &generations, &signed(owner.0)?, &ms(at)],
        )
        .await
        .map_err(error::map)?;
        refused(deliveries.len(), &applied)
    }

    pub(crate) async fn record(
        &self,
        owner: NodeId,
        records: Vec<AttemptRecord>,
    ) -> Result<Vec<usize>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let n = records.len();
        let mut msgs = Vec::with_capacity(n);
        let mut endpoints = Vec::with_capacity(n);
        let mut generations = Vec::with_capacity(n);
        let mut statuses = Vec::with_capacity(n);
        let mut counts = Vec::with_capacity(n);
        let mut nexts = Vec::with_capacity(n);
        let mut ids = Vec::with_capacity(n);
        let mut delivery_ids = Vec::with_capacity(n);
        let mut apps = Vec::with_capacity(n);
        let mut urls = Vec::with_capacity(n);
        let mut outcomes = Vec::with_capacity(n);
        let mut codes = Vec::with_capacity(n);
        let mut responses = Vec::with_capacity(n);
        let mut durations = Vec::with_capacity(n);
        let mut errors = Vec::with_capacity(n);
        let mut triggers = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        for r in &records {
            let a = &r.attempt;
            msgs.push(a.msg_id.as_str());
            endpoints.push(a.endpoint_id.as_str());
            generations.push(signed(r.generation)?);
            statuses.push(int(r.update.status.code())?);
            counts.push(int(r.update.attempts)?);
            nexts.push(r.update.next_attempt_at.map(ms));
            ids.push(a.id.as_str());
            delivery_ids.push(a.delivery_id.as_str());
            apps.push(a.app_id.as_str());
            urls.push(a.url.as_str());
            outcomes.push(int(a.status.code())?);
            codes.push(a.response_status_code);
            responses.push(a.response.as_str());
            durations.push(a.response_duration_ms);
            errors.push(a.error.map(|e| e.as_str()));
            triggers.push(int(a.trigger.code())?);
            times.push(ms(a.created_at));
        }
        // One statement, so one transaction: the deliveries still leased under the
        // records' leases move on, and only their attempts are written.
        // The owner and the pending status are columns of the keys, not constants (see
        // the module's comment).
        let sql = "WITH x AS ( \
                SELECT *, $7::bigint AS owner, 1 AS pending FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::int[], $5::int[], $6::bigint[], \
                                     $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::int[], \
                                     $14::text[], $15::bigint[], $16::text[], $17::int[], $18::bigint[]) WITH ORDINALITY \
                    AS x(msg_id, endpoint_id, gen, next_status, attempts, next_attempt_at, \
                         id, delivery_id, app_id, url, status, response_status_code, \
                         response, response_duration_ms, error, trigger, created_at, pos) \
            ), moved AS ( \
                UPDATE deliveries d SET status = x.next_status, attempts = x.attempts, next_attempt_at = x.next_attempt_at, \
                    leased = 0, lease_owner = NULL, trigger = 0, updated_at = x.created_at \
                FROM x WHERE d.msg_id = x.msg_id AND d.endpoint_id = x.endpoint_id \
                  AND d.status = x.pending AND d.lease_owner = x.owner AND d.lease_gen = x.gen \
                RETURNING x.pos \
            ), written AS ( \
                INSERT INTO attempts (msg_id, id, delivery_id, app_id, endpoint_id, url, status, response_status_code, response, response_duration_ms, error, trigger, created_at) \
                SELECT x.msg_id, x.id, x.delivery_id, x.app_id, x.endpoint_id, x.url, x.status, x.response_status_code, x.response, x.response_duration_ms, x.error, x.trigger, x.created_at \
                FROM x WHERE x.pos IN (SELECT pos FROM moved) \
            ) \
            SELECT pos FROM moved";
        let client = self.client().await?;
        let applied = rows(
            &client,
            sql,
            &[
                &msgs,
                &endpoints,
                &generations,
                &statuses,
                &counts,
                &nexts,
                &signed(owner.0)?,
                &ids,
                &delivery_ids,
                &apps,
                &urls,
                &outcomes,
                &codes,
                &responses,
                &durations,
                &errors,
                &triggers,
                &times,
            ],
        )
        .await
        .map_err(error::map)?;
        refused(n, &applied)
    }
}

/// What a fenced write does to the deliveries still leased under the given leases.
pub(crate) enum Fenced {
    /// Extends the lease.
    Renew,
    /// Gives the delivery back, due at once.
    Release,
}

/// The positions (0-based) of `n` inputs that are not among the 1-based positions the
/// statement returned.
fn refused(n: usize, applied: &[Row]) -> Result<Vec<usize>> {
    let mut done = HashSet::with_capacity(applied.len());
    for r in applied {
        done.insert(get::<i64>(r, 0)?);
    }
    Ok((0..n)
        .filter(|i| !done.contains(&(*i as i64 + 1)))
        .collect())
}

fn due_row(r: &Row) -> Result<DueDelivery> {
    Ok(DueDelivery {
        delivery: row::delivery(r)?,
        message: row::message_at(r, row::DELIVERY_WIDTH)?,
        generation: row::unsigned(get(r, row::DELIVERY_WIDTH + row::MESSAGE_WIDTH)?)?,
    })
}

/// The turns a poll's leasing takes: how many deliveries from which endpoint, in turn
/// order, and the last endpoint visited.
struct Plan {
    takes: Vec<(EndpointId, usize)>,
    last_visited: Option<EndpointId>,
}

/// Visits the endpoints with deliveries waiting, in id order after `request.after` and
/// then from the first up to it, each giving up to its room (less what `taken` already
/// leased of it) of what it has due, until `request.limit` (with `already` leased) or
/// `TURNS_PER_POLL` endpoints. Reads only; `LEASE_TURNS` then leases the plan.
async fn plan_turns(
    tx: &Transaction<'_>,
    request: &LeaseRequest,
    taken: &HashMap<EndpointId, usize>,
    already: usize,
) -> Result<Plan> {
    let room_of = |endpoint: &EndpointId| {
        request
            .room
            .get(endpoint)
            .copied()
            .unwrap_or(request.per_endpoint)
            .saturating_sub(taken.get(endpoint).copied().unwrap_or(0))
    };
    // The rooms that are not `per_endpoint`, for the counts to stop at.
    let named: HashSet<&EndpointId> = request.room.keys().chain(taken.keys()).collect();
    let mut room_ids = Vec::with_capacity(named.len());
    let mut room_values = Vec::with_capacity(named.len());
    for endpoint in named {
        room_ids.push(endpoint.as_str());
        room_values.push(signed(room_of(endpoint))?);
    }
    let default_room = signed(request.per_endpoint)?;
    let now = ms(request.now);
    let start = request.after.as_ref().map_or("", |e| e.as_str());
    // The turn goes round once: from `start` to the last endpoint, then from the first up
    // to `start` itself.
    let mut cursor = start.to_owned();
    let mut wrapped = start.is_empty();
    let mut total = already;
    let mut visited = 0;
    let mut plan = Plan {
        takes: Vec::new(),
        last_visited: None,
    };
    'turns: while total < request.limit && visited < TURNS_PER_POLL {
        let batch = TURNS_PER_QUERY.min(TURNS_PER_POLL - visited);
        let upto = (wrapped && !start.is_empty()).then_some(start);
        let found = rows(
            tx,
            PLAN_TURNS,
            &[
                &cursor,
                &signed(batch)?,
                &now,
                &signed(request.limit - total)?,
                &room_ids,
                &room_values,
                &default_room,
                &upto,
            ],
        )
        .await
        .map_err(error::map)?;
        for r in &found {
            if total >= request.limit {
                break 'turns;
            }
            let endpoint = EndpointId::from_string(get(r, 0)?);
            let due: i64 = get(r, 1)?;
            let take = room_of(&endpoint)
                .min(request.limit - total)
                .min(usize::try_from(due).unwrap_or(0));
            if take > 0 {
                plan.takes.push((endpoint.clone(), take));
                total += take;
            }
            visited += 1;
            endpoint.as_str().clone_into(&mut cursor);
            plan.last_visited = Some(endpoint);
        }
        if found.len() < batch {
            // The end of the endpoints (or of the turn's second part).
            if wrapped {
                break;
            }
            wrapped = true;
            cursor.clear();
        }
    }
    Ok(plan)
}
