//! OpenTelemetry traces over OTLP (HTTP, protobuf) when `otlp_endpoint` is set: the
//! tracer provider `dispatch` makes its publish and attempt spans with. Spans are batched
//! in a thread of their own and sent every second; a collector that is down or slow
//! loses spans (the queue holds 8,192), never holds a publish or an attempt back.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider,
};

/// Installs the process's tracer provider, exporting to `endpoint` (a collector's base
/// URL: spans go to `{endpoint}/v1/traces`), keeping `sample_ratio` of the traces that
/// start in Herald and those a publisher sampled; an `https://` collector may be behind
/// one of `extra_roots` (`tls_ca_file`) as well as the system's. Shut it down at exit to
/// send the last spans.
pub(crate) fn install(
    endpoint: &url::Url,
    sample_ratio: f64,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> anyhow::Result<SdkTracerProvider> {
    // The exporter's HTTP client uses rustls with the process's provider (as transport's).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let traces_url = format!("{}/v1/traces", endpoint.as_str().trim_end_matches('/'));
    let roots = extra_roots
        .iter()
        .map(|der| reqwest::Certificate::from_der(der))
        .collect::<Result<Vec<_>, _>>()
        .context("tls_ca_file: a certificate the trace exporter cannot use")?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_merge(roots)
        .build()
        .context("otlp_endpoint: making the exporter's HTTP client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(&traces_url)
        .with_timeout(Duration::from_secs(10))
        .build()
        .with_context(|| format!("otlp_endpoint: cannot export to {traces_url}"))?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(Duration::from_secs(1))
                .with_max_queue_size(8_192)
                .build(),
        )
        .build();
    let resource = Resource::builder()
        .with_service_name("herald")
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            sample_ratio,
        ))))
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}
