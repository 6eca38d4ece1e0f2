//! Per-endpoint `throttleRate`: at most that many attempts start per second, evenly spaced.
//! Each endpoint keeps the earliest time its next attempt may start; an attempt waits for
//! its turn inside the endpoint's own concurrency slot, so other endpoints are not held up.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use model::EndpointId;
use tokio::time::Instant;

/// The next free start time per throttled endpoint. A `std` mutex: held for one map
/// operation, never across the wait.
#[derive(Default)]
pub(crate) struct Throttle {
    next_start: Mutex<HashMap<EndpointId, Instant>>,
}

impl Throttle {
    /// Waits until an attempt to `endpoint` may start under `rate` per second.
    pub(crate) async fn wait_turn(&self, endpoint: &EndpointId, rate: u32) {
        if rate == 0 {
            return;
        }
        let spacing = Duration::from_secs(1) / rate;
        let turn = {
            let mut next = self.next_start.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = next
                .get(endpoint)
                .copied()
                .filter(|t| *t > now)
                .unwrap_or(now);
            next.insert(endpoint.clone(), slot + spacing);
            slot
        };
        tokio::time::sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    //! Pacing, checked on Tokio's paused clock.

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn attempts_are_spaced_by_the_rate() {
        let throttle = Throttle::default();
        let ep = EndpointId::generate();
        let start = Instant::now();
        for _ in 0..5 {
            throttle.wait_turn(&ep, 4).await;
        }
        // Five starts at 4 per second: at 0, 250, 500, 750 and 1000 ms.
        assert_eq!(Instant::now() - start, Duration::from_millis(1000));
        let other = EndpointId::generate();
        let before = Instant::now();
        throttle.wait_turn(&other, 4).await;
        assert_eq!(Instant::now(), before, "other endpoints are not held up");
    }
}
