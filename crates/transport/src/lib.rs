//! Outbound delivery. `http.rs` takes one prepared request and returns one `Outcome`:
//! a receiver's failure (non-2xx, timeout, refused connection) is data, never `Err`.
//! This is the only crate that opens outbound connections.

mod http;

pub use self::http::{HttpRequest, HttpTransport, HttpTransportConfig};
