//! Filters and transforms, input → expected result.

use serde_json::{Value, json};

use super::{Filter, Transform};

fn event(payload: Value) -> Value {
    json!({"eventType": "case.updated", "channels": ["eu", "partner-7"], "payload": payload})
}

#[track_caller]
fn check(filter: Value, payload: Value, expect: bool) {
    let compiled = Filter::compile(&filter).unwrap_or_else(|e| panic!("{filter} is valid: {e}"));
    assert_eq!(compiled.matches(&event(payload)), expect, "{filter}");
}

#[track_caller]
fn invalid(filter: Value, location: &[&str], message_part: &str) {
    let err = Filter::compile(&filter).expect_err("invalid");
    assert_eq!(err.location, location, "{err}");
    assert!(err.message.contains(message_part), "{err}");
}

#[test]
fn literal_is_equality() {
    check(
        json!({"payload.status": "final"}),
        json!({"status": "final"}),
        true,
    );
    check(
        json!({"payload.status": "final"}),
        json!({"status": "arrived"}),
        false,
    );
    check(json!({"payload.status": "final"}), json!({}), false);
    check(json!({"payload.n": 1}), json!({"n": 1.0}), true);
    check(json!({"payload.o": {"a": 1}}), json!({"o": {"a": 1}}), true);
    check(json!({"eventType": "case.updated"}), json!({}), true);
}

#[test]
fn the_three_status_conditions_platforms_ask_for() {
    // Only when the new status is `final`.
    let becomes_final = json!({"payload.key": "final"});
    check(
        becomes_final.clone(),
        json!({"key": "final", "prevKey": "arrived"}),
        true,
    );
    check(
        becomes_final,
        json!({"key": "arrived", "prevKey": "new"}),
        false,
    );
    // Only when `arrived` changes to anything else.
    let leaves_arrived = json!({"payload.prevKey": "arrived", "payload.key": {"$neq": "arrived"}});
    check(
        leaves_arrived.clone(),
        json!({"key": "final", "prevKey": "arrived"}),
        true,
    );
    check(
        leaves_arrived.clone(),
        json!({"key": "arrived", "prevKey": "arrived"}),
        false,
    );
    check(
        leaves_arrived,
        json!({"key": "final", "prevKey": "new"}),
        false,
    );
    // Only `arrived` → `final`.
    let transition = json!({"$and": [{"payload.prevKey": "arrived"}, {"payload.key": "final"}]});
    check(
        transition.clone(),
        json!({"key": "final", "prevKey": "arrived"}),
        true,
    );
    check(transition, json!({"key": "final", "prevKey": "new"}), false);
}

#[test]
fn operators() {
    let p = json!({"n": 5, "s": "repair-123", "tags": ["a", "b"], "z": null});
    check(json!({"payload.n": {"$gt": 4, "$lte": 5}}), p.clone(), true);
    check(json!({"payload.n": {"$gte": 6}}), p.clone(), false);
    check(json!({"payload.n": {"$lt": "x"}}), p.clone(), false);
    check(
        json!({"payload.s": {"$in": ["x", "repair-123"]}}),
        p.clone(),
        true,
    );
    check(
        json!({"payload.s": {"$nin": ["repair-123"]}}),
        p.clone(),
        false,
    );
    check(json!({"payload.missing": {"$nin": ["x"]}}), p.clone(), true);
    check(
        json!({"payload.s": {"$regex": "^repair-\\d+$"}}),
        p.clone(),
        true,
    );
    check(
        json!({"payload.s": {"$startsWith": "repair"}}),
        p.clone(),
        true,
    );
    check(json!({"payload.s": {"$endsWith": "124"}}), p.clone(), false);
    check(json!({"payload.z": {"$exist": true}}), p.clone(), true);
    check(
        json!({"payload.missing": {"$exist": false}}),
        p.clone(),
        true,
    );
    check(json!({"payload.tags.1": "b"}), p.clone(), true);
    check(json!({"payload.tags": "a"}), p.clone(), true);
    check(json!({"payload.tags": {"$neq": "c"}}), p.clone(), true);
    check(json!({"channels": "eu"}), p.clone(), true);
    check(json!({"channels": {"$in": ["us"]}}), p.clone(), false);
    check(json!({"payload.s": {"$neq": "x"}}), p, true);
}

#[test]
fn logic() {
    let p = json!({"status": "final", "amount": 10});
    check(
        json!({"$or": [{"payload.status": "new"}, {"payload.amount": {"$gt": 5}}]}),
        p.clone(),
        true,
    );
    check(
        json!({"$not": {"payload.status": "final"}}),
        p.clone(),
        false,
    );
    check(
        json!({"payload.status": "final", "payload.amount": 11}),
        p.clone(),
        false,
    );
    check(json!({}), p, true);
}

