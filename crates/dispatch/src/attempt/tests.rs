//! The size of an attempt's future: every attempt runs in a task of its own, and a task's
//! future is copied at each spawn, into the task and at each change of its stage. With
//! connecting (DNS, TCP, the TLS handshake) inline it was 8 KB and the task 16 KB, and
//! copying it was most of the `memcpy` that led Herald's profile in `fanout` (see
//! docs/PERFORMANCE.md).

use std::time::Duration;

use chrono::Utc;
use transport::{DestinationPolicy, HttpTransportConfig, Transports};

use super::attempt;
use crate::testing::{endpoint, message};

/// Twice what it is (about 2 KB, in debug and release builds alike), well below what
/// inlining the connect path costs (8 KB).
const MAX_ATTEMPT_FUTURE: usize = 4 * 1024;

#[test]
fn an_attempts_future_keeps_the_connect_path_boxed() {
    let transports = Transports::new(HttpTransportConfig {
        timeout: Duration::from_secs(30),
        max_response_bytes: 20 * 1024,
        user_agent: "Herald/test".into(),
        max_idle_per_host: 8,
        destinations: DestinationPolicy::default(),
        extra_roots: Vec::new(),
    })
    .expect("transports");
    let (endpoint, msg) = (endpoint(None, None, false), message("order.created", None));
    // Built, never polled: nothing is sent. Its size is its type's, whichever transport
    // the endpoint's URL picks.
    let future = attempt(&transports, &endpoint, &msg, "{}", Utc::now(), None);
    let size = std::mem::size_of_val(&future);
    assert!(
        size <= MAX_ATTEMPT_FUTURE,
        "an attempt's future is {size} bytes (limit {MAX_ATTEMPT_FUTURE}): box the large, \
         rarely taken await that grew it"
    );
}
