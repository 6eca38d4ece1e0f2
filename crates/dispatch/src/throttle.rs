//! Per-endpoint `throttleRate`: at most that many attempts start per second, evenly
//! spaced, by all nodes together. The store hands out the start times
//! (`Store::throttle_slot`, one shared schedule per endpoint); an attempt waits for its
//! start inside the endpoint's own concurrency slot, so other endpoints are not held up.

use std::time::Duration;

use model::EndpointId;

use crate::dispatcher::Shared;

impl Shared {
    /// Waits until an attempt to `endpoint` may start under `rate` per second.
    pub(crate) async fn wait_turn(&self, endpoint: &EndpointId, rate: u32) {
        if rate == 0 {
            return;
        }
        let wait = match self
            .store
            .throttle_slot(endpoint, rate, self.clock.now())
            .await
        {
            // Measured after the round trip, so a slow store does not push the start
            // later by its own delay (late starts bunch up behind early ones).
            Ok(start) => start
                .signed_duration_since(self.clock.now())
                .to_std()
                .unwrap_or_default(),
            Err(err) => {
                // Without the shared schedule, keep this node's own pace at the rate.
                tracing::warn!(error = %err, endpoint_id = %endpoint, "reserving a throttled start failed; waiting one interval");
                Duration::from_secs(1) / rate
            }
        };
        tokio::time::sleep(wait).await;
    }
}
