//! Attempt: sign a message for an endpoint and hand it to its transport (HTTP or AMQP).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use model::destination::{self, AmqpTarget};
use model::{Endpoint, Envelope, ErrorKind, Message, Method, Outcome};
use signing::Key;
use transport::{AmqpRequest, HttpRequest, Transports};

/// Signs and sends `message` to `endpoint`, over HTTP or AMQP by the endpoint's URL,
/// returning what happened.
pub(crate) async fn attempt(
    transports: &Transports,
    endpoint: &Endpoint,
    message: &Message,
    payload: &str,
    now: DateTime<Utc>,
    traceparent: Option<&str>,
) -> Outcome {
    if destination::is_amqp(&endpoint.url) {
        match prepare_amqp(endpoint, message, payload, now, traceparent) {
            Ok(request) => transports.amqp.send(request).await,
            Err(reason) => refused(reason),
        }
    } else {
        match prepare_http(endpoint, message, payload, now, traceparent) {
            Ok(request) => transports.http.send(request).await,
            Err(reason) => refused(reason),
        }
    }
}

/// A failure decided before sending; it is not retried.
pub(crate) fn refused(reason: String) -> Outcome {
    Outcome {
        status_code: None,
        body: reason,
        duration: std::time::Duration::ZERO,
        error: Some(ErrorKind::Refused),
        permanent: true,
        retry_after: None,
    }
}

/// The bytes a receiver gets and their Standard Webhooks signature.
struct Signed {
    body: Bytes,
    timestamp: i64,
    signature: String,
}

/// `payload` (the bytes as published, or as the endpoint's transform rewrote them),
/// possibly wrapped in the standard envelope, signed with every current secret.
fn sign(
    endpoint: &Endpoint,
    message: &Message,
    payload: &str,
    now: DateTime<Utc>,
) -> Result<Signed, String> {
    let timestamp = now.timestamp();
    let body = match endpoint.envelope {
        Envelope::Raw => Bytes::copy_from_slice(payload.as_bytes()),
        Envelope::Standard => standard_envelope(message, payload),
    };
    let mut keys = Vec::with_capacity(1);
    for secret in endpoint.signing_secrets(now) {
        keys.push(Key::parse(secret.expose()).map_err(|e| format!("endpoint secret: {e}"))?);
    }
    let signature = signing::signature_header(&keys, message.id.as_str(), timestamp, &body);
    Ok(Signed {
        body,
        timestamp,
        signature,
    })
}

// The Standard Webhooks headers, and the same under the names Svix's libraries read. As
// constants, their names are not parsed again for every attempt.
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");
const SVIX_ID: HeaderName = HeaderName::from_static("svix-id");
const SVIX_TIMESTAMP: HeaderName = HeaderName::from_static("svix-timestamp");
const SVIX_SIGNATURE: HeaderName = HeaderName::from_static("svix-signature");
/// W3C trace context: the attempt's span, for receivers that continue the trace.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// The signed request: the Standard Webhooks headers (also under their `svix-` names)
/// and the endpoint's constant headers, sent with the endpoint's method. `GET` has no
/// body: the signed bytes travel in the `payload` query parameter.
fn prepare_http(
    endpoint: &Endpoint,
    message: &Message,
    payload: &str,
    now: DateTime<Utc>,
    traceparent: Option<&str>,
) -> Result<HttpRequest, String> {
    let Signed {
        body,
        timestamp,
        signature,
    } = sign(endpoint, message, payload, now)?;
    let mut headers = HeaderMap::with_capacity(8 + endpoint.headers.len());
    for (name, value) in &endpoint.headers {
        // Validated when set through the API; anything unparseable is skipped, not sent broken.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let id = HeaderValue::from_str(message.id.as_str()).map_err(|e| e.to_string())?;
    let ts = HeaderValue::from(timestamp);
    let sig = HeaderValue::from_str(&signature).map_err(|e| e.to_string())?;
    let (url, body) = if endpoint.method == Method::Get {
        let mut url = url::Url::parse(&endpoint.url).map_err(|e| format!("endpoint url: {e}"))?;
        let payload = std::str::from_utf8(&body).map_err(|e| e.to_string())?;
        url.query_pairs_mut().append_pair("payload", payload);
        (String::from(url), Bytes::new())
    } else {
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        (endpoint.url.clone(), body)
    };
    headers.insert(WEBHOOK_ID, id.clone());
    headers.insert(WEBHOOK_TIMESTAMP, ts.clone());
    headers.insert(WEBHOOK_SIGNATURE, sig.clone());
    headers.insert(SVIX_ID, id);
    headers.insert(SVIX_TIMESTAMP, ts);
    headers.insert(SVIX_SIGNATURE, sig);
    if let Some(value) = traceparent.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(TRACEPARENT, value);
    }
    let method = match endpoint.method {
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Get => http::Method::GET,
    };
    Ok(HttpRequest {
        method,
        url,
        headers,
        body,
    })
}

/// The message for an AMQP endpoint: persistent, JSON, with the Standard Webhooks values,
/// the event type and the endpoint's constant headers as AMQP headers, published to the
/// URL's exchange with its routing key (by default, the event type).
fn prepare_amqp(
    endpoint: &Endpoint,
    message: &Message,
    payload: &str,
    now: DateTime<Utc>,
    traceparent: Option<&str>,
) -> Result<AmqpRequest, String> {
    let target = AmqpTarget::parse(&endpoint.url).map_err(|e| format!("endpoint url: {e}"))?;
    let Signed {
        body,
        timestamp,
        signature,
    } = sign(endpoint, message, payload, now)?;
    let mut headers = Vec::with_capacity(4 + endpoint.headers.len());
    for (name, value) in &endpoint.headers {
        headers.push((name.to_ascii_lowercase(), value.clone()));
    }
    headers.push(("webhook-id".into(), message.id.as_str().to_owned()));
    headers.push(("webhook-timestamp".into(), timestamp.to_string()));
    headers.push(("webhook-signature".into(), signature));
    headers.push(("webhook-event-type".into(), message.event_type.clone()));
    if let Some(value) = traceparent {
        headers.push(("traceparent".into(), value.to_owned()));
    }
    Ok(AmqpRequest {
        broker: target.broker,
        exchange: target.exchange,
        routing_key: target
            .routing_key
            .unwrap_or_else(|| message.event_type.clone()),
        message_id: message.id.as_str().to_owned(),
        kind: message.event_type.clone(),
        timestamp: u64::try_from(timestamp).unwrap_or(0),
        headers,
        body,
    })
}

/// `{"id","type","created","data"}`, written by hand so that `data` holds the payload's
/// bytes exactly as published.
fn standard_envelope(message: &Message, payload: &str) -> Bytes {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut out = String::with_capacity(payload.len() + 96);
    out.push_str("{\"id\":");
    out.push_str(&quote(message.id.as_str()));
    out.push_str(",\"type\":");
    out.push_str(&quote(&message.event_type));
    out.push_str(",\"created\":");
    out.push_str(&message.created_at.timestamp().to_string());
    out.push_str(",\"entity\":");
    match &message.entity {
        Some(entity) => out.push_str(&quote(&entity.id)),
        None => out.push_str("null"),
    }
    out.push_str(",\"data\":");
    out.push_str(payload);
    out.push('}');
    Bytes::from(out)
}

#[cfg(test)]
mod tests;
