//! Fan-out: which endpoints a message goes to. `fanout` is pure; `CompiledRules` keeps
//! each endpoint's filter and transform compiled (regexes included) until it changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use filter::{Filter, Transform};
use model::{Endpoint, EndpointId, Message};
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

/// The document filters see: `{"eventType", "channels", "tags", "payload"}`.
pub fn event_document(
    event_type: &str,
    channels: Option<&[String]>,
    tags: Option<&[String]>,
    payload: Value,
) -> Value {
    json!({
        "eventType": event_type,
        "channels": channels.unwrap_or_default(),
        "tags": tags.unwrap_or_default(),
        "payload": payload,
    })
}

/// An endpoint's filter and transform, compiled.
#[derive(Clone, Default)]
pub(crate) struct Rules {
    pub(crate) filter: Option<Arc<Filter>>,
    pub(crate) transform: Option<Arc<Transform>>,
    /// A stored filter or transform that no longer compiles (both are validated when set,
    /// so only a version change can cause this). Nothing is delivered to the endpoint.
    pub(crate) invalid: bool,
}

impl Rules {
    /// Whether the endpoint's rules can refuse an event: a filter, or rules that are
    /// invalid. (A transform alone changes what is sent, not whether it is sent.)
    pub(crate) fn can_refuse(&self) -> bool {
        self.filter.is_some() || self.invalid
    }

    /// Whether the event goes to the endpoint: the transform is applied to a copy of the
    /// document first, so the filter sees the transformed event.
    pub(crate) fn passes(&self, document: &Value) -> bool {
        if self.invalid {
            return false;
        }
        let Some(filter) = &self.filter else {
            return true;
        };
        match &self.transform {
            None => filter.matches(document),
            Some(transform) => {
                let mut document = document.clone();
                transform.apply(&mut document);
                filter.matches(&document)
            }
        }
    }
}

/// Compiled rules by endpoint, valid while the endpoint's `updated_at` is unchanged.
/// A `std` mutex: held only for a map lookup or insert.
#[derive(Default)]
pub(crate) struct CompiledRules {
    by_endpoint: Mutex<HashMap<EndpointId, (DateTime<Utc>, Rules)>>,
}

impl CompiledRules {
    pub(crate) fn get(&self, endpoint: &Endpoint) -> Rules {
        if endpoint.filter.is_none() && endpoint.transform.is_none() {
            return Rules::default();
        }
        let mut cache = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, rules)) = cache.get(&endpoint.id)
            && *version == endpoint.updated_at
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
        cache.insert(endpoint.id.clone(), (endpoint.updated_at, rules.clone()));
        rules
    }
}

#[cfg(test)]
mod tests;
