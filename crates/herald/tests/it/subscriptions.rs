//! Endpoint options beyond Svix: name, HTTP method, the standard envelope, origin
//! exclusion, and credentials in the URL (used, never shown), each checked at a real
//! receiver.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Herald, Receiver, WAIT, verify};

#[tokio::test]
async fn each_method_arrives_as_documented() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    let mut secrets = Vec::new();
    for method in ["PUT", "PATCH", "DELETE", "GET"] {
        let path = format!("/{}", method.to_lowercase());
        let ep = herald
            .endpoint(&app, json!({"url": receiver.url(&path), "method": method, "name": format!("{method} hook")}))
            .await;
        assert_eq!(
            (ep["method"].as_str(), ep["name"].as_str()),
            (Some(method), Some(format!("{method} hook").as_str()))
        );
        let secret = herald.secret(&app, &ep).await;
        secrets.push((path, method, secret));
    }
    let raw = r#"{"status": "final", "n": 1}"#;
    let body: Value = serde_json::from_str(raw).unwrap();
    herald
        .publish(&app, json!({"eventType": "case.status", "payload": body}))
        .await;
    for (path, method, secret) in secrets {
        let got = receiver.wait_for(&path, 1, WAIT).await;
        let r = &got[0];
        assert_eq!(r.method.as_str(), method);
        if method == "GET" {
            // No body: the signed payload is in the `payload` query parameter.
            assert!(r.body.is_empty());
            let payload: String = url::form_urlencoded::parse(r.query.as_bytes())
                .find(|(k, _)| k == "payload")
                .map(|(_, v)| v.into_owned())
                .expect("payload parameter");
            let mut signed = r.clone();
            signed.body = payload.into_bytes().into();
            assert!(verify(&signed, &secret), "GET payload verifies");
            assert_eq!(signed.json(), json!({"status": "final", "n": 1}));
        } else {
            assert_eq!(
                r.body.as_ref(),
                serde_json::to_vec(&body).unwrap().as_slice()
            );
            assert_eq!(r.header("content-type"), "application/json");
            assert!(verify(r, &secret));
        }
    }
    let (status, err) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://example.com/", "method": "TRACE"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["detail"][0]["loc"], json!(["body", "method"]), "{err}");
}

#[tokio::test]
async fn standard_envelope_wraps_the_payload_and_is_what_is_signed() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(
            &app,
            json!({"url": receiver.url("/env"), "envelope": "standard"}),
        )
        .await;
    assert_eq!(ep["envelope"], "standard");
    let secret = herald.secret(&app, &ep).await;
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"id": "o-1", "total": 12.5}}),
        )
        .await;
    let got = receiver.wait_for("/env", 1, WAIT).await;
    let body = got[0].json();
    assert_eq!(body["id"], msg["id"]);
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"], json!({"id": "o-1", "total": 12.5}));
    let created = body["created"].as_i64().expect("created is unix seconds");
    let published =
        chrono::DateTime::parse_from_rfc3339(msg["timestamp"].as_str().unwrap()).unwrap();
    assert_eq!(created, published.timestamp());
    assert_eq!(body["entity"], serde_json::Value::Null, "no entityId: null");
    assert_eq!(body.as_object().unwrap().len(), 5);
    assert!(
        verify(&got[0], &secret),
        "the signature covers the envelope"
    );

    // With an entityId, the envelope names it, as the platforms' own envelopes do.
    let about = herald
        .publish(
            &app,
            json!({"eventType": "order.updated", "entityId": "order-77", "payload": {"id": "order-77", "status": "paid"}}),
        )
        .await;
    let got = receiver.wait_for("/env", 2, WAIT).await;
    let body = got[1].json();
    assert_eq!(body["id"], about["id"]);
    assert_eq!(body["entity"], "order-77");
    assert_eq!(body["data"], json!({"id": "order-77", "status": "paid"}));
    assert!(verify(&got[1], &secret));
}

#[tokio::test]
async fn a_message_is_not_echoed_to_the_party_it_came_from() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/a"), "party": "acct-a"}))
        .await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/b"), "party": "acct-b"}))
        .await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/platform")}))
        .await;
    let from_a = herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "payload": {"n": 1}, "origin": "acct-a"}),
        )
        .await;
    assert_eq!(from_a["origin"], "acct-a");
    let from_b = herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "payload": {"n": 2}, "origin": "acct-b"}),
        )
        .await;
    herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "payload": {"n": 3}}),
        )
        .await;
    assert_eq!(herald.destinations(&app, &from_a).await, ["b", "platform"]);
    assert_eq!(herald.destinations(&app, &from_b).await, ["a", "platform"]);
    receiver.wait_for("/platform", 3, WAIT).await;
    let a: Vec<i64> = receiver
        .wait_for("/a", 2, WAIT)
        .await
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    assert!(
        !a.contains(&1),
        "acct-a never receives its own event: {a:?}"
    );
}

