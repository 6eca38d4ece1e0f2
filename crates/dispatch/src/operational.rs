//! Operational consequences: disabling an endpoint (its streak lasted, or its receiver
//! answered 410 Gone) and telling the operator. Herald publishes `endpoint.disabled` and
//! `message.attempt.exhausted` (Svix's shapes) into the application whose uid is
//! `operator_app`, if the operator created it, so its endpoints receive them like any
//! other message: signed, retried, recorded. An endpoint is disabled by one conditional
//! write, so however many nodes decide it at once, one of them disables it and one
//! `endpoint.disabled` is published.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use model::{AppId, Attempt, Endpoint, EndpointId, Message};
use serde_json::{Value, json};

use crate::dispatcher::{Dispatcher, Shared};
use crate::ingest::Publish;
use crate::meters::Meters;

impl Shared {
    /// Disables `endpoint` (failing since `since`, for `reason`: `failing` or `gone`),
    /// forgets its streak and tells the operator.
    pub(crate) async fn disable(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        since: DateTime<Utc>,
        reason: &'static str,
    ) {
        match self
            .store
            .disable_endpoint(&endpoint.app_id, &endpoint.id, self.clock.now())
            .await
        {
            Ok(true) => {
                Meters::disabled(reason);
                tracing::info!(
                    app_id = %endpoint.app_id,
                    endpoint_id = %endpoint.id,
                    failing_since = %since,
                    reason,
                    "endpoint disabled"
                );
                self.health.remove(&endpoint.id);
                let _ = self.store.clear_failing(&endpoint.id).await;
                let data = json!({
                    "appId": endpoint.app_id.as_str(),
                    "endpointId": endpoint.id.as_str(),
                    "endpointUid": endpoint.uid,
                    "failSince": rfc3339(since),
                    "reason": reason,
                });
                self.emit(&endpoint.app_id, "endpoint.disabled", data);
            }
            // Disabled already (a concurrent attempt), or deleted meanwhile.
            Ok(false) | Err(store::StoreError::NotFound) => {}
            Err(err) => tracing::warn!(
                error = %err,
                endpoint_id = %endpoint.id,
                "disabling an endpoint failed; a later failure tries again"
            ),
        }
    }

    /// Tells the operator that the delivery of `message` to `endpoint` failed for good.
    pub(crate) fn attempts_exhausted(
        self: &Arc<Self>,
        endpoint: &EndpointId,
        message: &Message,
        last: &Attempt,
    ) {
        let data = json!({
            "appId": message.app_id.as_str(),
            "msgId": message.id.as_str(),
            "msgEventId": message.event_id,
            "endpointId": endpoint.as_str(),
            "lastAttempt": {
                "id": last.id.as_str(),
                "responseStatusCode": last.response_status_code,
                "timestamp": rfc3339(last.created_at),
            },
        });
        self.emit(&message.app_id, "message.attempt.exhausted", data);
    }

    /// Publishes an operational event into the operator application, in the background.
    /// Nothing happens if no operator application exists, and events about the operator
    /// application itself are not emitted (no loops).
    fn emit(self: &Arc<Self>, about: &AppId, event_type: &'static str, mut data: Value) {
        let Some(operator) = self.config.operator_app.clone() else {
            return;
        };
        let shared = self.clone();
        let about = about.clone();
        self.tasks.spawn(async move {
            let Ok(Some(app)) = shared.store.get_app(&operator).await else {
                return;
            };
            if app.id == about {
                return;
            }
            if let Ok(Some(subject)) = shared.store.get_app(about.as_str()).await {
                data["appUid"] = json!(subject.uid);
            }
            let payload = json!({
                "type": event_type,
                "timestamp": rfc3339(shared.clock.now()),
                "data": data,
            });
            let publish = Publish::event(
                app.id,
                event_type.to_owned(),
                Arc::from(payload.to_string()),
            );
            if let Err(err) = (Dispatcher { shared }).ingest(publish).await {
                tracing::warn!(error = %err, event_type, "publishing an operational event failed");
            }
        });
    }
}

/// A time as Svix writes it: RFC 3339, milliseconds, `Z`.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}
