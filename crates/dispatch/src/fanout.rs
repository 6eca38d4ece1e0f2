//! Fan-out: which endpoints a message goes to. `fanout` is pure; `CompiledRules` keeps
//! each endpoint's filter, transform and diff compiled (regexes included) until it
//! changes; `Rules` decides whether an event passes and what body an endpoint gets.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use filter::{Diff, Filter, Transform};
use model::{Endpoint, EndpointId, Message, PayloadMode};
use serde_json::{Value, json};

/// The endpoints of the message's application that subscribe to it: enabled, event type
/// in their `filterTypes` (or none set), channels intersecting (Svix's rules), and for
/// which `passes` (the endpoint's filter) holds.
pub fn fanout<'a>(
    endpoints: &'a [Endpoint],
    message: &Message,
    mut passes: impl FnMut(&Endpoint) -> bool,
) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|ep| {
            ep.subscribes_to(
                &message.event_type,
                message.channels.as_deref(),
                message.origin.as_deref(),
            )
        })
        .filter(|ep| passes(ep))
        .collect()
}

/// The document filters see: `{"eventType", "channels", "tags", "payload"}`, and
/// `"previous"` (the entity's previous snapshot) when the message has one.
pub fn event_document(
    event_type: &str,
    channels: Option<&[String]>,
    tags: Option<&[String]>,
    payload: Value,
    previous: Option<Value>,
) -> Value {
    let mut document = json!({
        "eventType": event_type,
        "channels": channels.unwrap_or_default(),
        "tags": tags.unwrap_or_default(),
        "payload": payload,
    });
    if let Some(previous) = previous {
        document["previous"] = previous;
    }
    document
}

/// The filter document of a stored message. Payloads were validated as JSON objects at
/// the API; the previous snapshot is one of them.
pub(crate) fn document_of(message: &Message) -> Value {
    let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
    event_document(
        &message.event_type,
        message.channels.as_deref(),
        message.tags.as_deref(),
        parse(&message.payload),
        message.previous.as_deref().map(parse),
    )
}

/// An endpoint's filter, transform and diff, compiled.
#[derive(Clone, Default)]
pub(crate) struct Rules {
    pub(crate) filter: Option<Arc<Filter>>,
    pub(crate) transform: Option<Arc<Transform>>,
    /// Set for `payload: "diff"` endpoints.
    pub(crate) diff: Option<Arc<Diff>>,
    /// A stored filter or transform that no longer compiles (both are validated when set,
    /// so only a version change can cause this). Nothing is delivered to the endpoint.
    pub(crate) invalid: bool,
}

impl Rules {
    /// Whether the endpoint's rules can refuse an event: a filter, rules that are
    /// invalid, or, when the event has a previous snapshot, a diff (nothing changed). A
    /// transform alone changes what is sent, not whether it is sent.
    pub(crate) fn can_refuse(&self, has_previous: bool) -> bool {
        self.filter.is_some() || self.invalid || (has_previous && self.diff.is_some())
    }

    /// Whether the event goes to the endpoint: its filter holds on the transformed event,
    /// and, for a diff endpoint, something changed since the previous snapshot.
    pub(crate) fn passes(&self, document: &Value) -> bool {
        if self.invalid {
            return false;
        }
        if self.filter.is_none() && self.diff.is_none() {
            return true;
        }
        let view = self.view(document);
        if let Some(filter) = &self.filter
            && !filter.matches(&view)
        {
            return false;
        }
        match (&self.diff, view.get("previous")) {
            (Some(diff), Some(previous)) => diff.apply(previous, &view["payload"]).is_some(),
            _ => true,
        }
    }

    /// The event as this endpoint sees it: the transform applied to the previous snapshot
    /// (as the payload of an event of its own), then to the event, which sees that
    /// transformed snapshot: old and new values compare alike (mapped statuses with
    /// mapped statuses), and a `prevKey` copied from `previous.key` is mapped too.
    pub(crate) fn view<'a>(&self, document: &'a Value) -> Cow<'a, Value> {
        let Some(transform) = &self.transform else {
            return Cow::Borrowed(document);
        };
        let mut view = document.clone();
        // The snapshot is transformed as the payload of an event without a previous one.
        let old = view
            .as_object_mut()
            .and_then(|o| o.remove("previous"))
            .map(|previous| {
                let mut old = view.clone();
                old["payload"] = previous;
                transform.apply(&mut old);
                old["payload"].take()
            });
        // The event sees the transformed snapshot, so `set prevKey from previous.key`
        // carries the mapped status, as `key` does.
        if let Some(old) = old {
            view["previous"] = old;
        }
        transform.apply(&mut view);
        Cow::Owned(view)
    }

    /// The body to send for `message` when it is not the payload as published: the
    /// transformed payload, or for a diff endpoint what changed since the previous
    /// snapshot. (A diff of nothing, which fan-out never delivers, sends the full
    /// payload: that only happens on an explicit resend.)
    pub(crate) fn body(&self, message: &Message) -> Option<String> {
        let diffs = self.diff.is_some() && message.previous.is_some();
        if self.transform.is_none() && !diffs {
            return None;
        }
        let document = document_of(message);
        let view = self.view(&document);
        if diffs
            && let (Some(diff), Some(previous)) = (&self.diff, view.get("previous"))
            && let Some(changed) = diff.apply(previous, &view["payload"])
        {
            return Some(changed.to_string());
        }
        Some(view["payload"].to_string())
    }
}