#[tokio::test]
async fn mapping_then_block_list_delivers_partner_statuses_only() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(
            &app,
            json!({
                "url": receiver.url("/partner"),
                "transform": {
                    "map": {"payload.key": {"repaired": "final", "scrapped": "cancelled", "in_repair": "arrived"}},
                    "set": {"payload.source": {"value": "provider-x"}},
                    "remove": ["payload.internalNote"]
                },
                "filter": {"payload.key": {"$nin": ["cancelled", "internal"]}}
            }),
        )
        .await;
    let secret = herald.secret(&app, &ep).await;
    let statuses = ["in_repair", "scrapped", "internal", "repaired", "new"];
    for (i, key) in statuses.iter().enumerate() {
        herald
            .publish(&app, json!({"eventType": "case.status", "payload": {"guid": format!("c-{i}"), "key": key, "internalNote": "do not share"}}))
            .await;
    }
    let got = receiver.wait_for("/partner", 3, WAIT).await;
    let mut keys: Vec<String> = got
        .iter()
        .map(|r| r.json()["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["arrived", "final", "new"],
        "mapped values arrive; blocked ones never do"
    );
    for r in &got {
        let body = r.json();
        assert_eq!(body["source"], "provider-x");
        assert!(body.get("internalNote").is_none());
        assert!(
            verify(r, &secret),
            "the signature covers the transformed body"
        );
    }
    // Exactly three deliveries exist: the blocked ones were never created.
    let listed = herald
        .get(&format!(
            "/api/v1/app/{app}/endpoint/{}/msg",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 3);

    // The test route applies the transform before the filter.
    let out = herald
        .post(
            &format!(
                "/api/v1/app/{app}/endpoint/{}/filter/test",
                ep["id"].as_str().unwrap()
            ),
            json!({"eventType": "case.status", "payload": {"key": "scrapped"}}),
        )
        .await;
    assert_eq!(
        (
            out["matches"].as_bool(),
            out["event"]["payload"]["key"].as_str()
        ),
        (Some(false), Some("cancelled"))
    );
    let (status, err) = herald
        .call(
            Method::PATCH,
            &format!("/api/v1/app/{app}/endpoint/{}", ep["id"].as_str().unwrap()),
            Some(json!({"transform": {"map": {"eventType": {}}}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        err["detail"][0]["loc"],
        json!(["body", "transform", "map", "eventType"])
    );
}

#[tokio::test]
async fn url_credentials_are_used_but_never_shown() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("basic-auth").await;
    let url = receiver
        .url("/hook")
        .replace("http://", "http://partner:Sw0rdfish@");
    let ep = herald.endpoint(&app, json!({"url": url})).await;
    let shown = ep["url"].as_str().unwrap().to_owned();
    assert!(shown.starts_with("http://partner:***@"), "{shown}");
    let msg = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 1}}))
        .await;
    let got = receiver.wait_for("/hook", 1, WAIT).await;
    // user:password in the URL is sent as HTTP Basic authentication.
    assert_eq!(
        got[0].header("authorization"),
        "Basic cGFydG5lcjpTdzByZGZpc2g="
    );

    // Every view of the endpoint and its attempts shows the masked URL only.
    let msg_id = msg["id"].as_str().unwrap();
    let ep_id = ep["id"].as_str().unwrap();
    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    for view in [
        herald
            .get(&format!("/api/v1/app/{app}/endpoint/{ep_id}"))
            .await,
        herald.get(&format!("/api/v1/app/{app}/endpoint")).await,
        herald
            .get(&format!("/api/v1/app/{app}/msg/{msg_id}/endpoint"))
            .await,
        attempts,
    ] {
        let text = view.to_string();
        assert!(!text.contains("Sw0rdfish"), "{text}");
        assert!(text.contains("partner:***@"), "{text}");
    }

    // Writing it back as read keeps the real password.
    let path = format!("/api/v1/app/{app}/endpoint/{ep_id}");
    let (status, body) = herald
        .call(
            Method::PATCH,
            &path,
            Some(json!({"url": shown, "description": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 2}}))
        .await;
    let got = receiver.wait_for("/hook", 2, WAIT).await;
    assert_eq!(
        got[1].header("authorization"),
        "Basic cGFydG5lcjpTdzByZGZpc2g="
    );

    // An endpoint's own Authorization header takes precedence over the URL's credentials.
    let (status, body) = herald
        .call(
            Method::PUT,
            &format!("{path}/headers"),
            Some(json!({"headers": {"Authorization": "Bearer tok-1"}})),
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 3}}))
        .await;
    let got = receiver.wait_for("/hook", 3, WAIT).await;
    assert!(
        got.iter()
            .any(|r| r.header("authorization") == "Bearer tok-1"),
        "the endpoint's header was not sent"
    );
}
