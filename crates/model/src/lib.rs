//! Herald's vocabulary: typed ids, applications, endpoints, messages, deliveries,
//! attempts and outcomes. Nothing here performs I/O or depends on an async runtime,
//! a database or HTTP crate (`url` parses endpoint URLs). Read `ids.rs` next, then `entities.rs`.

mod capabilities;
mod clock;
pub mod destination;
mod entities;
mod ids;

pub use capabilities::{Capabilities, Capability};
pub use clock::{Clock, SystemClock};
pub use entities::*;
pub use ids::{AppId, AttemptId, DeliveryId, EndpointId, MessageId, TokenId, new_id};
