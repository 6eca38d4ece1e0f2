//! Wake-ups between nodes: PostgreSQL's LISTEN/NOTIFY on one channel. A node that makes
//! work due for a poll (a resend, a recover, deliveries that did not fit in its memory,
//! deliveries released on shutdown) or changes an application or endpoint says so with
//! `NOTIFY`; every node listens on a connection of its own (not the pool's, which sends
//! its notices too, so announcing never waits for a pooled connection), wakes its poller
//! for work and empties its caches for changes. A wake-up that is lost (the
//! listener reconnecting, a notice sent while a node was away) only delays: the poller
//! polls on its own, and the caches expire within a second.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::sync::{Notify, mpsc};
use tokio_postgres::{AsyncMessage, NoTls};

/// The channel every node listens on.
pub(crate) const CHANNEL: &str = "herald_wake";

/// What a notice is about (its payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topic {
    /// Deliveries became due for a poll.
    Work,
    /// Endpoints were written.
    Endpoints,
    /// Applications were written.
    Apps,
}

impl Topic {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Work => "work",
            Self::Endpoints => "endpoints",
            Self::Apps => "apps",
        }
    }

    fn parse(payload: &str) -> Option<Self> {
        match payload {
            "work" => Some(Self::Work),
            "endpoints" => Some(Self::Endpoints),
            "apps" => Some(Self::Apps),
            _ => None,
        }
    }
}

/// How long the listener waits before connecting again after losing its connection.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// Listens until dropped: wakes `work` on work notices, and calls `changed` with the topic
/// of every notice (to empty caches); sends this node's notices. Reconnects by itself.
pub(crate) struct Listener {
    task: tokio::task::JoinHandle<()>,
    announce: mpsc::UnboundedSender<Topic>,
}

impl Listener {
    pub(crate) fn start(
        config: tokio_postgres::Config,
        work: Arc<Notify>,
        changed: impl Fn(Topic) + Send + Sync + 'static,
    ) -> Self {
        let (announce, announced) = mpsc::unbounded_channel();
        Self {
            task: tokio::spawn(listen(config, work, changed, announced)),
            announce,
        }
    }

    /// Tells every node (this one too) about `topic`. Best effort: a notice announced
    /// while the connection is down is lost, which only delays.
    pub(crate) fn announce(&self, topic: Topic) {
        let _ = self.announce.send(topic);
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn listen(
    mut config: tokio_postgres::Config,
    work: Arc<Notify>,
    changed: impl Fn(Topic) + Send + Sync + 'static,
    mut announced: mpsc::UnboundedReceiver<Topic>,
) {
    // A connection that died without a word (a server gone, a network split) is noticed
    // within a minute, not after the kernel's default two hours.
    config
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30));
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                let listen = format!("LISTEN {CHANNEL}");
                let listening = client.batch_execute(&listen);
                // The LISTEN is answered through the connection, which must be polled
                // meanwhile; notices may arrive as soon as it is done.
                let mut listening = std::pin::pin!(listening);
                let mut listened = false;
                // Notices being sent: each is a query answered through the connection. A
                // topic already being sent is not sent again meanwhile (a burst of
                // publishes that overflow memory makes one notice, not one each).
                let mut sending = FuturesUnordered::new();
                let mut pending: Vec<Topic> = Vec::new();
                loop {
                    tokio::select! {
                        Some((topic, sent)) = sending.next(), if !sending.is_empty() => {
                            pending.retain(|t| *t != topic);
                            let sent: Result<(), tokio_postgres::Error> = sent;
                            if let Err(err) = sent {
                                tracing::debug!(error = %err, "announcing a change failed");
                            }
                        }
                        Some(topic) = announced.recv() => {
                            let topic: Topic = topic;
                            if !pending.contains(&topic) {
                                pending.push(topic);
                                let sql = format!("NOTIFY {CHANNEL}, '{}'", topic.as_str());
                                let client = &client;
                                sending.push(async move { (topic, client.batch_execute(&sql).await) });
                            }
                        }
                        done = &mut listening, if !listened => {
                            if let Err(err) = done {
                                tracing::debug!(error = %err, "LISTEN failed; connecting again");
                                break;
                            }
                            listened = true;
                            // Whatever was announced while no one listened: poll once.
                            work.notify_waiters();
                        }
                        message = messages.next() => match message {
                            Some(Ok(AsyncMessage::Notification(notice))) => {
                                if let Some(topic) = Topic::parse(notice.payload()) {
                                    if topic == Topic::Work {
                                        work.notify_waiters();
                                    }
                                    changed(topic);
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(err)) => {
                                tracing::debug!(error = %err, "the wake-up connection failed; connecting again");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(err) => {
                tracing::debug!(error = %err, "connecting for wake-ups failed; trying again");
            }
        }
        tokio::time::sleep(RECONNECT_AFTER).await;
    }
}
