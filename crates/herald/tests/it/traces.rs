//! Traces through the binary: a small OTLP/HTTP collector in the test receives the
//! publish and attempt spans, linked (the attempt a child of its publish, after a
//! `kill -9` and a restart too), and the receiver sees a `traceparent` continuing the
//! publisher's trace; without a collector the publisher's `traceparent` passes through.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Method;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use prost::Message as _;
use serde_json::json;

use crate::support::{Herald, Receiver, TOKEN, WAIT};

/// A span as the collector got it: ids in lowercase hex.
#[derive(Debug, Clone)]
struct Span {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    attributes: HashMap<String, String>,
}

/// An OTLP/HTTP collector on loopback that keeps every span it is sent.
#[derive(Clone)]
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Span>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn export(State(spans): State<Arc<Mutex<Vec<Span>>>>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut kept = spans.lock().unwrap();
    for resource in request.resource_spans {
        for scope in resource.scope_spans {
            for span in scope.spans {
                let attributes = span
                    .attributes
                    .iter()
                    .map(|kv| {
                        let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(Any::StringValue(s)) => s.clone(),
                            Some(Any::IntValue(i)) => i.to_string(),
                            other => format!("{other:?}"),
                        };
                        (kv.key.clone(), value)
                    })
                    .collect();
                kept.push(Span {
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    attributes,
                });
            }
        }
    }
    ""
}

impl Collector {
    async fn start() -> Self {
        let spans = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", axum::routing::post(export))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, spans }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until `n` spans named `name` arrived; returns them.
    async fn wait_for(&self, name: &str, n: usize) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got: Vec<Span> = self
                .spans
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.name == name)
                .cloned()
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {n} `{name}` spans arrived",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The trace id and parent (span) id of a W3C traceparent.
fn parts(traceparent: &str) -> (String, String) {
    let fields: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(fields.len(), 4, "{traceparent}");
    (fields[1].to_owned(), fields[2].to_owned())
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PUBLISHER_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn publish_and_attempt_spans_are_linked_across_a_restart_and_reach_the_receiver() {
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    // The first attempt fails; the retry (3 s later, give or take a fifth) succeeds, made
    // by a restarted Herald.
    receiver.script(&[500]);
    let data = tempfile::tempdir().unwrap();
    let otlp = collector.url();
    let args = ["--otlp-endpoint", otlp.as_str(), "--retry-schedule", "2s"];
    let mut herald = Herald::start_in(data.path(), &args).await;
    let app = herald.app("traced").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/traced")}))
        .await;
    let traceparent = format!("00-{TRACE_ID}-{PUBLISHER_SPAN}-01");
    let (status, msg) = herald
        .call_as(
            Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(json!({"eventType": "order.created", "payload": {"n": 1}})),
            Some(TOKEN),
            &[("traceparent", traceparent.as_str())],
        )
        .await;
    assert!(status.is_success(), "{status} {msg}");
    let msg_id = msg["id"].as_str().unwrap().to_owned();

    // The publish continues the publisher's trace; the first attempt is its child.
    let publish = collector.wait_for("publish", 1).await.remove(0);
    assert_eq!(
        (publish.trace_id.as_str(), publish.parent_span_id.as_str()),
        (TRACE_ID, PUBLISHER_SPAN)
    );
    assert_eq!(publish.attributes["herald.msg_id"], msg_id);
    let first = collector.wait_for("attempt", 1).await.remove(0);
    assert_eq!(first.trace_id, TRACE_ID);
    assert_eq!(first.parent_span_id, publish.span_id);
    assert_eq!(first.attributes["herald.msg_id"], msg_id);
    assert_eq!(first.attributes["http.response.status_code"], "500");
    assert_eq!(first.attributes["herald.attempt"], "1");

    // Killed before the retry; the restarted Herald's attempt joins the same trace.
    herald.kill();
    let herald = Herald::start_in(data.path(), &args).await;
    let got = receiver.wait_for("/traced", 2, WAIT).await;
    let attempts = collector.wait_for("attempt", 2).await;
    let retry = attempts
        .iter()
        .find(|s| s.attributes["herald.attempt"] == "2")
        .expect("the retry's span");
    assert_eq!(retry.trace_id, TRACE_ID);
    assert_eq!(retry.parent_span_id, publish.span_id);
    assert_eq!(retry.attributes["http.response.status_code"], "200");

    // Each request carried its attempt's span as the parent, in the publisher's trace.
    for (request, span) in got.iter().zip([&first, retry]) {
        assert_eq!(
            parts(request.header("traceparent")),
            (TRACE_ID.to_owned(), span.span_id.clone()),
            "{:?}",
            request.headers
        );
    }
    drop(herald);
}

#[tokio::test]
async fn a_publish_without_traceparent_starts_a_trace_of_its_own() {
    let collector = Collector::start().await;
    let receiver = Receiver::start().await;
    let otlp = collector.url();
    let herald = Herald::start_with(&["--otlp-endpoint", otlp.as_str()]).await;
    let app = herald.app("traced-alone").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/alone")}))
        .await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    let got = receiver.wait_for("/alone", 1, WAIT).await;
    let publish = collector.wait_for("publish", 1).await.remove(0);
    let attempt = collector.wait_for("attempt", 1).await.remove(0);
    assert_eq!(publish.parent_span_id, "", "a root span");
    assert_eq!(attempt.trace_id, publish.trace_id);
    assert_eq!(attempt.parent_span_id, publish.span_id);
    assert_eq!(
        parts(got[0].header("traceparent")),
        (publish.trace_id.clone(), attempt.span_id.clone())
    );
}

#[tokio::test]
async fn without_a_collector_the_publishers_traceparent_passes_through() {
    let receiver = Receiver::start().await;
    let herald = Herald::start().await;
    let app = herald.app("untraced").await;
    herald
        .endpoint(&app, json!({"url": receiver.url("/plain")}))
        .await;
    let traceparent = format!("00-{TRACE_ID}-{PUBLISHER_SPAN}-01");
    let mut expected = HashMap::new();
    for header in [Some(traceparent.as_str()), Some("garbage"), None] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("traceparent", h)).into_iter().collect();
        let (status, body) = herald
            .call_as(
                Method::POST,
                &format!("/api/v1/app/{app}/msg"),
                Some(json!({"eventType": "a.b", "payload": {}})),
                Some(TOKEN),
                &headers,
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
        // An invalid one is dropped, as the W3C recommendation says.
        let sent = if header == Some(traceparent.as_str()) {
            traceparent.clone()
        } else {
            String::new()
        };
        expected.insert(body["id"].as_str().unwrap().to_owned(), sent);
    }
    let got = receiver.wait_for("/plain", 3, WAIT).await;
    let seen: HashMap<String, String> = got
        .iter()
        .map(|r| {
            (
                r.header("webhook-id").to_owned(),
                r.header("traceparent").to_owned(),
            )
        })
        .collect();
    assert_eq!(seen, expected);
}
