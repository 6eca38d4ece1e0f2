//! Endpoint health and operational events. An endpoint whose attempts keep failing for
//! `auto_disable_after` (default 5 days, as Svix) is disabled; a receiver answering 410
//! Gone disables its endpoint at once (see `worker.rs`). Both, and every delivery that
//! runs out of retries, are announced to the operator as webhooks: Herald publishes
//! `endpoint.disabled` and `message.attempt.exhausted` (Svix's shapes) into the
//! application whose uid is `operator_app`, if the operator created it, so its endpoints
//! receive them like any other message: signed, retried, recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use model::{AppId, Attempt, Endpoint, EndpointId, Message};
use serde_json::{Value, json};

use crate::ingest::Publish;
use crate::worker::{Dispatcher, Shared};

/// Endpoints failing continuously, and since when: a copy of the store's
/// `failing_endpoints`, loaded when the worker starts, so that a success costs a store
/// write only when it ends a failing streak.
#[derive(Default)]
pub(crate) struct Health {
    failing: Mutex<HashMap<EndpointId, DateTime<Utc>>>,
}

impl Health {
    pub(crate) fn failing_since(&self, endpoint: &EndpointId) -> Option<DateTime<Utc>> {
        self.lock().get(endpoint).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<EndpointId, DateTime<Utc>>> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Shared {
    /// Loads the failing endpoints recorded by earlier runs.
    pub(crate) async fn load_health(&self) {
        match self.store.failing_endpoints().await {
            Ok(rows) => self.health.lock().extend(rows),
            Err(err) => {
                tracing::warn!(error = %err, "loading endpoint health failed; failure streaks start afresh")
            }
        }
    }

    /// Notes the result of an attempt that reached (or tried to reach) the receiver:
    /// a success ends a failing streak; a failure starts one, or, once the streak has
    /// lasted `auto_disable_after`, disables the endpoint.
    pub(crate) async fn note_health(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        delivered: bool,
        now: DateTime<Utc>,
    ) {
        let since = self.health.lock().get(&endpoint.id).copied();
        match (delivered, since) {
            (true, None) => {}
            (true, Some(_)) => {
                self.health.lock().remove(&endpoint.id);
                if let Err(err) = self.store.clear_failing(&endpoint.id).await {
                    tracing::warn!(error = %err, endpoint_id = %endpoint.id, "clearing an endpoint's failure streak failed");
                }
            }
            (false, None) => {
                self.health.lock().insert(endpoint.id.clone(), now);
                if let Err(err) = self
                    .store
                    .mark_failing(&endpoint.app_id, &endpoint.id, now)
                    .await
                {
                    tracing::warn!(error = %err, endpoint_id = %endpoint.id, "recording an endpoint's failure streak failed");
                }
            }
            (false, Some(since)) => {
                let Some(window) = self.config.auto_disable_after else {
                    return;
                };
                let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::MAX);
                if now.signed_duration_since(since) >= window {
                    self.disable(endpoint, since, "failing").await;
                }
            }
        }
    }

    /// Disables `endpoint` (failing since `since`, for `reason`: `failing` or `gone`),
    /// forgets its streak and tells the operator.
    pub(crate) async fn disable(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        since: DateTime<Utc>,
        reason: &str,
    ) {
        match self
            .store
            .disable_endpoint(&endpoint.app_id, &endpoint.id, self.clock.now())
            .await
        {
            Ok(true) => {
                tracing::info!(
                    app_id = %endpoint.app_id,
                    endpoint_id = %endpoint.id,
                    failing_since = %since,
                    reason,
                    "endpoint disabled"
                );
                self.health.lock().remove(&endpoint.id);
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
        endpoint: &Endpoint,
        message: &Message,
        last: &Attempt,
    ) {
        let data = json!({
            "appId": message.app_id.as_str(),
            "msgId": message.id.as_str(),
            "msgEventId": message.event_id,
            "endpointId": endpoint.id.as_str(),
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
            let publish = Publish {
                app_id: app.id,
                event_type: event_type.to_owned(),
                payload: Arc::from(payload.to_string()),
                event_id: None,
                channels: None,
                tags: None,
                origin: None,
                entity: None,
                idempotency_key: None,
            };
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
