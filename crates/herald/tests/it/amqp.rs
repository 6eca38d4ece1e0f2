//! AMQP endpoints against a real RabbitMQ: a message published to the subscriber's
//! exchange with publisher confirms, signed, with the Standard Webhooks values in AMQP
//! headers; credentials masked in the API; broker-side failures recorded as attempts and
//! retried; delivery resumed after the broker was stopped and started again; `amqps`
//! verified against `--tls-ca-file`.
//!
//! `scripts/test.sh` starts a RabbitMQ node of its own, with a TLS listener whose
//! certificate a CA made for the run issued, and exports `HERALD_TEST_AMQP_URL`,
//! `HERALD_TEST_AMQPS_URL`, `HERALD_TEST_AMQPS_CA` and `HERALD_TEST_RABBITMQ_NODE`.
//! Without them these tests skip loudly, except under `CI=true`, where they fail.

use std::collections::BTreeMap;

use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Herald, WAIT};

/// The tests share one broker and one of them stops it: they take turns.
static BROKER_IN_USE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Broker {
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`
    url: String,
    /// `amqps://guest:guest@localhost:PORT/%2f`, the same broker over TLS.
    tls_url: String,
    /// The PEM file of the CA that issued the TLS listener's certificate.
    tls_ca: String,
    node: String,
}

fn broker() -> Option<Broker> {
    let var = |name: &str| std::env::var(name).ok();
    match (
        var("HERALD_TEST_AMQP_URL"),
        var("HERALD_TEST_AMQPS_URL"),
        var("HERALD_TEST_AMQPS_CA"),
        var("HERALD_TEST_RABBITMQ_NODE"),
    ) {
        (Some(url), Some(tls_url), Some(tls_ca), Some(node)) => Some(Broker {
            url,
            tls_url,
            tls_ca,
            node,
        }),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("CI=true but no RabbitMQ: run the tests with scripts/test.sh, which starts one")
        }
        _ => {
            eprintln!(
                "SKIPPED: no RabbitMQ (HERALD_TEST_AMQP_URL unset); \
                 `source scripts/rabbitmq.sh && start_rabbitmq` starts one"
            );
            None
        }
    }
}

impl Broker {
    async fn channel(&self) -> (Connection, Channel) {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("test client connects to RabbitMQ");
        let channel = connection.create_channel().await.unwrap();
        (connection, channel)
    }

    /// A topic exchange and a queue bound to it with each of `keys`.
    async fn topology(&self, channel: &Channel, name: &str, keys: &[&str], durable: bool) {
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    durable,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        for key in keys {
            channel
                .queue_bind(
                    name.into(),
                    name.into(),
                    (*key).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
    }

    async fn remove(&self, channel: &Channel, name: &str) {
        let _ = channel
            .queue_delete(name.into(), QueueDeleteOptions::default())
            .await;
        let _ = channel
            .exchange_delete(name.into(), ExchangeDeleteOptions::default())
            .await;
    }

    /// `rabbitmqctl stop_app` / `start_app`: the broker closes every connection and stops
    /// listening, then comes back with its durable exchanges and queues.
    fn ctl(&self, command: &str) {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["-n", &self.node, command])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("rabbitmqctl runs");
        assert!(status.success(), "rabbitmqctl {command} failed");
    }
}

async fn consume(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "herald-test".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
}

async fn next(consumer: &mut Consumer) -> Delivery {
    let delivery = tokio::time::timeout(WAIT, consumer.next())
        .await
        .expect("a message arrives in time")
        .expect("the consumer is open")
        .expect("a delivery");
    delivery.ack(BasicAckOptions::default()).await.unwrap();
    delivery
}

fn headers(delivery: &Delivery) -> BTreeMap<String, String> {
    let table = delivery.properties.headers().clone().unwrap_or_default();
    table
        .inner()
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                other => format!("{other:?}"),
            };
            (k.to_string(), value)
        })
        .collect()
}

