//! Fan-out: which endpoints a message goes to. Pure.

use model::{Endpoint, Message};

/// The endpoints of the message's application that subscribe to it: enabled, event type
/// in their `filterTypes` (or none set), channels intersecting (Svix's rules).
pub fn fanout<'a>(endpoints: &'a [Endpoint], message: &Message) -> Vec<&'a Endpoint> {
    endpoints
        .iter()
        .filter(|ep| ep.subscribes_to(&message.event_type, message.channels.as_deref()))
        .collect()
}

#[cfg(test)]
mod tests;
