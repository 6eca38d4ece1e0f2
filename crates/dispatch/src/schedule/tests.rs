//! The redrive schedule: jitter, Retry-After bounds, exhaustion.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use model::{ErrorKind, Outcome};

use super::*;

fn policy() -> RetryPolicy {
    RetryPolicy {
        schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
        jitter: 0.2,
        max_retry_after: Duration::from_secs(600),
    }
}

fn failed(retry_after: Option<u64>) -> Outcome {
    Outcome {
        status_code: Some(500),
        body: String::new(),
        duration: Duration::ZERO,
        error: Some(ErrorKind::Status),
        permanent: false,
        retry_after: retry_after.map(Duration::from_secs),
    }
}

#[track_caller]
fn check(attempts: u32, outcome: Outcome, random: f64, expect: NextStep) {
    let now = Utc.timestamp_opt(1_000, 0).unwrap();
    assert_eq!(
        next_step(&policy(), attempts, &outcome, now, random),
        expect
    );
}

fn at(seconds: i64, millis: i64) -> NextStep {
    NextStep::RetryAt(
        Utc.timestamp_opt(1_000 + seconds, 0).unwrap() + chrono::Duration::milliseconds(millis),
    )
}

#[test]
fn success_is_delivered() {
    let mut ok = failed(None);
    ok.error = None;
    check(1, ok, 0.5, NextStep::Delivered);
}

#[test]
fn retries_follow_the_schedule_with_jitter() {
    check(1, failed(None), 0.5, at(5, 0));
    check(1, failed(None), 0.0, at(4, 0));
    check(1, failed(None), 1.0, at(6, 0));
    check(2, failed(None), 0.5, at(300, 0));
}

#[test]
fn exhausted_schedule_fails() {
    check(3, failed(None), 0.5, NextStep::Failed);
}

#[test]
fn retry_after_is_honoured_within_bounds() {
    check(1, failed(Some(60)), 0.5, at(60, 0));
    check(1, failed(Some(1)), 0.5, at(5, 0));
    check(1, failed(Some(100_000)), 0.5, at(600, 0));
}

#[test]
fn permanent_failure_is_not_retried() {
    let mut refused = failed(None);
    refused.permanent = true;
    check(1, refused, 0.5, NextStep::Failed);
}
