//! Outbound delivery. `http.rs` takes one prepared request and returns one `Outcome`;
//! `amqp.rs` does the same for one message published to a subscriber's broker. A
//! receiver's failure (non-2xx, timeout, refused connection, nack) is data, never `Err`.
//! This is the only crate that opens outbound connections.

use std::sync::Arc;

mod amqp;
mod guard;
mod http;

pub use self::amqp::{AmqpRequest, AmqpTransport};
pub use self::guard::{DestinationPolicy, Refused, non_global};
pub use self::http::{BuildError, HttpRequest, HttpTransport, HttpTransportConfig};

/// Every transport, for the attempt stage to pick from by the endpoint's URL.
#[derive(Clone)]
pub struct Transports {
    pub http: HttpTransport,
    pub amqp: AmqpTransport,
}

impl Transports {
    pub fn new(config: HttpTransportConfig) -> Result<Self, BuildError> {
        // Built once: the verifier loads the platform's roots.
        let tls = http::client_tls(&config.extra_roots)?;
        let amqp = AmqpTransport::new(
            config.timeout,
            config.destinations.clone(),
            Arc::new(tls.clone()),
        );
        Ok(Self {
            http: HttpTransport::with_tls(config, tls)?,
            amqp,
        })
    }
}
