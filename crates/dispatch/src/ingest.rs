//! Ingest: store a message and one delivery per matching endpoint in one durable
//! transaction, then hand the deliveries to the worker. A returned `Ok` means stored.

use std::sync::Arc;

use model::{AppId, DeliveryId, Endpoint, EndpointId, EntityRef, Message, MessageId, Trigger};
use store::{Deliveries, FIRST_GENERATION, Inserted, NewDelivery, NewMessage};

use crate::dispatcher::{Dispatcher, Shared, lease_end};
use crate::fanout::{document_of, fanout};
use crate::queues::Job;

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
    /// The entity the message is about (see `Message::entity`).
    pub entity: Option<EntityRef>,
    pub idempotency_key: Option<String>,
    /// A test event for this one endpoint (`send-example`): it goes there whatever the
    /// endpoint subscribes to and its filter, and nowhere else.
    pub only: Option<EndpointId>,
    /// The publisher's W3C `traceparent`, continued by the publish and its attempts.
    pub traceparent: Option<String>,
    /// How long the payload is kept, if the publisher asked (Svix's
    /// `payloadRetentionPeriod`).
    pub payload_retention: Option<std::time::Duration>,
}

impl Publish {
    /// An event of `event_type` carrying `payload` for `app_id`, and nothing more: no
    /// event id, channels, tags, origin, entity, idempotency key or single target.
    pub fn event(app_id: AppId, event_type: String, payload: Arc<str>) -> Self {
        Self {
            app_id,
            event_type,
            payload,
            event_id: None,
            channels: None,
            tags: None,
            origin: None,
            entity: None,
            idempotency_key: None,
            only: None,
            traceparent: None,
            payload_retention: None,
        }
    }
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

impl Dispatcher {
    /// Stores the message with its deliveries, durably, then queues them for attempts.
    pub async fn ingest(&self, publish: Publish) -> store::Result<Ingested> {
        let traced = self.shared.traces.publish(
            publish.traceparent.as_deref(),
            publish.app_id.as_str(),
            &publish.event_type,
        );
        let traceparent = traced.traceparent.clone();
        let ingested = self.ingest_traced(publish, traceparent).await;
        traced.published(match &ingested {
            Ok(ingested) => Ok(ingested.message.id.as_str()),
            Err(err) => Err(err),
        });
        ingested
    }

