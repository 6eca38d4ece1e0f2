//! The delivery pipeline, one module per stage:
//! `ingest` (validate, store durably, hand to the worker) → `fanout` (which endpoints get a
//! message) → `schedule` (when to retry) → `attempt` (sign and send) → `record` (write the
//! attempt and the delivery's new state). `worker` only sequences them: it keeps the
//! in-memory queues per endpoint, bounds concurrency, and polls the store for due retries.
//! Nothing here knows which `Store` backend runs.

mod attempt;
mod fanout;
mod health;
mod ingest;
mod record;
mod schedule;
#[cfg(test)]
mod testing;
mod throttle;
mod worker;

pub use fanout::{Preview, RuleKind, event_document, fanout, preview};
pub use ingest::{Ingested, Publish};
pub use schedule::{NextStep, RetryPolicy, next_step};
pub use worker::{Dispatcher, DispatcherConfig};