/// The delivery's Standard Webhooks headers sign its body with the endpoint's `secret`.
fn assert_signed(delivery: &Delivery, secret: &str) {
    let h = headers(delivery);
    let key = signing::Key::parse(secret).unwrap();
    assert!(
        key.verify(
            &h["webhook-id"],
            h["webhook-timestamp"].parse().unwrap(),
            &delivery.data,
            &h["webhook-signature"],
        ),
        "signed: {h:?}"
    );
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rand::random::<u32>())
}

async fn attempts(herald: &Herald, app: &str, msg: &Value) -> Vec<Value> {
    let path = format!(
        "/api/v1/app/{app}/attempt/msg/{}?limit=250",
        msg["id"].as_str().unwrap()
    );
    herald.get(&path).await["data"].as_array().unwrap().clone()
}

#[tokio::test]
async fn amqp_endpoint_publishes_signed_confirmed_messages() {
    let Some(broker) = broker() else { return };
    let _turn = BROKER_IN_USE.lock().await;
    let (_connection, channel) = broker.channel().await;
    let name = unique("herald-orders");
    broker
        .topology(&channel, &name, &["order.*", "custom.key"], false)
        .await;
    let mut consumer = consume(&channel, &name).await;

    let herald = Herald::start().await;
    let app = herald.app("amqp-shop").await;
    let url = format!("{}?exchange={name}", broker.url);
    let endpoint = herald
        .endpoint(
            &app,
            json!({"url": url, "headers": {"X-Tenant": "acme"}, "name": "broker"}),
        )
        .await;
    let secret = herald.secret(&app, &endpoint).await;
    let ep_path = format!(
        "/api/v1/app/{app}/endpoint/{}",
        endpoint["id"].as_str().unwrap()
    );

    // The password never comes back.
    let shown = herald.get(&ep_path).await;
    let shown_url = shown["url"].as_str().unwrap();
    assert!(shown_url.contains("guest:***@"), "{shown_url}");
    assert!(!shown_url.contains("guest:guest"), "{shown_url}");
    assert_eq!(endpoint["url"], shown["url"]);

    let payload = r#"{"orderId":"o-1","total":12.5,"items":[1,2]}"#;
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": serde_json::from_str::<Value>(payload).unwrap()}),
        )
        .await;
    let delivery = next(&mut consumer).await;
    let body = std::str::from_utf8(&delivery.data).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(body).unwrap(),
        serde_json::from_str::<Value>(payload).unwrap()
    );
    assert_eq!(delivery.routing_key.as_str(), "order.created");
    let props = &delivery.properties;
    assert_eq!(
        props.content_type().as_ref().unwrap().as_str(),
        "application/json"
    );
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    assert_eq!(props.message_id().as_ref().unwrap().as_str(), msg["id"]);
    assert_eq!(props.kind().as_ref().unwrap().as_str(), "order.created");
    let h = headers(&delivery);
    assert_eq!(h["webhook-id"], msg["id"].as_str().unwrap());
    assert_eq!(h["webhook-event-type"], "order.created");
    assert_eq!(h["x-tenant"], "acme");
    assert_signed(&delivery, &secret);

    // The attempt is recorded, with the masked URL.
    let recorded = herald.msg_attempts(&app, &msg, 1).await;
    let attempt = &recorded["data"][0];
    assert_eq!(attempt["status"], 0, "{attempt}");
    assert_eq!(attempt["responseStatusCode"], 0);
    assert_eq!(attempt["url"], shown["url"]);

    // Writing the endpoint back as read (password masked), here with a routing key added,
    // keeps the stored password; the fixed routing key replaces the event type.
    let mut body = shown.clone();
    body["url"] = json!(format!("{shown_url}&routingKey=custom.key"));
    body["description"] = json!("routed by a fixed key");
    let (status, out) = herald.call(Method::PUT, &ep_path, Some(body.clone())).await;
    assert!(status.is_success(), "{status} {out}");
    herald
        .publish(
            &app,
            json!({"eventType": "order.paid", "payload": {"orderId": "o-1"}}),
        )
        .await;
    let delivery = next(&mut consumer).await;
    assert_eq!(delivery.routing_key.as_str(), "custom.key");
    assert_eq!(headers(&delivery)["webhook-event-type"], "order.paid");

    broker.remove(&channel, &name).await;
}

