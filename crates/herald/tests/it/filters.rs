//! Endpoint filters through the API: the three status conditions platforms ask for,
//! validation that names the path, the test route, and removing a filter.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::support::{Herald, Receiver, WAIT};

#[tokio::test]
async fn status_conditions_select_the_endpoints_that_receive_an_event() {
    let herald = Herald::start().await;
    let receiver = Receiver::start().await;
    let app = herald.app("acme").await;
    for (path, filter) in [
        ("all", None),
        ("becomes-final", Some(json!({"payload.key": "final"}))),
        (
            "leaves-arrived",
            Some(json!({"payload.prevKey": "arrived", "payload.key": {"$neq": "arrived"}})),
        ),
        (
            "arrived-to-final",
            Some(json!({"$and": [{"payload.prevKey": "arrived"}, {"payload.key": "final"}]})),
        ),
    ] {
        let mut body = json!({"url": receiver.url(&format!("/{path}"))});
        if let Some(filter) = filter {
            body["filter"] = filter;
        }
        let expected = body["filter"].clone();
        let ep = herald.endpoint(&app, body).await;
        assert_eq!(ep["filter"], expected, "the filter is shown as stored");
    }
    let publish = |key: &str, prev: &str| json!({"eventType": "case.status", "payload": {"guid": "c-1", "key": key, "prevKey": prev}});
    let m1 = herald.publish(&app, publish("arrived", "new")).await;
    let m2 = herald.publish(&app, publish("arrived", "arrived")).await;
    let m3 = herald.publish(&app, publish("final", "arrived")).await;
    let m4 = herald.publish(&app, publish("final", "final")).await;

    // Filters act at ingest: a delivery exists only where the filter held.
    assert_eq!(herald.destinations(&app, &m1).await, ["all"]);
    assert_eq!(herald.destinations(&app, &m2).await, ["all"]);
    assert_eq!(
        herald.destinations(&app, &m3).await,
        ["all", "arrived-to-final", "becomes-final", "leaves-arrived"]
    );
    assert_eq!(
        herald.destinations(&app, &m4).await,
        ["all", "becomes-final"]
    );

    // And the receiver got exactly those.
    receiver.wait_for("/all", 4, WAIT).await;
    let got = receiver.wait_for("/becomes-final", 2, WAIT).await;
    assert!(got.iter().all(|r| r.json()["key"] == "final"));
    let got = receiver.wait_for("/arrived-to-final", 1, WAIT).await;
    assert_eq!(got[0].header("webhook-id"), m3["id"].as_str().unwrap());
    assert_eq!(receiver.received_on("/leaves-arrived").len(), 1);
}

#[tokio::test]
async fn invalid_filters_are_rejected_naming_the_path_and_filters_can_be_tested() {
    let herald = Herald::start().await;
    let app = herald.app("acme").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    for (filter, loc) in [
        (
            json!({"payload.key": {"$like": "f%"}}),
            vec!["body", "filter", "payload.key", "$like"],
        ),
        (
            json!({"payload.key": {"$regex": "(("}}),
            vec!["body", "filter", "payload.key", "$regex"],
        ),
        (
            json!({"payload.n": {"$in": 3}}),
            vec!["body", "filter", "payload.n", "$in"],
        ),
        (
            json!({"$or": [{"a": 1}, 2]}),
            vec!["body", "filter", "$or", "1"],
        ),
    ] {
        let (status, body) = herald
            .call(
                Method::POST,
                &path,
                Some(json!({"url": "https://example.com/", "filter": filter})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["detail"][0]["loc"], json!(loc), "{body}");
    }
    assert!(
        herald.get(&path).await["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    let ep = herald
        .endpoint(&app, json!({"url": "https://example.com/", "filter": {"channels": "eu", "payload.amount": {"$gte": 100}}}))
        .await;
    let test = format!("{path}/{}/filter/test", ep["id"].as_str().unwrap());
    let sample =
        json!({"eventType": "invoice.paid", "channels": ["eu"], "payload": {"amount": 150}});
    let out = herald.post(&test, sample.clone()).await;
    assert_eq!(out["matches"], true);
    assert_eq!(out["event"]["payload"]["amount"], 150);
    let mut small = sample.clone();
    small["payload"]["amount"] = json!(5);
    assert_eq!(herald.post(&test, small).await["matches"], false);
    let mut other = sample;
    other["filter"] = json!({"eventType": {"$startsWith": "order."}});
    assert_eq!(herald.post(&test, other).await["matches"], false);

    // PATCH with null removes the filter; nothing was sent by the test route.
    let (status, patched) = herald
        .call(
            Method::PATCH,
            &format!("{path}/{}", ep["id"].as_str().unwrap()),
            Some(json!({"filter": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(patched["filter"].is_null());
    assert!(
        herald.get(&format!("/api/v1/app/{app}/msg")).await["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
