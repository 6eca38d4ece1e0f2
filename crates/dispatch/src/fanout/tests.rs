//! Fan-out rules, one line each: which endpoint a message reaches.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use model::{AppId, Endpoint, EndpointId, Message, MessageId, Secret};

use super::fanout;

fn endpoint(types: Option<&[&str]>, channels: Option<&[&str]>, disabled: bool) -> Endpoint {
    let list = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
    Endpoint {
        id: EndpointId::generate(),
        app_id: AppId::from_string("app_x".into()),
        uid: None,
        url: "http://127.0.0.1/".into(),
        description: String::new(),
        version: 1,
        rate_limit: None,
        disabled,
        filter_types: list(types),
        channels: list(channels),
        metadata: BTreeMap::new(),
        headers: BTreeMap::new(),
        filter: None,
        transform: None,
        name: None,
        method: model::Method::Post,
        envelope: model::Envelope::Raw,
        party: None,
        payload_mode: model::PayloadMode::Full,
        diff_keep: Vec::new(),
        secret: Secret::from_string(String::new()),
        retired_secrets: vec![],
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn message(event_type: &str, channels: Option<&[&str]>) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: AppId::from_string("app_x".into()),
        event_id: None,
        event_type: event_type.into(),
        payload: Arc::from("{}"),
        channels: channels.map(|v| v.iter().map(|s| s.to_string()).collect()),
        tags: None,
        origin: None,
        entity: None,
        previous: None,
        created_at: Utc::now(),
    }
}

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
