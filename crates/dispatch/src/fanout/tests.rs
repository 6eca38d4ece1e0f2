//! Fan-out rules, one line each: which endpoint a message reaches.

use model::{Endpoint, Message};

use super::fanout;
use crate::testing::{endpoint, message};

#[track_caller]
fn check(endpoint: Endpoint, msg: Message, expect: bool) {
    let eps = [endpoint];
    assert_eq!(fanout(&eps, &msg, |_| true).len() == 1, expect);
}

#[test]
fn no_filter_receives_everything() {
    check(endpoint(None, None, false), message("a", None), true);
    check(
        endpoint(None, None, false),
        message("a", Some(&["eu"])),
        true,
    );
}

#[test]
fn event_types_must_match() {
    check(
        endpoint(Some(&["a", "b"]), None, false),
        message("b", None),
        true,
    );
    check(
        endpoint(Some(&["a"]), None, false),
        message("c", None),
        false,
    );
}

#[test]
fn channels_must_intersect_when_the_endpoint_names_any() {
    check(
        endpoint(None, Some(&["eu"]), false),
        message("a", Some(&["us", "eu"])),
        true,
    );
    check(
        endpoint(None, Some(&["eu"]), false),
        message("a", Some(&["us"])),
        false,
    );
    check(
        endpoint(None, Some(&["eu"]), false),
        message("a", None),
        false,
    );
}

#[test]
fn the_filter_decides_last() {
    let eps = [endpoint(None, None, false)];
    assert!(fanout(&eps, &message("a", None), |_| false).is_empty());
}

#[test]
fn disabled_endpoints_receive_nothing() {
    check(endpoint(None, None, true), message("a", None), false);
}
