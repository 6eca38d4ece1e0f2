//! Traces: a span for each publish and one for each attempt, the attempt a child of its
//! publish through the message's `traceparent`, which is stored with the message, so an
//! attempt after a restart, on another node or on a retry hours later still joins its
//! publish's trace. A publish that carries a W3C `traceparent` continues the publisher's
//! trace, and each attempt sends its own `traceparent` to the receiver.
//!
//! Spans go to the tracer provider the process installed (`herald serve --otlp-endpoint`).
//! Without one no span is made, and the publisher's `traceparent` (if any) is passed
//! through to receivers as it came, so a trace still reaches from the platform's service
//! to its customer's.

use std::collections::HashMap;

use opentelemetry::global::{self, BoxedSpan, BoxedTracer};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;

use model::{Endpoint, Message, Outcome};

const TRACEPARENT: &str = "traceparent";

pub(crate) struct Traces {
    /// `None` when spans are not exported: then none are made.
    tracer: Option<BoxedTracer>,
    propagator: TraceContextPropagator,
}

/// A span in progress (if spans are made) and the `traceparent` that continues it.
pub(crate) struct Traced {
    span: Option<BoxedSpan>,
    pub(crate) traceparent: Option<String>,
}

impl Traces {
    /// Spans through the process's global tracer provider when `export` is set.
    pub(crate) fn new(export: bool) -> Self {
        Self {
            tracer: export.then(|| global::tracer("herald")),
            propagator: TraceContextPropagator::new(),
        }
    }

    /// The publish of an event of `event_type` to `app`, continuing `parent` (the
    /// publisher's `traceparent`; one that is not valid W3C trace context is ignored).
    pub(crate) fn publish(&self, parent: Option<&str>, app: &str, event_type: &str) -> Traced {
        let parent = self.extract(parent);
        let Some(tracer) = &self.tracer else {
            return Traced {
                span: None,
                traceparent: self.inject(&parent),
            };
        };
        let span = tracer
            .span_builder("publish")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("herald.app_id", app.to_owned()),
                KeyValue::new("herald.event_type", event_type.to_owned()),
            ])
            .start_with_context(tracer, &parent);
        self.traced(span)
    }

    /// Attempt number `attempt` of `message` to `endpoint` (`url`: as shown, masked).
    pub(crate) fn attempt(
        &self,
        message: &Message,
        endpoint: &Endpoint,
        url: &str,
        attempt: u32,
    ) -> Traced {
        let Some(tracer) = &self.tracer else {
            return Traced {
                span: None,
                traceparent: message.traceparent.clone(),
            };
        };
        let parent = self.extract(message.traceparent.as_deref());
        let span = tracer
            .span_builder("attempt")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("herald.app_id", message.app_id.as_str().to_owned()),
                KeyValue::new("herald.msg_id", message.id.as_str().to_owned()),
                KeyValue::new("herald.event_type", message.event_type.clone()),
                KeyValue::new("herald.endpoint_id", endpoint.id.as_str().to_owned()),
                KeyValue::new("herald.attempt", i64::from(attempt)),
                KeyValue::new("url.full", url.to_owned()),
            ])
            .start_with_context(tracer, &parent);
        self.traced(span)
    }

    fn traced(&self, span: BoxedSpan) -> Traced {
        let context = Context::new().with_remote_span_context(span.span_context().clone());
        Traced {
            traceparent: self.inject(&context),
            span: Some(span),
        }
    }

    fn extract(&self, traceparent: Option<&str>) -> Context {
        match traceparent {
            Some(value) => {
                let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
                self.propagator.extract(&carrier)
            }
            None => Context::new(),
        }
    }

    /// The `traceparent` of the context's span, if it has a valid one.
    fn inject(&self, context: &Context) -> Option<String> {
        if !context.span().span_context().is_valid() {
            return None;
        }
        let mut carrier = HashMap::new();
        self.propagator.inject_context(context, &mut carrier);
        carrier.remove(TRACEPARENT)
    }
}

impl Traced {
    /// Ends the publish's span: stored as `msg_id`, or failed with `error`.
    pub(crate) fn published(mut self, result: Result<&str, &dyn std::error::Error>) {
        if let Some(span) = &mut self.span {
            match result {
                Ok(msg_id) => span.set_attribute(KeyValue::new("herald.msg_id", msg_id.to_owned())),
                Err(err) => span.set_status(Status::error(err.to_string())),
            }
            span.end();
        }
    }

    /// Ends the attempt's span with what the receiver did.
    pub(crate) fn attempted(mut self, outcome: &Outcome) {
        if let Some(span) = &mut self.span {
            if let Some(code) = outcome.status_code {
                span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            }
            if let Some(kind) = outcome.error {
                span.set_attribute(KeyValue::new("error.type", kind.as_str()));
                span.set_status(Status::error(kind.as_str()));
            } else {
                span.set_status(Status::Ok);
            }
            span.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_export_a_valid_traceparent_passes_through_and_others_are_dropped() {
        let traces = Traces::new(false);
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        for (given, kept) in [
            (Some(valid), Some(valid)),
            (None, None),
            (Some("not a traceparent"), None),
            // All-zero trace id: invalid by the W3C rules.
            (
                Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                None,
            ),
        ] {
            let traced = traces.publish(given, "app_1", "a.b");
            assert_eq!(traced.traceparent.as_deref(), kept, "{given:?}");
        }
    }
}
