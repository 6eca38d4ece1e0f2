//! HTTPS deliveries to receivers whose certificate a private CA issued, trusted with
//! `--tls-ca-file`: HTTP/2 when the receiver offers it (ALPN), HTTP/1.1 otherwise, the
//! connection reused, the signature intact; and the same receiver refused without the CA.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use http_body_util::BodyExt as _;
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::Herald;

/// A CA, and a certificate it issued for `localhost` and 127.0.0.1.
struct Pki {
    ca_pem: String,
    chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Herald test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf_params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(ca.der());
    let mut ca_pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        ca_pem.push_str(std::str::from_utf8(line).unwrap());
        ca_pem.push('\n');
    }
    ca_pem.push_str("-----END CERTIFICATE-----\n");
    Pki {
        ca_pem,
        chain: vec![leaf.der().clone()],
        key: rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

/// What the HTTPS receiver got: each request's HTTP version, `webhook-id` and body.
#[derive(Default)]
struct Seen {
    requests: Mutex<Vec<(http::Version, String, bytes::Bytes)>>,
    connections: AtomicUsize,
    handshakes: AtomicUsize,
}

/// An HTTPS receiver on loopback offering `alpn` (e.g. h2 and http/1.1), answering 200.
async fn https_receiver(pki: &Pki, alpn: &[&[u8]]) -> (SocketAddr, Arc<Seen>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let recording = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            recording.connections.fetch_add(1, Ordering::SeqCst);
            let (acceptor, recording) = (acceptor.clone(), recording.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                recording.handshakes.fetch_add(1, Ordering::SeqCst);
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let recording = recording.clone();
                        async move {
                            let version = request.version();
                            let id = request
                                .headers()
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = request.into_body().collect().await?.to_bytes();
                            recording.requests.lock().unwrap().push((version, id, body));
                            Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"ok over tls"),
                            )))
                        }
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (addr, seen)
}

/// Publishes `n` messages to one endpoint at `url`, in a new application `uid`, and waits until the receiver has them.
async fn deliver(
    herald: &Herald,
    uid: &str,
    url: &str,
    seen: &Seen,
    n: usize,
) -> (String, Vec<String>) {
    let app = herald.app(uid).await;
    herald.endpoint(&app, json!({"url": url})).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let msg = herald
            .publish(
                &app,
                json!({"eventType": "order.created", "payload": {"i": i}}),
            )
            .await;
        ids.push(msg["id"].as_str().unwrap().to_owned());
        // One at a time: once its attempt is recorded, its connection is idle again for
        // the next one.
        herald.msg_attempts(&app, &msg, 1).await;
    }
    assert_eq!(seen.requests.lock().unwrap().len(), n);
    (app, ids)
}

async fn trusting_herald(pki: &Pki) -> (Herald, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let herald = Herald::start_with(&["--tls-ca-file", ca.to_str().unwrap()]).await;
    (herald, dir)
}

#[tokio::test]
async fn https_receivers_get_http2_when_offered_and_http1_otherwise_on_one_connection() {
    let pki = pki();
    let (herald, _dir) = trusting_herald(&pki).await;
    for (alpn, version, uid) in [
        (
            &[b"h2".as_slice(), b"http/1.1"][..],
            http::Version::HTTP_2,
            "h2",
        ),
        (&[b"http/1.1".as_slice()][..], http::Version::HTTP_11, "h1"),
    ] {
        let (addr, seen) = https_receiver(&pki, alpn).await;
        let url = format!("https://localhost:{}/hook", addr.port());
        let (app, ids) = deliver(&herald, uid, &url, &seen, 3).await;
        let requests = seen.requests.lock().unwrap().clone();
        assert_eq!(
            requests.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![version; 3]
        );
        assert_eq!(
            requests.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            ids
        );
        for (i, (_, _, body)) in requests.iter().enumerate() {
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(body).unwrap(),
                json!({"i": i})
            );
        }
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            1,
            "{version:?}: the three deliveries share one connection"
        );
        let attempts = herald.msg_attempts(&app, &json!({"id": ids[0]}), 1).await;
        let a = &attempts["data"][0];
        assert_eq!(
            (&a["status"], &a["responseStatusCode"], &a["response"]),
            (&json!(0), &json!(200), &json!("ok over tls")),
            "{a}"
        );
    }
}

#[tokio::test]
async fn without_the_ca_the_same_receiver_is_a_tls_failure() {
    let pki = pki();
    let herald = Herald::start().await;
    let (addr, seen) = https_receiver(&pki, &[b"h2", b"http/1.1"]).await;
    let app = herald.app("acme").await;
    herald
        .endpoint(
            &app,
            json!({"url": format!("https://localhost:{}/hook", addr.port())}),
        )
        .await;
    let msg = herald
        .publish(&app, json!({"eventType": "order.created", "payload": {}}))
        .await;
    let attempts = herald.msg_attempts(&app, &msg, 1).await;
    assert_eq!(attempts["data"][0]["errorKind"], "tls", "{attempts}");
    assert_eq!(seen.handshakes.load(Ordering::SeqCst), 0);
    assert!(seen.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_tls_ca_file_without_certificates_stops_herald_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--tls-ca-file")
        .arg(&ca)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("tls_ca_file") && stderr.contains("no PEM certificate"),
        "{stderr}"
    );
}

/// A trace collector behind the same private CA: the exporter trusts `--tls-ca-file` too.
#[tokio::test]
async fn spans_reach_an_https_collector_behind_the_private_ca() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;

    let pki = pki();
    let (addr, seen) = https_receiver(&pki, &[b"http/1.1"]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let collector = format!("https://localhost:{}", addr.port());
    let herald = Herald::start_with(&[
        "--tls-ca-file",
        ca.to_str().unwrap(),
        "--otlp-endpoint",
        collector.as_str(),
    ])
    .await;
    let app = herald.app("traced-over-tls").await;
    herald
        .publish(&app, json!({"eventType": "a.b", "payload": {}}))
        .await;
    // Spans leave within a second of their end.
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    let names = loop {
        let names: Vec<String> = seen
            .requests
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, _, body)| {
                let request = ExportTraceServiceRequest::decode(body.clone()).unwrap();
                request
                    .resource_spans
                    .into_iter()
                    .flat_map(|r| r.scope_spans)
                    .flat_map(|s| s.spans)
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
            })
            .collect();
        if !names.is_empty() {
            break names;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no span reached the HTTPS collector"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(names, ["publish"]);
}
