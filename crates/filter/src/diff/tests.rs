//! Payload diffs, previous and current snapshot → expected body.

use serde_json::{Value, json};

use super::Diff;

fn keep(paths: &[&str]) -> Diff {
    let paths: Vec<String> = paths.iter().map(|p| (*p).to_owned()).collect();
    Diff::compile(&paths).unwrap_or_else(|e| panic!("{paths:?} is valid: {e}"))
}

#[track_caller]
fn check(diff: &Diff, previous: Value, current: Value, expect: Option<Value>) {
    let got = diff.apply(&previous, &current);
    assert_eq!(got, expect, "{previous} → {current}");
}

/// A repair case as the platform sends it.
fn case() -> Value {
    json!({
        "guid": "989d0f73",
        "status": "arrived",
        "orderData": {"refNo": "OLD", "serial": "S1", "date": "2024-01-01"},
        "productData": {"model": "Model S", "accessory": ["1170"], "brand": "Tesla"},
        "consumer": {"firstName": "Elon", "lastName": "Musk", "phone": "123"},
        "sender": {"address": "Somestreet, 123"}
    })
}

#[test]
fn case_update_sends_only_changes_and_the_guid() {
    let current = json!({
        "guid": "989d0f73",
        "status": "arrived",
        "orderData": {"refNo": "REF", "date": "2024-01-01"},
        "productData": {"model": "Tesla Cybertruck", "accessory": ["1180"], "brand": "Tesla"},
        "consumer": {"firstName": "Elon", "lastName": "Musk", "phone": "123"},
        "repairData": {"fault": "screen"}
    });
    check(
        &keep(&["guid"]),
        case(),
        current,
        Some(json!({
            "guid": "989d0f73",
            "orderData": {"refNo": "REF", "serial": null},
            "productData": {"model": "Tesla Cybertruck", "accessory": ["1180"]},
            "sender": null,
            "repairData": {"fault": "screen"}
        })),
    );
}

#[test]
fn nothing_changed_is_none() {
    check(&keep(&["guid"]), case(), case(), None);
    check(&keep(&[]), case(), case(), None);
    check(
        &keep(&["guid"]),
        json!({"guid": "g"}),
        json!({"guid": "g"}),
        None,
    );
    check(&keep(&[]), json!({}), json!({}), None);
    // A kept key that changed is a change like any other.
    check(
        &keep(&["guid"]),
        json!({"guid": "g"}),
        json!({"guid": "h"}),
        Some(json!({"guid": "h"})),
    );
}

#[test]
fn arrays_are_one_value() {
    check(
        &keep(&[]),
        json!({"tags": ["a", "b"], "n": 1}),
        json!({"tags": ["b", "a"], "n": 1}),
        Some(json!({"tags": ["b", "a"]})),
    );
    check(
        &keep(&[]),
        json!({"items": [{"id": 1, "q": 1}]}),
        json!({"items": [{"id": 1, "q": 2}]}),
        Some(json!({"items": [{"id": 1, "q": 2}]})),
    );
    check(&keep(&[]), json!({"tags": []}), json!({"tags": []}), None);
}

#[test]
fn new_objects_and_type_changes_are_sent_whole() {
    check(
        &keep(&[]),
        json!({"a": 1}),
        json!({"a": 1, "repairData": {"fault": "screen", "parts": {"n": 2}}}),
        Some(json!({"repairData": {"fault": "screen", "parts": {"n": 2}}})),
    );
    check(
        &keep(&[]),
        json!({"sender": {"address": "Somestreet, 123"}}),
        json!({"sender": "pickup"}),
        Some(json!({"sender": "pickup"})),
    );
    check(
        &keep(&[]),
        json!({"sender": "pickup"}),
        json!({"sender": {"address": "Somestreet, 123"}}),
        Some(json!({"sender": {"address": "Somestreet, 123"}})),
    );
    check(
        &keep(&[]),
        json!({"x": {"a": 1}}),
        json!({"x": [{"a": 1}]}),
        Some(json!({"x": [{"a": 1}]})),
    );
    // An object emptied: its removed keys are sent as null.
    check(
        &keep(&[]),
        json!({"x": {"a": 1}}),
        json!({"x": {}}),
        Some(json!({"x": {"a": null}})),
    );
}