/// What an endpoint with these rules does with an event document: whether it is
/// delivered, the event its filter sees, and the body it would receive.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    pub matches: bool,
    /// The document after the transform (with the transformed previous snapshot).
    pub event: Value,
    /// The payload sent (transformed, or the diff), before any envelope.
    pub body: Value,
}

/// Which rule failed to compile in `preview`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Filter,
    Transform,
    DiffKeep,
}

/// Applies rules given as stored on an endpoint (`diff_keep` is `Some` for a diff
/// endpoint) to `document`, exactly as fan-out and attempts do. For trying rules out.
pub fn preview(
    filter: Option<&Value>,
    transform: Option<&Value>,
    diff_keep: Option<&[String]>,
    document: &Value,
) -> Result<Preview, (RuleKind, filter::FilterError)> {
    let rules = Rules {
        filter: filter
            .map(Filter::compile)
            .transpose()
            .map_err(|e| (RuleKind::Filter, e))?
            .map(Arc::new),
        transform: transform
            .map(Transform::compile)
            .transpose()
            .map_err(|e| (RuleKind::Transform, e))?
            .map(Arc::new),
        diff: diff_keep
            .map(Diff::compile)
            .transpose()
            .map_err(|e| (RuleKind::DiffKeep, e))?
            .map(Arc::new),
        invalid: false,
    };
    let matches = rules.passes(document);
    let event = rules.view(document).into_owned();
    let body = match (&rules.diff, event.get("previous")) {
        (Some(diff), Some(previous)) => diff.apply(previous, &event["payload"]),
        _ => None,
    }
    .unwrap_or_else(|| event["payload"].clone());
    Ok(Preview {
        matches,
        event,
        body,
    })
}

/// Compiled rules by endpoint, valid while the endpoint's `revision` is unchanged.
/// A `std` mutex: held only for a map lookup or insert.
#[derive(Default)]
pub(crate) struct CompiledRules {
    by_endpoint: Mutex<HashMap<EndpointId, (u64, Rules)>>,
}

impl CompiledRules {
    pub(crate) fn get(&self, endpoint: &Endpoint) -> Rules {
        if endpoint.filter.is_none()
            && endpoint.transform.is_none()
            && endpoint.payload_mode == PayloadMode::Full
        {
            return Rules::default();
        }
        let mut cache = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, rules)) = cache.get(&endpoint.id)
            && *version == endpoint.revision
        {
            return rules.clone();
        }
        let mut rules = Rules::default();
        if let Some(raw) = &endpoint.filter {
            match Filter::compile(raw) {
                Ok(filter) => rules.filter = Some(Arc::new(filter)),
                Err(err) => {
                    tracing::error!(endpoint_id = %endpoint.id, error = %err, "stored endpoint filter is invalid; nothing is delivered to it");
                    rules.invalid = true;
                }
            }
        }
        if let Some(raw) = &endpoint.transform {
            match Transform::compile(raw) {
                Ok(transform) => rules.transform = Some(Arc::new(transform)),
                Err(err) => {
                    tracing::error!(endpoint_id = %endpoint.id, error = %err, "stored endpoint transform is invalid; nothing is delivered to it");
                    rules.invalid = true;
                }
            }
        }
        if endpoint.payload_mode == PayloadMode::Diff {
            match Diff::compile(&endpoint.diff_keep) {
                Ok(diff) => rules.diff = Some(Arc::new(diff)),
                Err(err) => {
                    tracing::error!(endpoint_id = %endpoint.id, error = %err, "stored endpoint diffKeep is invalid; nothing is delivered to it");
                    rules.invalid = true;
                }
            }
        }
        cache.insert(endpoint.id.clone(), (endpoint.revision, rules.clone()));
        rules
    }
}

#[cfg(test)]
mod tests;
