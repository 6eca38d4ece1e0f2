//! The delivery pipeline, one module per stage:
//! `ingest` (validate, store durably, hand to the worker) → `fanout` (which endpoints get a
//! message) → `schedule` (when to retry) → `attempt` (sign and send) → `record` (write the
//! attempt and the delivery's new state). `worker` only sequences them, over the pure
//! bookkeeping of `queues` (per-endpoint queues, turns, caps, memory shares); `leases`
//! keeps this node's leases, `health` decides what attempts mean for an endpoint, and
//! `operational` disables endpoints and tells the operator. `dispatcher` holds what they
//! share. Nothing here knows which `Store` backend runs.

mod attempt;
mod dispatcher;
mod fanout;
mod health;
mod ingest;
mod leases;
mod meters;
mod operational;
mod queues;
mod record;
mod retention;
mod schedule;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod throttle;
mod traces;
mod worker;

pub use dispatcher::{Dispatcher, DispatcherConfig};
pub use fanout::{Preview, RuleKind, event_document, fanout, preview};
pub use ingest::{Ingested, Publish};
pub use schedule::{NextStep, RetryPolicy, next_step};
