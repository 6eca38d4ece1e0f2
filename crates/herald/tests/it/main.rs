//! End-to-end tests: each starts the real `herald` binary on an ephemeral loopback port
//! with its embedded store and a real HTTP receiver, and drives it only through the
//! HTTP API. `support.rs` has the harness.

mod amqp;
mod backup;
mod bad_input;
mod cli;
mod cluster;
mod contracts;
mod crash;
mod crud;
mod delivery;
mod destinations;
mod entities;
mod faults;
mod filters;
mod https;
mod logs;
mod metrics;
mod monitoring;
mod operational;
mod retention;
mod subscriptions;
mod support;
mod tokens;
mod traces;