#[test]
fn deep_changes_keep_only_the_changed_branch() {
    check(
        &keep(&[]),
        json!({"a": {"b": {"c": 1, "d": 2}, "e": {"f": 3}}}),
        json!({"a": {"b": {"c": 1, "d": 5}, "e": {"f": 3}}}),
        Some(json!({"a": {"b": {"d": 5}}})),
    );
}

#[test]
fn kept_paths() {
    let diff = keep(&["guid", "orderData.id"]);
    // Nested keep path: orderData appears for its id alone.
    check(
        &diff,
        json!({"guid": "g", "status": "arrived", "orderData": {"id": 7, "refNo": "R"}}),
        json!({"guid": "g", "status": "final", "orderData": {"id": 7, "refNo": "R"}}),
        Some(json!({"guid": "g", "status": "final", "orderData": {"id": 7}})),
    );
    // Alongside changes in the same object.
    check(
        &diff,
        json!({"guid": "g", "orderData": {"id": 7, "refNo": "R"}}),
        json!({"guid": "g", "orderData": {"id": 7, "refNo": "S"}}),
        Some(json!({"guid": "g", "orderData": {"id": 7, "refNo": "S"}})),
    );
    // Missing from the current payload, or through a non-object: skipped.
    check(
        &diff,
        json!({"status": "arrived", "orderData": "none"}),
        json!({"status": "final", "orderData": "none"}),
        Some(json!({"status": "final"})),
    );
    // Kept alone are no change.
    check(
        &diff,
        json!({"guid": "g", "orderData": {"id": 7}}),
        json!({"guid": "g", "orderData": {"id": 7}}),
        None,
    );
    // A kept object is sent whole, and wins over a longer path through it.
    check(
        &keep(&["orderData", "orderData.id"]),
        json!({"orderData": {"id": 7, "refNo": "R"}, "status": "arrived"}),
        json!({"orderData": {"id": 7, "refNo": "R"}, "status": "final"}),
        Some(json!({"orderData": {"id": 7, "refNo": "R"}, "status": "final"})),
    );
}

#[test]
fn numbers_and_nulls() {
    check(
        &keep(&[]),
        json!({"n": 5, "f": 2.5}),
        json!({"n": 5, "f": 2.5}),
        None,
    );
    check(
        &keep(&[]),
        json!({"n": 5}),
        json!({"n": 6}),
        Some(json!({"n": 6})),
    );
    // Different JSON for the same number is a change.
    check(
        &keep(&[]),
        json!({"n": 1}),
        json!({"n": 1.0}),
        Some(json!({"n": 1.0})),
    );
    check(&keep(&[]), json!({"x": null}), json!({"x": null}), None);
    // Removed, though it was null: a removal is sent as null.
    check(
        &keep(&[]),
        json!({"x": null}),
        json!({}),
        Some(json!({"x": null})),
    );
    // A new key whose value is null.
    check(
        &keep(&[]),
        json!({}),
        json!({"x": null}),
        Some(json!({"x": null})),
    );
    check(
        &keep(&[]),
        json!({"x": 1}),
        json!({"x": null}),
        Some(json!({"x": null})),
    );
}

#[test]
fn non_object_snapshots_compare_whole() {
    let diff = keep(&["guid"]);
    check(&diff, json!("a"), json!("a"), None);
    check(&diff, json!(null), json!(null), None);
    check(&diff, json!([1]), json!([1, 2]), Some(json!([1, 2])));
    check(
        &diff,
        json!(null),
        json!({"guid": "g"}),
        Some(json!({"guid": "g"})),
    );
    check(
        &diff,
        json!({"guid": "g"}),
        json!("gone"),
        Some(json!("gone")),
    );
}

#[test]
fn invalid_keep_paths_name_the_index() {
    let bad = |paths: Vec<String>, location: &str, message_part: &str| {
        let err = Diff::compile(&paths).expect_err("invalid");
        assert_eq!(err.location, [location], "{err}");
        assert!(err.message.contains(message_part), "{err}");
    };
    let owned = |paths: &[&str]| paths.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>();
    bad(owned(&["guid", ""]), "1", "dotted path");
    bad(owned(&["a..b"]), "0", "dotted path");
    bad(owned(&["guid", "orderData."]), "1", "dotted path");
    bad(owned(&[".guid"]), "0", "dotted path");
    let many: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
    bad(many, "32", "at most 32");
    let enough: Vec<String> = (0..32).map(|i| format!("k{i}")).collect();
    assert!(Diff::compile(&enough).is_ok());
}