#[tokio::test]
async fn amqp_failures_are_recorded_as_attempts_and_retried() {
    let Some(broker) = broker() else { return };
    let _turn = BROKER_IN_USE.lock().await;
    let (_connection, channel) = broker.channel().await;
    let unbound = unique("herald-unbound");
    broker.topology(&channel, &unbound, &[], false).await;

    let herald = Herald::start().await;
    let app = herald.app("amqp-failures").await;
    let wrong_password = broker
        .url
        .replace("guest:guest", "guest:Sw0rdfish-not-the-password");
    let cases = [
        (
            "missing exchange",
            format!("{}?exchange={}", broker.url, unique("herald-missing")),
            "no exchange",
        ),
        (
            "no queue bound",
            format!("{}?exchange={unbound}", broker.url),
            "NO_ROUTE",
        ),
        ("wrong password", wrong_password, "ACCESS_REFUSED"),
    ];
    let mut endpoints = Vec::new();
    for (case, url, _) in &cases {
        let ep = herald
            .endpoint(&app, json!({"url": url, "description": case}))
            .await;
        endpoints.push(ep["id"].as_str().unwrap().to_owned());
    }
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "payload": {"n": 1}}),
        )
        .await;

    for ((case, _, expected), endpoint) in cases.iter().zip(&endpoints) {
        // The default test schedule retries after 1 s: wait for the first retry too.
        let path = format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250",);
        let body = herald
            .until(&path, WAIT, |b| b["data"].as_array().unwrap().len() >= 2)
            .await;
        for attempt in body["data"].as_array().unwrap() {
            assert_eq!(attempt["status"], 2, "{case}: {attempt}");
            assert_eq!(attempt["errorKind"], "broker", "{case}: {attempt}");
            let response = attempt["response"].as_str().unwrap();
            assert!(response.contains(expected), "{case}: {response}");
            assert!(!response.contains("Sw0rdfish"), "{case}: {response}");
            assert!(
                !attempt["url"].as_str().unwrap().contains("Sw0rdfish"),
                "{case}: {attempt}"
            );
        }
    }
    let all = attempts(&herald, &app, &msg).await;
    assert!(
        all.len() >= 6,
        "3 endpoints, each tried at least twice: {}",
        all.len()
    );

    // Options that only HTTP has are refused on an AMQP endpoint, and bad AMQP URLs are
    // explained.
    let (status, out) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": broker.url, "method": "GET"})),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "method"]));
    let (status, out) = herald
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(json!({"url": format!("{}?queue=orders", broker.url)})),
        )
        .await;
    assert_eq!(status, 422, "{out}");
    assert_eq!(out["detail"][0]["loc"], json!(["body", "url"]));
    assert!(
        out["detail"][0]["msg"]
            .as_str()
            .unwrap()
            .contains("unknown parameter `queue`"),
        "{out}"
    );

    broker.remove(&channel, &unbound).await;
}

