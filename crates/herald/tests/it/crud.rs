//! Applications, event types and endpoints: create, read by id and uid, update, patch,
//! delete, and paging.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::Herald;

#[tokio::test]
async fn applications_crud_and_paging() {
    let herald = Herald::start().await;
    let (status, app) = herald
        .call(
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "Acme", "uid": "acme", "metadata": {"plan": "gold"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = app["id"].as_str().unwrap();
    assert!(id.starts_with("app_") && id.len() == 31, "{id}");
    assert_eq!(herald.get("/api/v1/app/acme").await["id"], app["id"]);
    assert_eq!(
        herald.get(&format!("/api/v1/app/{id}")).await["metadata"]["plan"],
        "gold"
    );

    // Same uid: 409, unless get_if_exists.
    let (status, err) = herald
        .call(
            Method::POST,
            "/api/v1/app",
            Some(json!({"name": "x", "uid": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(err["code"], "conflict");
    let (status, same) = herald
        .call(
            Method::POST,
            "/api/v1/app?get_if_exists=true",
            Some(json!({"name": "x", "uid": "acme"})),
        )
        .await;
    assert_eq!((status, &same["id"]), (StatusCode::OK, &app["id"]));

    // Paging: 5 apps in pages of 2, forwards then backwards.
    for i in 0..4 {
        herald.app(&format!("tenant-{i}")).await;
    }
    let first = herald.get("/api/v1/app?limit=2").await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    assert_eq!(first["done"], false);
    let second = herald
        .get(&format!(
            "/api/v1/app?limit=2&iterator={}",
            first["iterator"].as_str().unwrap()
        ))
        .await;
    let third = herald
        .get(&format!(
            "/api/v1/app?limit=2&iterator={}",
            second["iterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(third["data"].as_array().unwrap().len(), 1);
    assert_eq!(third["done"], true);
    let mut seen: Vec<String> = [&first, &second, &third]
        .iter()
        .flat_map(|p| {
            p["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["uid"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    let back = herald
        .get(&format!(
            "/api/v1/app?limit=2&iterator={}",
            second["prevIterator"].as_str().unwrap()
        ))
        .await;
    assert_eq!(back["data"], first["data"]);
    let desc = herald.get("/api/v1/app?order=descending&limit=1").await;
    assert_eq!(desc["data"][0]["uid"], "tenant-3");

    // Patch: absent leaves, null clears.
    let (status, patched) = herald
        .call(
            Method::PATCH,
            "/api/v1/app/acme",
            Some(json!({"name": "Acme Inc", "throttleRate": 10})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            patched["name"].as_str(),
            patched["uid"].as_str(),
            patched["throttleRate"].as_u64()
        ),
        (Some("Acme Inc"), Some("acme"), Some(10))
    );
    let (_, patched) = herald
        .call(
            Method::PATCH,
            "/api/v1/app/acme",
            Some(json!({"throttleRate": null})),
        )
        .await;
    assert!(patched["throttleRate"].is_null());

    // PUT upserts.
    let (status, created) = herald
        .call(
            Method::PUT,
            "/api/v1/app/newco",
            Some(json!({"name": "NewCo"})),
        )
        .await;
    assert_eq!(
        (status, created["uid"].as_str()),
        (StatusCode::CREATED, Some("newco"))
    );
    let (status, _) = herald
        .call(
            Method::PUT,
            "/api/v1/app/newco",
            Some(json!({"name": "NewCo 2", "uid": "newco"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(herald.get("/api/v1/app/newco").await["name"], "NewCo 2");

    let (status, _) = herald.call(Method::DELETE, "/api/v1/app/acme", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, err) = herald.call(Method::GET, "/api/v1/app/acme", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        err,
        json!({"code": "not_found", "detail": "Entity not found"})
    );
}

#[tokio::test]
async fn event_types_crud_with_schemas_and_archive() {
    let herald = Herald::start().await;
    let schema = json!({"1": {"type": "object", "properties": {"id": {"type": "string"}}}});
    let (status, et) = herald
        .call(
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "order.created", "description": "An order", "schemas": schema})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(et["schemas"], schema);
    assert_eq!(et["deprecated"], false);
    let (status, err) = herald
        .call(
            Method::POST,
            "/api/v1/event-type",
            Some(json!({"name": "order.created", "description": "again"})),
        )
        .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::CONFLICT, Some("event_type_exists"))
    );

    herald
        .post(
            "/api/v1/event-type",
            json!({"name": "order.deleted", "description": "gone"}),
        )
        .await;
    let (status, _) = herald
        .call(Method::DELETE, "/api/v1/event-type/order.deleted", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        herald.get("/api/v1/event-type/order.deleted").await["archived"],
        true
    );
    assert_eq!(
        herald.get("/api/v1/event-type").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        herald.get("/api/v1/event-type?include_archived=true").await["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let (status, patched) = herald
        .call(
            Method::PATCH,
            "/api/v1/event-type/order.created",
            Some(json!({"deprecated": true})),
        )
        .await;
    assert_eq!(
        (status, &patched["deprecated"], &patched["schemas"]),
        (StatusCode::OK, &json!(true), &schema)
    );
    let (status, _) = herald
        .call(
            Method::PUT,
            "/api/v1/event-type/invoice.paid",
            Some(json!({"description": "paid"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = herald
        .call(
            Method::DELETE,
            "/api/v1/event-type/invoice.paid?expunge=true",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = herald
        .call(Method::GET, "/api/v1/event-type/invoice.paid", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn endpoints_crud_secret_and_headers() {
    let herald = Herald::start().await;
    let app = herald.app("acme").await;
    let (status, ep) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({
                "url": "https://example.com/hooks",
                "uid": "main",
                "eventTypes": ["order.created"],
                "channels": ["eu"],
                "headers": {"X-Team": "blue"},
                "metadata": {"owner": "ops"}
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let id = ep["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ep_"));
    assert_eq!(ep["description"], "");
    let base = "/api/v1/app/acme/endpoint".to_owned();
    assert_eq!(herald.get(&format!("{base}/main")).await["id"], ep["id"]);
    assert_eq!(
        herald.get(&format!("{base}/main/headers")).await["headers"],
        json!({"X-Team": "blue"})
    );

    let secret = herald.get(&format!("{base}/main/secret")).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    signing::Key::parse(&secret).expect("a generated secret is valid");
    let rotated = herald
        .post(&format!("{base}/main/secret/rotate"), json!({}))
        .await;
    assert_ne!(rotated["key"].as_str().unwrap(), secret);
    assert_eq!(
        herald.get(&format!("{base}/main/secret")).await["key"],
        rotated["key"]
    );

    let (status, _) = herald
        .call(
            Method::PATCH,
            &format!("{base}/main/headers"),
            Some(json!({"headers": {"X-Team": null, "X-Env": "prod"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        herald.get(&format!("{base}/main/headers")).await["headers"],
        json!({"X-Env": "prod"})
    );
    let (status, _) = herald
        .call(
            Method::PUT,
            &format!("{base}/main/headers"),
            Some(json!({"headers": {"X-Only": "1"}})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        herald.get(&format!("{base}/main/headers")).await["headers"],
        json!({"X-Only": "1"})
    );

    let (status, patched) = herald
        .call(
            Method::PATCH,
            &format!("{base}/main"),
            Some(json!({"disabled": true, "channels": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            &patched["disabled"],
            &patched["channels"],
            &patched["eventTypes"]
        ),
        (&json!(true), &json!(null), &json!(["order.created"]))
    );
    let (status, put) = herald
        .call(
            Method::PUT,
            &format!("{base}/main"),
            Some(json!({"url": "https://example.com/v2", "description": "v2"})),
        )
        .await;
    assert_eq!(
        (status, put["url"].as_str(), put["disabled"].as_bool()),
        (StatusCode::OK, Some("https://example.com/v2"), Some(false))
    );
    assert_eq!(
        herald.get(&format!("{base}/main/headers")).await["headers"],
        json!({"X-Only": "1"}),
        "PUT keeps headers"
    );

    herald
        .endpoint(&app, json!({"url": "https://example.com/b"}))
        .await;
    let list = herald.get(&format!("{base}?limit=1")).await;
    assert_eq!(
        (list["data"].as_array().unwrap().len(), &list["done"]),
        (1, &json!(false))
    );
    let stats = herald.get(&format!("{base}/main/stats")).await;
    assert_eq!(
        stats,
        json!({"success": 0, "pending": 0, "sending": 0, "fail": 0, "canceled": 0})
    );

    let (status, _) = herald
        .call(Method::DELETE, &format!("{base}/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = herald
        .call(Method::GET, &format!("{base}/main"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn openapi_document_lists_what_is_implemented() {
    let herald = Herald::start().await;
    let (status, doc) = herald
        .call_as(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/app",
        "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate",
        "/api/v1/app/{app_id}/msg",
        "/api/v1/app/{app_id}/attempt/msg/{msg_id}",
        "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
        "/api/v1/health",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} missing from the OpenAPI document"
        );
    }
    assert!(doc["components"]["schemas"]["MessageIn"].is_object());
    // Every schema referenced is defined (Schemathesis found `Ordering`, the `order` query
    // parameter of the lists, referenced but missing).
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    let text = doc.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "{name} is referenced but not defined"
        );
    }
}

/// Endpoint writes are compare-and-set on the endpoint's revision, answered as its `ETag`:
/// a write with `If-Match` naming a revision that another write replaced is refused with
/// 412 and changes nothing; PATCHes racing each other without `If-Match` all land.
#[tokio::test]
async fn endpoint_writes_are_compare_and_set() {
    let herald = Herald::start().await;
    let app = herald.app("acme").await;
    let ep = herald
        .endpoint(
            &app,
            json!({"url": "https://example.com/hook", "description": "v1"}),
        )
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{}", ep["id"].as_str().unwrap());
    let client = crate::support::http_client();
    let send = |method: Method, etag: Option<&str>, body: serde_json::Value| {
        let mut request = client
            .request(method, herald.url(&path))
            .bearer_auth(crate::support::TOKEN)
            .json(&body);
        if let Some(etag) = etag {
            request = request.header("if-match", etag);
        }
        request.send()
    };
    let etag =
        |response: &reqwest::Response| response.headers()["etag"].to_str().unwrap().to_owned();

    let read = client
        .get(herald.url(&path))
        .bearer_auth(crate::support::TOKEN)
        .send()
        .await
        .unwrap();
    let first_read = etag(&read);
    // Editor one saves with the revision it read; editor two, who read the same, is told.
    let saved = send(
        Method::PATCH,
        Some(&first_read),
        json!({"description": "one"}),
    )
    .await
    .unwrap();
    assert_eq!(saved.status(), StatusCode::OK);
    assert_ne!(etag(&saved), first_read, "each write gets a new revision");
    let stale = send(
        Method::PATCH,
        Some(&first_read),
        json!({"description": "two"}),
    )
    .await
    .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(body["code"], "precondition_failed");
    let stale_put = send(
        Method::PUT,
        Some(&first_read),
        json!({"url": "https://example.com/other", "description": "two"}),
    )
    .await
    .unwrap();
    assert_eq!(stale_put.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(herald.get(&path).await["description"], "one");
    assert_eq!(herald.get(&path).await["url"], "https://example.com/hook");
    // A current revision (or `*`) goes through.
    let current = etag(&saved);
    let put = send(
        Method::PUT,
        Some(&current),
        json!({"url": "https://example.com/hook", "description": "three"}),
    )
    .await
    .unwrap();
    assert_eq!(put.status(), StatusCode::OK);
    let any = send(Method::PATCH, Some("*"), json!({"description": "four"}))
        .await
        .unwrap();
    assert_eq!(any.status(), StatusCode::OK);

    // Without If-Match, concurrent changes each land on what the others left: six header
    // patches at once, each adding its own header, and none is lost.
    let names = ["a", "b", "c", "d", "e", "f"];
    let header_patches = names.iter().map(|name| {
        client
            .patch(herald.url(&format!("{path}/headers")))
            .bearer_auth(crate::support::TOKEN)
            .json(&json!({"headers": {format!("x-{name}"): "1"}}))
            .send()
    });
    for response in futures::future::join_all(header_patches).await {
        assert_eq!(response.unwrap().status(), StatusCode::NO_CONTENT);
    }
    let headers = herald.get(&format!("{path}/headers")).await;
    for name in names {
        assert_eq!(headers["headers"][format!("x-{name}")], "1", "{headers}");
    }
}

#[tokio::test]
async fn paths_with_a_trailing_slash_are_the_same_routes() {
    // Svix answers them, and scripts written from its older docs and SDKs use them.
    let herald = Herald::start().await;
    let (status, app) = herald
        .call(
            Method::POST,
            "/api/v1/app/",
            Some(json!({"name": "Slash", "uid": "slash"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let (status, list) = herald.call(Method::GET, "/api/v1/app/?limit=5", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"][0]["uid"], "slash", "the query is kept: {list}");
    let (status, got) = herald.call(Method::GET, "/api/v1/app/slash/", None).await;
    assert_eq!((status, &got["id"]), (StatusCode::OK, &app["id"]));
    let (status, ep) = herald
        .call(
            Method::POST,
            "/api/v1/app/slash/endpoint/",
            Some(json!({"url": "https://example.com/hook"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ep}");
    let (status, msg) = herald
        .call(
            Method::POST,
            "/api/v1/app/slash/msg/",
            Some(json!({"eventType": "a.b", "payload": {}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{msg}");
    let (status, _) = herald.call(Method::GET, "/api/v1/health/", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Authentication is the same with or without the slash.
    let (status, _) = herald
        .call_as(Method::GET, "/api/v1/app/", None, Some("wrong"), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = herald
        .call(Method::DELETE, "/api/v1/app/slash/", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_version_names_the_commit() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    assert!(text.starts_with("herald "), "{text}");
    let commit = text
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.strip_suffix(")\n"))
        .unwrap_or_else(|| panic!("no commit in {text}"));
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{text}"
    );
}