#[test]
fn invalid_filters_name_the_path() {
    invalid(
        json!({"payload.s": {"$like": "x"}}),
        &["payload.s", "$like"],
        "unknown operator",
    );
    invalid(
        json!({"payload.s": {"$regex": "("}}),
        &["payload.s", "$regex"],
        "invalid regular expression",
    );
    invalid(
        json!({"payload.s": {"$in": "x"}}),
        &["payload.s", "$in"],
        "list",
    );
    invalid(
        json!({"payload.n": {"$gt": true}}),
        &["payload.n", "$gt"],
        "number or a string",
    );
    invalid(
        json!({"payload.n": {"$exist": "yes"}}),
        &["payload.n", "$exist"],
        "true or false",
    );
    invalid(
        json!({"$or": [{"a": 1}, {"b": {"$x": 1}}]}),
        &["$or", "1", "b", "$x"],
        "unknown operator",
    );
    invalid(json!({"$and": {}}), &["$and"], "list of filters");
    invalid(json!({"$xor": []}), &["$xor"], "unknown logical operator");
    invalid(json!({"payload..s": 1}), &["payload..s"], "dotted path");
    invalid(json!(["a"]), &[], "JSON object");
}

/// The event document of an update, with the entity's previous payload when it had one.
fn update(payload: Value, previous: Option<Value>) -> Value {
    let mut doc = event(payload);
    if let Some(previous) = previous {
        doc["previous"] = previous;
    }
    doc
}

#[test]
fn changed_compares_with_the_previous_snapshot() {
    let status = json!({"$changed": "payload.status"});
    let nested = json!({"$changed": "payload.a.b"});
    for (filter, payload, previous, expect) in [
        // No earlier snapshot: everything is new.
        (&status, json!({"status": "final"}), None, true),
        (&status, json!({"status": "final"}), Some(Value::Null), true),
        (&status, json!({}), None, true),
        (
            &status,
            json!({"status": "final"}),
            Some(json!({"status": "final"})),
            false,
        ),
        (
            &status,
            json!({"status": "final"}),
            Some(json!({"status": "arrived"})),
            true,
        ),
        (
            &status,
            json!({"status": 1}),
            Some(json!({"status": 1.0})),
            true,
        ),
        (
            &status,
            json!({"status": "final", "x": 1}),
            Some(json!({"status": "final", "x": 2})),
            false,
        ),
        // Missing on one side is a change, on both sides is not.
        (&status, json!({"status": "final"}), Some(json!({})), true),
        (&status, json!({}), Some(json!({"status": "final"})), true),
        (&status, json!({"status": null}), Some(json!({})), true),
        (&status, json!({}), Some(json!({})), false),
        (
            &nested,
            json!({"a": {"b": 1, "c": 1}}),
            Some(json!({"a": {"b": 1, "c": 2}})),
            false,
        ),
        (
            &nested,
            json!({"a": {"b": 2}}),
            Some(json!({"a": {"b": 1}})),
            true,
        ),
        (
            &nested,
            json!({"a": {"b": [1, 2]}}),
            Some(json!({"a": {"b": [2, 1]}})),
            true,
        ),
        (
            &nested,
            json!({"a": "flat"}),
            Some(json!({"a": {"b": 1}})),
            true,
        ),
        (&nested, json!({"a": {}}), Some(json!({"a": "flat"})), false),
    ] {
        let compiled = Filter::compile(filter).expect("valid");
        let doc = update(payload, previous);
        assert_eq!(compiled.matches(&doc), expect, "{filter} on {doc}");
    }
}

#[test]
fn changed_combines_like_any_condition() {
    let same = Some(json!({"status": "final", "amount": 10}));
    let moved = Some(json!({"status": "arrived", "amount": 10}));
    let p = || json!({"status": "final", "amount": 10});
    for (filter, previous, expect) in [
        (json!({"$not": {"$changed": "payload.status"}}), &same, true),
        (
            json!({"$not": {"$changed": "payload.status"}}),
            &moved,
            false,
        ),
        (
            json!({"$not": {"$changed": "payload.status"}}),
            &None,
            false,
        ),
        // Became final: changed, and final now.
        (
            json!({"$changed": "payload.status", "payload.status": "final"}),
            &moved,
            true,
        ),
        (
            json!({"$changed": "payload.status", "payload.status": "final"}),
            &same,
            false,
        ),
        (
            json!({"$and": [{"$changed": "payload.status"}, {"previous.status": "arrived"}]}),
            &moved,
            true,
        ),
        (
            json!({"$and": [{"$changed": "payload.status"}, {"payload.amount": {"$gt": 10}}]}),
            &moved,
            false,
        ),
        (
            json!({"$or": [{"$changed": "payload.status"}, {"$changed": "payload.amount"}]}),
            &same,
            false,
        ),
        (
            json!({"$or": [{"$changed": "payload.status"}, {"$changed": "payload.amount"}]}),
            &moved,
            true,
        ),
    ] {
        let compiled = Filter::compile(&filter).expect("valid");
        let doc = update(p(), previous.clone());
        assert_eq!(compiled.matches(&doc), expect, "{filter} on {doc}");
    }
}

