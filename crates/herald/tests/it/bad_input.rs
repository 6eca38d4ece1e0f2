//! Bad input gets the exact status and error shape, and nothing is stored.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Herald, TOKEN};

fn assert_validation(body: &Value, loc: &[&str]) {
    let detail = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("422 detail is a list: {body}"));
    let expected: Vec<Value> = loc.iter().map(|s| json!(s)).collect();
    assert!(
        detail.iter().any(|d| d["loc"].as_array() == Some(&expected)
            && d["msg"].is_string()
            && d["type"].is_string()),
        "no error at {loc:?} in {body}"
    );
}

#[tokio::test]
async fn bad_inputs_get_specific_errors() {
    let herald = Herald::start_with(&["--max-payload-bytes", "1000"]).await;
    let app = herald.app("acme").await;

    // Bad token, missing token.
    for token in [Some("wrong"), None] {
        let (status, body) = herald
            .call_as(Method::GET, "/api/v1/app", None, token, &[])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"code": "authentication_failed", "detail": "Incorrect authentication credentials."})
        );
    }

    // Bad URL, bad secret, bad header.
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "not a url"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "url"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "ftp://x.example/"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "url"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://x.example/", "secret": "whsec_short"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "secret"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://x.example/", "headers": {"X-A": "a\r\nInjected: 1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "headers", "X-A"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://x.example/", "headers": {"webhook-signature": "forged"}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "headers", "webhook-signature"]);
    // Wrong type names the field.
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": "https://x.example/", "disabled": "yes"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "disabled"]);
    assert!(
        herald.get(&format!("/api/v1/app/{app}/endpoint")).await["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // Unknown app.
    let (status, body) = herald
        .call(
            Method::POST,
            "/api/v1/app/nope/msg",
            Some(json!({"eventType": "a", "payload": {}})),
        )
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::NOT_FOUND,
            json!({"code": "not_found", "detail": "Entity not found"})
        )
    );

    // Oversize payload.
    let big = "x".repeat(2000);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "a", "payload": {"big": big}})),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["code"], "payload_too_large");
    let huge = "x".repeat(200_000);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "a", "payload": {"big": huge}})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("payload_too_large"))
    );

    // Malformed JSON, a payload that is not an object, a bad event type.
    let response = crate::support::http_client()
        .post(herald.url(&format!("/api/v1/app/{app}/msg")))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(r#"{"eventType": "a", "payload": {"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["detail"][0]["type"], "value_error.jsondecode");
    // JSON that filters, transforms and diffs could not read (they saw `null`, and an
    // endpoint with a transform was sent `null`): a number past f64, nesting past 128.
    let deep = |levels: usize| format!("{}1{}", r#"{"a":"#.repeat(levels), "}".repeat(levels));
    let other = herald.app("readable").await;
    for (payload, accepted) in [
        (r#"{"x": 1e999}"#.to_owned(), false),
        (r#"{"x": -1e400}"#.to_owned(), false),
        (deep(200), false),
        (
            r#"{"x": 1e308, "y": 18446744073709551615}"#.to_owned(),
            true,
        ),
        (deep(100), true),
    ] {
        let to = if accepted { &other } else { &app };
        let response = crate::support::http_client()
            .post(herald.url(&format!("/api/v1/app/{to}/msg")))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"eventType": "a.b", "payload": {payload}}}"#))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        if accepted {
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        } else {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_validation(&body, &["body", "payload"]);
        }
    }
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "a", "payload": [1]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "payload"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "a b!", "payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["body", "eventType"]);
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("eventType"),
        "{body}"
    );
    assert!(
        herald.get(&format!("/api/v1/app/{app}/msg")).await["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // The filter test takes what publish takes: a payload, and a previous snapshot, that is
    // a JSON object (Schemathesis sent `"payload": false` and got a 200 whose `body` was
    // `false`, against the documented schema).
    let endpoint = herald
        .endpoint(&app, json!({"url": "http://127.0.0.1:9/unused"}))
        .await;
    let test = format!(
        "/api/v1/app/{app}/endpoint/{}/filter/test",
        endpoint["id"].as_str().unwrap()
    );
    for (sample, field) in [
        (json!({"eventType": "a.b", "payload": false}), "payload"),
        (json!({"eventType": "a.b", "payload": [1]}), "payload"),
        (
            json!({"eventType": "a.b", "payload": {}, "previous": "x"}),
            "previous",
        ),
    ] {
        let (status, body) = herald.call(Method::POST, &test, Some(sample)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_validation(&body, &["body", field]);
    }

    // Bad paging and unknown routes answer in JSON too.
    let (status, body) = herald
        .call(Method::GET, "/api/v1/app?limit=1000", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_validation(&body, &["query", "limit"]);
    let (status, body) = herald.call(Method::GET, "/api/v1/nothing-here", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    // So does a path parameter that is not UTF-8 once decoded (it got axum's plain-text 400).
    for path in [
        "/api/v1/app/%FF%FE".to_owned(),
        format!("/api/v1/app/{app}/endpoint/%C3%28"),
        "/api/v1/event-type/%80".to_owned(),
    ] {
        let (status, body) = herald.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert_validation(&body, &["path"]);
    }
}
