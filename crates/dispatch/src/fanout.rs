//! Fan-out: which endpoints a message goes to. `fanout` is pure; `CompiledFilters` keeps
//! each endpoint's filter compiled (regexes included) until the endpoint changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use filter::Filter;
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

/// An endpoint's filter, compiled.
#[derive(Clone)]
pub(crate) enum Compiled {
    None,
    Filter(Arc<Filter>),
    /// A stored filter that no longer compiles (it was validated when set, so only a
    /// version change can cause this). Nothing is delivered through it.
    Invalid,
}

/// Compiled filters by endpoint, valid while the endpoint's `updated_at` is unchanged.
/// A `std` mutex: held only for a map lookup or insert.
#[derive(Default)]
pub(crate) struct CompiledFilters {
    by_endpoint: Mutex<HashMap<EndpointId, (DateTime<Utc>, Compiled)>>,
}

impl CompiledFilters {
    pub(crate) fn get(&self, endpoint: &Endpoint) -> Compiled {
        let Some(raw) = &endpoint.filter else {
            return Compiled::None;
        };
        let mut cache = self.by_endpoint.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((version, compiled)) = cache.get(&endpoint.id)
            && *version == endpoint.updated_at
        {
            return compiled.clone();
        }
        let compiled = match Filter::compile(raw) {
            Ok(filter) => Compiled::Filter(Arc::new(filter)),
            Err(err) => {
                tracing::error!(endpoint_id = %endpoint.id, error = %err, "stored endpoint filter is invalid; nothing is delivered through it");
                Compiled::Invalid
            }
        };
        cache.insert(endpoint.id.clone(), (endpoint.updated_at, compiled.clone()));
        compiled
    }
}

#[cfg(test)]
mod tests;