#[tokio::test]
async fn amqp_delivery_resumes_after_the_broker_restarts() {
    let Some(broker) = broker() else { return };
    let _turn = BROKER_IN_USE.lock().await;
    let name = unique("herald-restart");
    {
        let (connection, channel) = broker.channel().await;
        broker.topology(&channel, &name, &["#"], true).await;
        let _ = connection.close(200, "done".into()).await;
    }

    let herald = Herald::start().await;
    let app = herald.app("amqp-restart").await;
    let endpoint = herald
        .endpoint(
            &app,
            json!({"url": format!("{}?exchange={name}", broker.url)}),
        )
        .await;
    let endpoint = endpoint["id"].as_str().unwrap().to_owned();
    // A first message opens Herald's connection to the broker.
    herald
        .publish(
            &app,
            json!({"eventType": "case.created", "payload": {"n": 0}}),
        )
        .await;
    let path = format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250");
    herald
        .until(&path, WAIT, |b| b["data"].as_array().unwrap().len() == 1)
        .await;

    broker.ctl("stop_app");
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "case.updated", "payload": {"n": 1}}),
        )
        .await;
    let msg_path = format!(
        "/api/v1/app/{app}/attempt/msg/{}?limit=250",
        msg["id"].as_str().unwrap()
    );
    // Herald finds its connection closed, fails to reconnect, and records it.
    let failed = herald
        .until(&msg_path, WAIT, |b| {
            !b["data"].as_array().unwrap().is_empty()
        })
        .await;
    let first = &failed["data"][0];
    assert_eq!(first["status"], 2, "{first}");
    assert_eq!(first["errorKind"], "connection_refused", "{first}");
    broker.ctl("start_app");

    let (_connection, channel) = broker.channel().await;
    let mut consumer = consume(&channel, &name).await;
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let delivery = next(&mut consumer).await;
        payloads.push(serde_json::from_slice::<Value>(&delivery.data).unwrap()["n"].clone());
    }
    assert_eq!(
        payloads,
        [json!(0), json!(1)],
        "the message before and the one during the outage"
    );
    let recorded = herald
        .until(&msg_path, WAIT, |b| {
            b["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["status"] == 0)
        })
        .await;
    let statuses: Vec<&Value> = recorded["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["status"])
        .collect();
    assert!(statuses.len() >= 2, "failed, then retried: {statuses:?}");

    broker.remove(&channel, &name).await;
}

#[tokio::test]
async fn an_amqps_broker_is_verified_against_the_tls_ca_file() {
    let Some(broker) = broker() else { return };
    let _turn = BROKER_IN_USE.lock().await;
    let (_connection, channel) = broker.channel().await;
    let name = unique("herald-tls");
    broker.topology(&channel, &name, &["order.*"], false).await;
    let mut consumer = consume(&channel, &name).await;
    // By host name (`localhost`): resolved, checked, and the certificate verified
    // against the name.
    let url = format!("{}?exchange={name}", broker.tls_url);

    // Without the CA, the broker's certificate is not trusted: a recorded `tls` failure,
    // and nothing reaches the exchange.
    let untrusting = Herald::start().await;
    let app = untrusting.app("tls-shop").await;
    untrusting.endpoint(&app, json!({"url": url})).await;
    let refused = untrusting
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 1}}),
        )
        .await;
    let recorded = untrusting.msg_attempts(&app, &refused, 1).await;
    let attempt = &recorded["data"][0];
    assert_eq!(attempt["errorKind"], "tls", "{attempt}");
    assert_ne!(attempt["status"], 0, "{attempt}");
    drop(untrusting);

    // Trusting the CA that issued it: delivered over TLS and confirmed.
    let herald = Herald::start_with(&["--tls-ca-file", &broker.tls_ca]).await;
    let app = herald.app("tls-shop").await;
    let endpoint = herald.endpoint(&app, json!({"url": url})).await;
    let secret = herald.secret(&app, &endpoint).await;
    let msg = herald
        .publish(
            &app,
            json!({"eventType": "order.created", "payload": {"n": 2}}),
        )
        .await;
    let delivery = next(&mut consumer).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&delivery.data).unwrap(),
        json!({"n": 2}),
        "the first message the exchange got is the trusting Herald's"
    );
    let h = headers(&delivery);
    assert_eq!(h["webhook-id"], msg["id"].as_str().unwrap());
    assert_signed(&delivery, &secret);
    let recorded = herald.msg_attempts(&app, &msg, 1).await;
    let attempt = &recorded["data"][0];
    assert_eq!(attempt["status"], 0, "{attempt}");
    assert_eq!(attempt["response"], "confirmed by the broker", "{attempt}");
    broker.remove(&channel, &name).await;
}
