//! Ingest: store a message and one delivery per matching endpoint in one durable
//! transaction, then hand the deliveries to the worker. A returned `Ok` means stored.

use std::sync::Arc;

use model::{AppId, DeliveryId, Message, MessageId, Trigger};
use store::{Inserted, NewDelivery, NewMessage};

use crate::fanout::{event_document, fanout};
use crate::worker::{Dispatcher, Job};

/// A message to publish, validated by the caller.
#[derive(Debug, Clone)]
pub struct Publish {
    pub app_id: AppId,
    pub event_type: String,
    /// The payload's JSON text exactly as published.
    pub payload: Arc<str>,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The party that caused the event (see `Endpoint::party`).
    pub origin: Option<String>,
    pub idempotency_key: Option<String>,
}

/// What ingest stored.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub message: Message,
    /// `false` when the idempotency key was seen before and `message` is the earlier one.
    pub created: bool,
    /// Deliveries created (endpoints the message goes to).
    pub deliveries: usize,
}

/// The filter document of a message. Its payload was validated as a JSON object at the API.
pub(crate) fn document_of(message: &Message) -> serde_json::Value {
    let payload = serde_json::from_str(&message.payload).unwrap_or(serde_json::Value::Null);
    event_document(
        &message.event_type,
        message.channels.as_deref(),
        message.tags.as_deref(),
        payload,
    )
}

impl Dispatcher {
    /// Stores the message with its deliveries, durably, then queues them for attempts.
    pub async fn ingest(&self, publish: Publish) -> store::Result<Ingested> {
        let shared = &self.shared;
        let now = shared.clock.now();
        let message = Message {
            id: MessageId::generate(),
            app_id: publish.app_id,
            event_id: publish.event_id,
            event_type: publish.event_type,
            payload: publish.payload,
            channels: publish.channels,
            tags: publish.tags,
            origin: publish.origin,
            created_at: now,
        };
        let endpoints = shared.store.app_endpoints(&message.app_id).await?;
        // The event document is built only if an endpoint has a filter to show it to.
        let mut document: Option<serde_json::Value> = None;
        let targets = fanout(&endpoints, &message, |ep| {
            let rules = shared.rules.get(ep);
            !rules.can_refuse()
                || rules.passes(document.get_or_insert_with(|| document_of(&message)))
        });
        let n = targets.len();
        // Deliveries that fit in memory are created leased to this process and queued
        // right after the commit; the others stay due in the store for the poller.
        let queued = n > 0 && shared.try_reserve(n);
        let leased_until = queued
            .then(|| now + chrono::Duration::from_std(shared.config.lease).unwrap_or_default());
        let deliveries: Vec<NewDelivery> = targets
            .iter()
            .map(|ep| NewDelivery {
                id: DeliveryId::generate(),
                endpoint_id: ep.id.clone(),
                leased_until,
            })
            .collect();
        let inserted = shared
            .store
            .insert_message(NewMessage {
                message: message.clone(),
                deliveries: deliveries.clone(),
                idempotency_key: publish.idempotency_key,
            })
            .await;
        match inserted {
            Ok(Inserted::Created) => {
                if queued {
                    let shared_msg = Arc::new(message.clone());
                    let jobs = deliveries.into_iter().map(|d| Job {
                        delivery_id: d.id,
                        endpoint_id: d.endpoint_id,
                        message: shared_msg.clone(),
                        attempts: 0,
                        trigger: Trigger::Scheduled,
                    });
                    shared.enqueue(jobs, n);
                } else if n > 0 {
                    self.wake();
                }
                Ok(Ingested {
                    message,
                    created: true,
                    deliveries: n,
                })
            }
            Ok(Inserted::Existing(earlier)) => {
                if queued {
                    shared.unreserve(n);
                }
                Ok(Ingested {
                    message: earlier,
                    created: false,
                    deliveries: 0,
                })
            }
            Err(err) => {
                if queued {
                    shared.unreserve(n);
                }
                Err(err)
            }
        }
    }
}
