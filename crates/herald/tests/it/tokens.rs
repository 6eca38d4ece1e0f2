//! Application tokens (Svix's app-portal access): what one opens, and a matrix of every
//! route in Herald's own OpenAPI document against no token, a bad token, an expired
//! token, a revoked token and another application's token: all refused, nothing changed,
//! and another tenant's objects indistinguishable from missing ones.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{Herald, Receiver, WAIT};

async fn mint(herald: &Herald, app: &str, body: Value) -> Value {
    herald
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), body)
        .await
}

#[tokio::test]
async fn an_app_token_opens_its_own_application_only() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("tenant-a").await;
    herald.app("tenant-b").await;
    let access = mint(&herald, "tenant-a", json!({})).await;
    let token = access["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("appsk_"), "{access}");
    // The portal link carries the token in its fragment only.
    let url = access["url"].as_str().unwrap();
    assert_eq!(
        url,
        herald.url(&format!("/portal#key={token}&app={app}")),
        "{access}"
    );
    let call = |method: Method, path: &str, body: Option<Value>| {
        let token = token.clone();
        let path = path.to_owned();
        let herald = &herald;
        async move { herald.call_as(method, &path, body, Some(&token), &[]).await }
    };

    // Its own application, by id or uid: endpoints, messages, attempts.
    let (status, ep) = call(
        Method::POST,
        "/api/v1/app/tenant-a/endpoint",
        Some(json!({"url": receiver.url("/a")})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let (status, _) = call(Method::GET, &format!("/api/v1/app/{app}/endpoint"), None).await;
    assert_eq!(status, StatusCode::OK);
    let msg = herald
        .publish(&app, json!({"eventType": "a.b", "payload": {"n": 1}}))
        .await;
    receiver.wait_for("/a", 1, WAIT).await;
    let msg_id = msg["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/app/{app}/msg/{msg_id}"),
        format!("/api/v1/app/{app}/attempt/msg/{msg_id}"),
        format!("/api/v1/app/{app}"),
        "/api/v1/event-type".to_owned(),
    ] {
        let (status, body) = call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let resend = format!(
        "/api/v1/app/{app}/msg/{msg_id}/endpoint/{}/resend",
        ep["id"].as_str().unwrap()
    );
    let (status, body) = call(Method::POST, &resend, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    // Not the platform's powers.
    for (method, path) in [
        (Method::POST, "/api/v1/app/tenant-a/msg"),
        (Method::DELETE, "/api/v1/app/tenant-a"),
        (Method::GET, "/api/v1/app"),
        (Method::POST, "/api/v1/event-type"),
        (Method::GET, "/api/v1/app/tenant-a/token"),
        (Method::POST, "/api/v1/auth/app-portal-access/tenant-a"),
    ] {
        let (status, body) = call(
            method.clone(),
            path,
            Some(json!({"eventType": "a.b", "payload": {}})),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["code"], "forbidden");
    }
    // Another tenant: the same answer as for an application that does not exist.
    let (status, other) = call(Method::GET, "/api/v1/app/tenant-b/endpoint", None).await;
    let (_, missing) = call(Method::GET, "/api/v1/app/no-such-tenant/endpoint", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(other, missing);

    // Listed for the operator (never the token itself), then logged out.
    let listed = herald.get(&format!("/api/v1/app/{app}/token")).await;
    assert_eq!(listed["data"][0]["id"], access["tokenId"]);
    assert!(!listed.to_string().contains(&token));
    let (status, _) = call(Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(Method::GET, &format!("/api/v1/app/{app}"), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a logged-out token is dead"
    );
    let (status, _) = herald.call(Method::POST, "/api/v1/auth/logout", None).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the admin token cannot log out"
    );
}

/// A path of the OpenAPI document with its parameters filled in.
fn fill(path: &str, ids: &[(&str, &str)]) -> String {
    let mut filled = path.to_owned();
    for (name, value) in ids {
        filled = filled.replace(&format!("{{{name}}}"), value);
    }
    filled
}

#[tokio::test]
async fn every_route_refuses_missing_bad_expired_revoked_and_foreign_tokens() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    // The victim tenant, with one of everything.
    let victim = herald.app("victim").await;
    let ep = herald
        .endpoint(&victim, json!({"url": receiver.url("/v")}))
        .await;
    let msg = herald
        .publish(
            &victim,
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    herald
        .post(
            "/api/v1/event-type",
            json!({"name": "order.created", "description": "x"}),
        )
        .await;
    let attempt = herald.msg_attempts(&victim, &msg, 1).await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim_token = mint(&herald, &victim, json!({})).await;
    // The attacker tenant's tokens.
    herald.app("attacker").await;
    let foreign = mint(&herald, "attacker", json!({})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let expired = mint(&herald, "attacker", json!({"expiry": 1})).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = mint(&herald, "attacker", json!({})).await;
    herald
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/app/attacker/token/{}",
                revoked["tokenId"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let revoked = revoked["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let doc = herald.get("/api/v1/openapi.json").await;
    let ids = [
        ("app_id", victim.as_str()),
        ("endpoint_id", ep["id"].as_str().unwrap()),
        ("msg_id", msg["id"].as_str().unwrap()),
        ("attempt_id", attempt.as_str()),
        ("event_type_name", "order.created"),
        ("token_id", victim_token["tokenId"].as_str().unwrap()),
    ];
    let missing_app = [("app_id", "app_0000000000000000000000000000")];
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // The health checks need no token.
        if path.starts_with("/api/v1/health") {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = fill(path, &ids);
            let body = Some(json!({}));
            for (who, token) in [
                ("no token", None),
                ("a bad token", Some("not-a-token")),
                (
                    "an unknown app token",
                    Some("appsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                ),
                ("an expired token", Some(expired.as_str())),
                ("a revoked token", Some(revoked.as_str())),
            ] {
                let (status, out) = herald
                    .call_as(method.clone(), &url, body.clone(), token, &[])
                    .await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {url} with {who}: {out}"
                );
                checked += 1;
            }
            // Another application's token: refused; on the victim's paths, the same
            // answer as for an application that does not exist. (Logging out and the
            // session concern only the token itself, and logging out would end it: the
            // first two tests cover them.)
            if path == "/api/v1/auth/logout" || path == "/api/v1/auth/session" {
                continue;
            }
            let (status, out) = herald
                .call_as(method.clone(), &url, body.clone(), Some(&foreign), &[])
                .await;
            let global_read = method == Method::GET && path.starts_with("/api/v1/event-type");
            if global_read {
                assert_eq!(status, StatusCode::OK, "{method} {url}: {out}");
            } else {
                assert!(
                    matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
                    "{method} {url} with another app's token: {status} {out}"
                );
            }
            if path.contains("{app_id}") {
                let elsewhere = fill(&fill(path, &missing_app), &ids);
                let (status_elsewhere, out_elsewhere) = herald
                    .call_as(
                        method.clone(),
                        &elsewhere,
                        body.clone(),
                        Some(&foreign),
                        &[],
                    )
                    .await;
                assert_eq!(
                    (status, &out),
                    (status_elsewhere, &out_elsewhere),
                    "{method} {path}: the victim's objects look like missing ones"
                );
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} requests checked");

    // Nothing of the victim changed.
    let still = herald
        .get(&format!(
            "/api/v1/app/{victim}/endpoint/{}",
            ep["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(still["url"], ep["url"]);
    assert_eq!(still["disabled"], false);
    let tokens = herald.get(&format!("/api/v1/app/{victim}/token")).await;
    assert_eq!(tokens["data"][0]["revokedAt"], Value::Null);
}

/// What a token may do is part of it: a view-only token reads but changes nothing, one
/// with `ManageTransformations` changes filters and transforms only, one with
/// `CreateAttempts` replays; each refusal names the capability missing.
#[tokio::test]
async fn a_tokens_capabilities_limit_what_it_may_do() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("tenant-c").await;
    let ep = herald
        .endpoint(&app, json!({"url": receiver.url("/c")}))
        .await;
    let ep = ep["id"].as_str().unwrap().to_owned();
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "a.b", "payload": {"status": "paid"}}),
        )
        .await;
    receiver.wait_for("/c", 1, WAIT).await;
    let msg = msg["id"].as_str().unwrap().to_owned();

    // Asked-for capabilities are checked, and told back.
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/auth/app-portal-access/{app}"),
            Some(json!({"capabilities": ["ViewBase", "ManageEverything"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["detail"][0]["loc"],
        json!(["body", "capabilities", "1"])
    );
    let (status, body) = herald
        .call(
            Method::POST,
            &format!("/api/v1/auth/app-portal-access/{app}"),
            Some(json!({"capabilities": ["ManageEndpoint"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("must include ViewBase"), "{body}");

    let as_token = |caps: Value| {
        let herald = &herald;
        let app = app.clone();
        async move {
            let access = mint(herald, &app, json!({"capabilities": caps})).await;
            access["token"].as_str().unwrap().to_owned()
        }
    };
    let viewer = as_token(json!(["ViewBase"])).await;
    let rules = as_token(json!(["ViewBase", "ManageTransformations"])).await;
    let replay = as_token(json!(["ViewBase", "CreateAttempts"])).await;
    let endpoint = format!("/api/v1/app/{app}/endpoint/{ep}");
    let resend = format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend");

    let (status, session) = herald
        .call_as(
            Method::GET,
            "/api/v1/auth/session",
            None,
            Some(&viewer),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        session,
        json!({"admin": false, "appId": app, "capabilities": ["ViewBase"]})
    );

    // (token, method, path, body, expected status)
    let cases: Vec<(&str, Method, String, Option<Value>, StatusCode)> = vec![
        (&viewer, Method::GET, endpoint.clone(), None, StatusCode::OK),
        (
            &viewer,
            Method::GET,
            format!("{endpoint}/secret"),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &viewer,
            Method::PATCH,
            endpoint.clone(),
            Some(json!({"disabled": true})),
            StatusCode::FORBIDDEN,
        ),
        (
            &viewer,
            Method::DELETE,
            endpoint.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &viewer,
            Method::POST,
            resend.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &viewer,
            Method::POST,
            format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": receiver.url("/x")})),
            StatusCode::FORBIDDEN,
        ),
        (
            &rules,
            Method::PATCH,
            endpoint.clone(),
            Some(json!({"url": receiver.url("/elsewhere")})),
            StatusCode::FORBIDDEN,
        ),
        (
            &rules,
            Method::PATCH,
            endpoint.clone(),
            Some(json!({"filter": {"payload.status": "paid"}})),
            StatusCode::OK,
        ),
        (
            &rules,
            Method::POST,
            resend.clone(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            &replay,
            Method::POST,
            resend.clone(),
            None,
            StatusCode::ACCEPTED,
        ),
        (
            &replay,
            Method::PATCH,
            endpoint.clone(),
            Some(json!({"filter": null})),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (token, method, path, body, expected) in cases {
        let (status, answer) = herald
            .call_as(method.clone(), &path, body.clone(), Some(token), &[])
            .await;
        assert_eq!(status, expected, "{method} {path} {body:?}: {answer}");
        if status == StatusCode::FORBIDDEN {
            assert!(
                answer["detail"].as_str().unwrap().contains("capabilit"),
                "{answer}"
            );
        }
    }
    // What was refused changed nothing; what was allowed did.
    let now = herald.get(&endpoint).await;
    assert_eq!(now["disabled"], false);
    assert_eq!(now["url"], receiver.url("/c"));
    assert_eq!(now["filter"], json!({"payload.status": "paid"}));
    receiver.wait_for("/c", 2, WAIT).await;

    // The operator sees what each token may do.
    let listed = herald.get(&format!("/api/v1/app/{app}/token")).await;
    let mut seen: Vec<Value> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["capabilities"].clone())
        .collect();
    seen.sort_by_key(|v| v.to_string());
    assert_eq!(
        seen,
        vec![
            json!(["ViewBase", "CreateAttempts"]),
            json!(["ViewBase", "ManageTransformations"]),
            json!(["ViewBase"]),
        ]
    );
}
