//! Event types as contracts: with `enforceSchema`, a publish whose payload breaks the
//! event type's latest schema is refused with 422, located in the payload, and nothing is
//! stored. The schema is written from the fields of a business-process webhook as a
//! platform documents it (required fields, enums, types, arrays of objects).

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Herald, Receiver, WAIT};

/// The schema of a business-process webhook, written from the fields a platform documents
/// (shared with the benchmark's `schema` scenario).
fn business_process_schema() -> Value {
    serde_json::from_str(include_str!(
        "../../../../tests/fixtures/business-process.schema.json"
    ))
    .unwrap()
}

fn valid() -> Value {
    json!({
        "id": "0b6c2f4e-8d1a-4c3e-9f00-5a7e2b1c9d10",
        "blueprintName": "device-return",
        "partnerId": "partner-1",
        "merchantId": "AVID-42",
        "customerId": "cus-7",
        "status": "in_progress",
        "expiresAt": "2026-12-31T23:59:59Z",
        "version": 3,
        "actions": [{"type": "acknowledgement"}],
        "addresses": [{"type": "email", "value": "ada@example.com"}]
    })
}

/// `valid()` with `change` applied to its fields (`null` removes one).
fn with(change: Value) -> Value {
    let mut payload = valid();
    for (key, value) in change.as_object().unwrap() {
        if value.is_null() {
            payload.as_object_mut().unwrap().remove(key);
        } else {
            payload[key] = value.clone();
        }
    }
    payload
}

#[tokio::test]
async fn an_enforced_schema_refuses_what_breaks_it_and_stores_nothing() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("engine").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/bp")}))
        .await;
    let created = herald
        .post(
            "/api/v1/event-type",
            json!({"name": "business_processes.update", "description": "A business process changed",
                   "schemas": {"1": business_process_schema()}, "enforceSchema": true}),
        )
        .await;
    assert_eq!(created["enforceSchema"], true);
    let listed = herald.get("/api/v1/event-type").await;
    assert_eq!(listed["data"][0]["enforceSchema"], true);
    let msg_path = format!("/api/v1/app/{app}/msg");
    let publish = |payload: Value| {
        let herald = &herald;
        let path = msg_path.clone();
        async move {
            herald
                .call(
                    Method::POST,
                    &path,
                    Some(json!({"eventType": "business_processes.update", "payload": payload})),
                )
                .await
        }
    };

    let (status, first) = publish(valid()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");

    // (payload, where the problem is, what the message says)
    let refused = [
        (
            with(json!({"customerId": null})),
            vec!["customerId"],
            "required",
        ),
        (
            with(json!({"status": "done"})),
            vec!["status"],
            "is not one of",
        ),
        (
            with(json!({"version": "3"})),
            vec!["version"],
            "is not of type",
        ),
        (
            with(json!({"actions": {"type": "x"}})),
            vec!["actions"],
            "is not of type",
        ),
        (
            with(json!({"addresses": [{"type": "fax", "value": "1"}]})),
            vec!["addresses", "0", "type"],
            "is not one of",
        ),
    ];
    for (payload, at, says) in &refused {
        let (status, err) = publish(payload.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{payload}: {err}");
        let mut loc = vec!["body", "payload"];
        loc.extend(at.iter());
        assert_eq!(err["detail"][0]["loc"], json!(loc), "{err}");
        assert!(
            err["detail"][0]["msg"].as_str().unwrap().contains(says),
            "{err}"
        );
    }
    // Two problems at once: both reported.
    let (_, err) = publish(with(json!({"status": "done", "merchantId": null}))).await;
    assert_eq!(err["detail"].as_array().unwrap().len(), 2, "{err}");

    // Nothing of the refused publishes was stored or sent: the one message in the log is
    // the valid one, and a later valid one arrives second.
    let (_, second) = publish(valid()).await;
    let got = receiver.wait_for("/bp", 2, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), first["id"].as_str().unwrap());
    assert_eq!(got[1].header("webhook-id"), second["id"].as_str().unwrap());
    let log = herald.get(&msg_path).await;
    assert_eq!(log["data"].as_array().unwrap().len(), 2, "{log}");

    // The flag off: the same payloads are accepted.
    let patched = herald
        .call(
            Method::PATCH,
            "/api/v1/event-type/business_processes.update",
            Some(json!({"enforceSchema": false})),
        )
        .await;
    assert_eq!(patched.0, StatusCode::OK, "{}", patched.1);
    assert_eq!(patched.1["enforceSchema"], false);
    for (payload, _, _) in &refused {
        let (status, err) = publish(payload.clone()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{payload}: {err}");
    }
    // On again through PUT without the field: PUT keeps it as it was (off).
    let (status, kept) = herald
        .call(
            Method::PUT,
            "/api/v1/event-type/business_processes.update",
            Some(json!({"description": "Changed", "schemas": {"1": business_process_schema()}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{kept}");
    assert_eq!(kept["enforceSchema"], false);
}

#[tokio::test]
async fn a_schema_that_is_not_json_schema_is_refused_where_it_is_wrong() {
    let herald = Herald::start().await;
    for (body, loc, says) in [
        (
            json!({"name": "a.b", "description": "x", "schemas": {"1": {"type": "objekt"}}}),
            json!(["body", "schemas", "1", "type"]),
            "is not a valid JSON Schema",
        ),
        (
            json!({"name": "a.b", "description": "x",
                   "schemas": {"1": {"properties": {"n": {"minimum": "zero"}}}}}),
            json!(["body", "schemas", "1", "properties", "n", "minimum"]),
            "is not a valid JSON Schema",
        ),
        (
            json!({"name": "a.b", "description": "x", "enforceSchema": true}),
            json!(["body", "enforceSchema"]),
            "needs a schema",
        ),
    ] {
        let (status, err) = herald
            .call(Method::POST, "/api/v1/event-type", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["detail"][0]["loc"], loc, "{err}");
        assert!(
            err["detail"][0]["msg"].as_str().unwrap().contains(says),
            "{err}"
        );
        let (status, _) = herald
            .call(Method::GET, "/api/v1/event-type/a.b", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    }
    // Enforcing on an event type without a schema, by PATCH, is refused too.
    herald
        .post(
            "/api/v1/event-type",
            json!({"name": "c.d", "description": "x"}),
        )
        .await;
    let (status, err) = herald
        .call(
            Method::PATCH,
            "/api/v1/event-type/c.d",
            Some(json!({"enforceSchema": true})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "enforceSchema"]));
    assert_eq!(
        herald.get("/api/v1/event-type/c.d").await["enforceSchema"],
        false
    );
}
