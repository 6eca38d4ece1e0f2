//! `GET /metrics`: what the process recorded, in Prometheus' text format, with the
//! figures read when scraped (deliveries in this node's memory) set first. Who may read it
//! is `MetricsAccess` (the admin token by default). The HTTP figures are counted by
//! `record_request`, called for every API request by the `edge` middleware.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use metrics::{Counter, Histogram, counter, gauge, histogram};

use crate::AppState;

pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let Some(metrics) = &state.config.metrics else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let now = state.clock.now();
    let (held, in_flight) = state.dispatcher.in_memory();
    gauge!("herald_deliveries_held").set(held as f64);
    gauge!("herald_deliveries_in_flight").set(in_flight as f64);
    let mut oldest_due = state.dispatcher.oldest_queued_due();
    match state.store.figures(now).await {
        Ok(figures) => {
            gauge!("herald_deliveries_pending").set(figures.pending as f64);
            gauge!("herald_deliveries_waiting").set(figures.waiting_due as f64);
            gauge!("herald_store_size_bytes").set(figures.size_bytes as f64);
            oldest_due = oldest_due
                .into_iter()
                .chain(figures.oldest_waiting_due)
                .min();
        }
        // The rest still renders: an unreachable store is what an operator then wants to see.
        Err(err) => tracing::warn!(error = %err, "reading the store's figures for /metrics failed"),
    }
    gauge!("herald_backlog_seconds").set(backlog_seconds(oldest_due, now));
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        (metrics.render)(),
    )
        .into_response()
}

/// How long the longest-waiting due delivery has waited, in seconds: one queued on this
/// node, or one due in the store that no node holds. 0 when nothing waits.
fn backlog_seconds(oldest_due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> f64 {
    oldest_due.map_or(0.0, |due| {
        ((now - due).num_milliseconds().max(0) as f64) / 1000.0
    })
}

/// The route a publish goes to, as its `MatchedPath`.
const PUBLISH: &str = "/api/v1/app/{app_id}/msg";

/// The handles of one (method, route, status): found again by the route's text, so a
/// request allocates nothing to be counted (a lookup by name in the recorder builds the
/// labels each time: 6 % of a publish's CPU in `throughput`).
struct Handles {
    requests: Counter,
    duration: Histogram,
    /// For the publish route: accepted, or refused and why.
    publish: Option<Counter>,
}

type HandleMap = HashMap<(&'static str, u16), HashMap<Box<str>, Handles>>;

static HANDLES: LazyLock<Mutex<HandleMap>> = LazyLock::new(Mutex::default);

/// Counts one API request by its route (the matched pattern, never the path itself, so
/// ids do not become labels), method and status, with its duration; a publish also counts
/// as a message accepted or refused, by why.
pub(crate) fn record_request(
    method: &Method,
    route: Option<&str>,
    status: StatusCode,
    took: Duration,
) {
    let route = route.unwrap_or("unmatched");
    let method = method_label(method);
    let mut handles = HANDLES.lock().unwrap_or_else(|p| p.into_inner());
    let by_route = handles.entry((method, status.as_u16())).or_default();
    if !by_route.contains_key(route) {
        by_route.insert(route.into(), handles_for(method, route, status));
    }
    let found = &by_route[route];
    found.requests.increment(1);
    found.duration.record(took.as_secs_f64());
    if let Some(publish) = &found.publish {
        publish.increment(1);
    }
}

/// A method as a label: any token is a method to HTTP, so others than the standard ones
/// are `other` (a client cannot invent series).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 8] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE",
    ];
    STANDARD
        .into_iter()
        .find(|m| *m == method.as_str())
        .unwrap_or("other")
}

fn handles_for(method: &'static str, route: &str, status: StatusCode) -> Handles {
    let (m, r) = (method.to_owned(), route.to_owned());
    let publish = (method == "POST" && route == PUBLISH).then(|| match refusal(status) {
        None => counter!("herald_messages_accepted_total"),
        Some(reason) => counter!("herald_messages_refused_total", "reason" => reason),
    });
    Handles {
        requests: counter!("herald_http_requests_total", "method" => m.clone(), "route" => r.clone(), "status" => status.as_str().to_owned()),
        duration: histogram!("herald_http_request_duration_seconds", "method" => m, "route" => r),
        publish,
    }
}

/// Every reason `refusal` gives.
const REFUSALS: [&str; 8] = [
    "invalid",
    "unauthorized",
    "not_found",
    "conflict",
    "too_large",
    "unavailable",
    "storage_full",
    "error",
];

/// Registers the publish counters at 0, so dashboards and alerts find them from the start.
pub(crate) fn register() {
    counter!("herald_messages_accepted_total").absolute(0);
    for reason in REFUSALS {
        counter!("herald_messages_refused_total", "reason" => reason).absolute(0);
    }
}

/// Why a publish answered with `status` was refused; `None` if it was accepted.
fn refusal(status: StatusCode) -> Option<&'static str> {
    if status.is_success() {
        return None;
    }
    Some(match status.as_u16() {
        400 | 422 => "invalid",
        401 | 403 => "unauthorized",
        404 => "not_found",
        409 => "conflict",
        413 => "too_large",
        503 => "unavailable",
        507 => "storage_full",
        _ => "error",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_are_one_label() {
        let table = [
            ("GET", "GET"),
            ("PATCH", "PATCH"),
            ("BREW", "other"),
            ("get", "other"),
        ];
        for (method, want) in table {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert_eq!(method_label(&method), want);
        }
    }

    #[test]
    fn the_backlog_is_the_wait_of_the_oldest_due() {
        let now = DateTime::from_timestamp(1_000, 0).unwrap();
        let at = |s| DateTime::from_timestamp(s, 0);
        let table = [
            (None, 0.0),
            (at(1_000), 0.0),
            (at(990), 10.0),
            (at(1_005), 0.0),
        ];
        for (due, want) in table {
            assert_eq!(backlog_seconds(due, now), want, "{due:?}");
        }
    }

    #[test]
    fn a_refusal_is_named_by_its_status() {
        let table = [
            (202, None),
            (200, None),
            (422, Some("invalid")),
            (400, Some("invalid")),
            (401, Some("unauthorized")),
            (404, Some("not_found")),
            (409, Some("conflict")),
            (413, Some("too_large")),
            (503, Some("unavailable")),
            (507, Some("storage_full")),
            (500, Some("error")),
        ];
        for (code, want) in table {
            assert_eq!(refusal(StatusCode::from_u16(code).unwrap()), want, "{code}");
            assert!(want.is_none_or(|w| REFUSALS.contains(&w)), "{code}");
        }
    }
}