    async fn ingest_traced(
        &self,
        publish: Publish,
        traceparent: Option<String>,
    ) -> store::Result<Ingested> {
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
            entity: publish.entity,
            previous: None,
            traceparent,
            payload_expires_at: publish
                .payload_retention
                .and_then(|r| chrono::Duration::from_std(r).ok())
                .and_then(|r| now.checked_add_signed(r)),
            created_at: now,
        };
        let endpoints = shared.store.app_endpoints(&message.app_id).await?;
        // A message about an entity is fanned out against the entity's previous snapshot,
        // which only the store's write knows: the endpoints that subscribe to it are
        // picked here, and their rules are applied inside the write. Memory is reserved
        // for all of them and given back for those that do not pass.
        let entity = message.entity.is_some();
        let mut document: Option<serde_json::Value> = None;
        let targets = match &publish.only {
            Some(only) => endpoints.iter().filter(|ep| ep.id == *only).collect(),
            None => fanout(&endpoints, &message, |ep| {
                if entity {
                    return true;
                }
                let rules = shared.rules.get(ep);
                !rules.can_refuse(false)
                    || rules.passes(document.get_or_insert_with(|| document_of(&message)))
            }),
        };
        // Deliveries that fit in memory (in all, and their endpoint's share) are created
        // leased to this process and queued right after the commit; the others stay due
        // in the store for the poller.
        let mut reservation = Reservation {
            shared,
            fits: shared.reserve(targets.iter().map(|ep| &ep.id)),
            targets: &targets,
            open: true,
        };
        let fits = &reservation.fits;
        let lease_end = lease_end(&shared.config, now);
        let candidates: Vec<_> = if entity {
            targets
                .iter()
                .zip(fits)
                .map(|(ep, fits)| (ep.id.clone(), shared.rules.get(ep), *fits))
                .collect()
        } else {
            Vec::new()
        };
        // When no rule could refuse it whatever the snapshot, the write only records the
        // snapshot: the deliveries are known now, and no JSON is handled in the write.
        let deferred = candidates
            .iter()
            .any(|(_, rules, _)| rules.can_refuse(true));
        let deliveries = if deferred {
            // The store may call the decision twice (see `store::Decide`), so the
            // document is lent to each call, `previous` added and taken out again. A
            // `std` mutex: only the store's writer thread ever takes it.
            let document = std::sync::Mutex::new(document_of(&message));
            Deliveries::FromPrevious(Box::new(move |previous| {
                let mut document = document.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(previous) = previous {
                    document["previous"] =
                        serde_json::from_str(previous).unwrap_or(serde_json::Value::Null);
                }
                let deliveries = candidates
                    .iter()
                    .filter(|(_, rules, _)| {
                        !rules.can_refuse(previous.is_some()) || rules.passes(&document)
                    })
                    .map(|(endpoint_id, _, fits)| NewDelivery {
                        id: DeliveryId::generate(),
                        endpoint_id: endpoint_id.clone(),
                        leased_until: fits.then_some(lease_end),
                    })
                    .collect();
                if let Some(fields) = document.as_object_mut() {
                    fields.remove("previous");
                }
                deliveries
            }))
        } else {
            Deliveries::Known(
                targets
                    .iter()
                    .zip(fits)
                    .map(|(ep, fits)| NewDelivery {
                        id: DeliveryId::generate(),
                        endpoint_id: ep.id.clone(),
                        leased_until: fits.then_some(lease_end),
                    })
                    .collect(),
            )
        };
        let inserted = shared
            .store
            .insert_message(NewMessage {
                message: message.clone(),
                owner: shared.config.node,
                deliveries,
                idempotency_key: publish.idempotency_key,
            })
            .await;
        match inserted {
            Ok(Inserted::Created {
                previous,
                deliveries,
            }) => {
                let mut message = message;
                message.previous = previous;
                let created = deliveries.len();
                let left_in_store = deliveries.iter().any(|d| d.leased_until.is_none());
                if reservation.fits.contains(&true) {
                    let shared_msg = Arc::new(message.clone());
                    let jobs = deliveries
                        .into_iter()
                        .filter(|d| d.leased_until.is_some())
                        .map(|d| Job {
                            delivery_id: d.id,
                            endpoint_id: d.endpoint_id,
                            message: shared_msg.clone(),
                            attempts: 0,
                            trigger: Trigger::Scheduled,
                            generation: FIRST_GENERATION,
                            lease_until: lease_end,
                            due: now,
                        });
                    shared.enqueue(jobs, reservation.endpoints());
                }
                reservation.open = false;
                if left_in_store {
                    self.wake();
                }
                Ok(Ingested {
                    message,
                    created: true,
                    deliveries: created,
                })
            }
            // The reservation is given back as it drops.
            Ok(Inserted::Existing(earlier)) => Ok(Ingested {
                message: *earlier,
                created: false,
                deliveries: 0,
            }),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests;

/// The in-memory slots `reserve` promised to an ingest's deliveries (`fits`, by target),
/// given back when dropped unless `enqueue` took them: an ingest whose caller goes away
/// (a client that disconnects mid-publish drops the handler's future) must not keep them
/// for ever. Its deliveries, if the write committed, stay leased and are taken up again
/// by a poll when the lease ends.
struct Reservation<'a> {
    shared: &'a Shared,
    targets: &'a [&'a Endpoint],
    fits: Vec<bool>,
    open: bool,
}

impl Reservation<'_> {
    fn endpoints(&self) -> impl Iterator<Item = &EndpointId> {
        self.targets
            .iter()
            .zip(&self.fits)
            .filter(|(_, fits)| **fits)
            .map(|(ep, _)| &ep.id)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.open {
            self.shared.unreserve(self.endpoints());
        }
    }
}