#[test]
fn invalid_changed_names_the_operator() {
    let expected = "dotted path inside the payload";
    invalid(json!({"$changed": 1}), &["$changed"], expected);
    invalid(
        json!({"$changed": ["payload.status"]}),
        &["$changed"],
        expected,
    );
    invalid(json!({"$changed": ""}), &["$changed"], expected);
    invalid(json!({"$changed": "payload"}), &["$changed"], expected);
    invalid(json!({"$changed": "payload."}), &["$changed"], expected);
    invalid(
        json!({"$changed": "payload..status"}),
        &["$changed"],
        expected,
    );
    invalid(json!({"$changed": "status"}), &["$changed"], expected);
    invalid(
        json!({"$changed": "previous.status"}),
        &["$changed"],
        expected,
    );
    invalid(
        json!({"$and": [{"$changed": "eventType"}]}),
        &["$and", "0", "$changed"],
        expected,
    );
    invalid(
        json!({"$not": {"$or": [{"a": 1}, {"$changed": "payload"}]}}),
        &["$not", "$or", "1", "$changed"],
        expected,
    );
}

#[track_caller]
fn transformed(spec: Value, payload: Value, expect: Value) {
    let t = Transform::compile(&spec).unwrap_or_else(|e| panic!("{spec} is valid: {e}"));
    let mut doc = event(payload);
    t.apply(&mut doc);
    assert_eq!(doc["payload"], expect, "{spec}");
}

#[test]
fn transforms_map_set_and_remove() {
    let spec = json!({
        "map": {"payload.key": {"repaired": "final", "closed": "final"}, "payload.code": {"7": "seven"}},
        "set": {"payload.prevKey": {"from": "payload.old"}, "payload.meta.source": {"value": "herald"}, "payload.kind": {"from": "eventType"}},
        "remove": ["payload.old", "payload.secret"]
    });
    transformed(
        spec.clone(),
        json!({"key": "repaired", "code": 7, "old": "arrived", "secret": "x", "keep": 1}),
        json!({"key": "final", "code": "seven", "prevKey": "arrived", "meta": {"source": "herald"}, "kind": "case.updated", "keep": 1}),
    );
    // Unmapped values pass through; a missing source is not set.
    transformed(
        spec,
        json!({"key": "open"}),
        json!({"key": "open", "meta": {"source": "herald"}, "kind": "case.updated"}),
    );
}

#[test]
fn mapping_then_block_list_filter() {
    let t = Transform::compile(
        &json!({"map": {"payload.key": {"repaired": "final", "scrapped": "cancelled"}}}),
    )
    .unwrap();
    let blocked =
        Filter::compile(&json!({"payload.key": {"$nin": ["cancelled", "internal"]}})).unwrap();
    for (status, delivered) in [
        ("repaired", true),
        ("scrapped", false),
        ("internal", false),
        ("new", true),
    ] {
        let mut doc = event(json!({"key": status}));
        t.apply(&mut doc);
        assert_eq!(blocked.matches(&doc), delivered, "{status}");
    }
}

#[test]
fn invalid_transforms_name_the_path() {
    let bad = |spec: Value, location: &[&str]| {
        let err = Transform::compile(&spec).expect_err("invalid");
        assert_eq!(err.location, location, "{err}");
    };
    bad(json!({"rename": {}}), &["rename"]);
    bad(
        json!({"map": {"payload.key": "final"}}),
        &["map", "payload.key"],
    );
    bad(json!({"map": {"eventType": {}}}), &["map", "eventType"]);
    bad(
        json!({"set": {"payload.a": {"value": 1, "from": "x"}}}),
        &["set", "payload.a"],
    );
    bad(
        json!({"set": {"payload.a": {"from": "x..y"}}}),
        &["set", "payload.a", "from"],
    );
    bad(json!({"remove": ["payload.a", 3]}), &["remove", "1"]);
    bad(json!("x"), &[]);
}
