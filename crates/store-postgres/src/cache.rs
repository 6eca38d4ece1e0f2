//! A small cache of rows that several nodes write (applications, an application's
//! endpoints). Another node's write reaches it within `TTL`: an entry is kept for `TTL`
//! from the moment before the read that filled it, so a write committed more than `TTL`
//! before a lookup was in that read's snapshot, or the entry has expired. This node's own
//! writes empty it at once, and a read that raced with one of them is not kept.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long an entry is served: under the second in which the trait promises that other
/// nodes' writes are seen.
pub(crate) const TTL: Duration = Duration::from_millis(900);

/// Entries beyond which expired ones are swept out when a new one is kept.
const SWEEP_AT: usize = 4096;

pub(crate) struct Cache<K, V> {
    /// A `std` mutex: held for one map operation, never across an await.
    entries: Mutex<HashMap<K, (V, Instant)>>,
    /// Grows with every write of this node (see `invalidate`).
    generation: AtomicU64,
}

/// What a read must show `Cache::keep` to have its result kept: when it started, and the
/// cache's generation then.
#[derive(Clone, Copy)]
pub(crate) struct Ticket {
    started: Instant,
    generation: u64,
}

impl<K: Eq + Hash, V: Clone> Cache<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    /// The entry for `key`, unless it has expired.
    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(value, _)| value.clone())
    }

    /// Taken before a read whose result may be kept.
    pub(crate) fn ticket(&self) -> Ticket {
        Ticket {
            generation: self.generation.load(Ordering::SeqCst),
            started: Instant::now(),
        }
    }

    /// Keeps what a read found, unless this node wrote since the read began (the rows read
    /// may predate that write).
    pub(crate) fn keep(&self, key: K, value: V, ticket: Ticket) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::SeqCst) != ticket.generation {
            return;
        }
        if entries.len() >= SWEEP_AT {
            let now = Instant::now();
            entries.retain(|_, (_, expires)| *expires > now);
        }
        entries.insert(key, (value, ticket.started + TTL));
    }

    /// Forgets everything, after a write of this node committed.
    pub(crate) fn invalidate(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_with_a_write_is_not_kept() {
        let cache = Cache::<u8, &str>::new();
        let ticket = cache.ticket();
        cache.invalidate();
        cache.keep(1, "stale", ticket);
        assert_eq!(cache.get(&1), None);
        let ticket = cache.ticket();
        cache.keep(1, "fresh", ticket);
        assert_eq!(cache.get(&1), Some("fresh"));
        cache.invalidate();
        assert_eq!(cache.get(&1), None);
    }

    #[test]
    fn entries_expire() {
        let cache = Cache::<u8, &str>::new();
        let ticket = Ticket {
            started: Instant::now() - TTL,
            generation: 0,
        };
        cache.keep(1, "old", ticket);
        assert_eq!(cache.get(&1), None);
    }
}
