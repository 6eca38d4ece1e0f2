//! When a writer that pays a commit per batch (a node's group of publishes, its batch of
//! attempt records, on PostgreSQL) waits for more before writing. Writing at once keeps
//! latency low but, when each node holds only its share of the load, makes batches small
//! and commits many; waiting a fixed time costs every write that time even when nothing
//! more is coming. So a writer waits for a target only as long as its recent arrival rate
//! says the target is coming, never beyond a cap, and not at all under a light load (not
//! even one more expected within the cap). The target is the writer's: the group of
//! publishes waits for as many as its previous group held (what its publishers have shown
//! they bring: a lone publisher waiting for each answer is never made to wait), the
//! recorder for a fixed batch once its previous batch held more than one.

use std::time::{Duration, Instant};

/// How long to wait before writing `waiting` items for `target` of them, arrivals running
/// at `per_second`: the time the rate needs to bring the batch to `target`, at most
/// `max`; zero once it holds that many, or when fewer than one more arrival is expected
/// within `max`.
pub fn linger(waiting: usize, target: usize, per_second: f64, max: Duration) -> Duration {
    if waiting >= target || !per_second.is_finite() || per_second * max.as_secs_f64() < 1.0 {
        return Duration::ZERO;
    }
    let fill = (target - waiting) as f64 / per_second;
    Duration::from_secs_f64(fill).min(max)
}

/// The recent arrival rate: arrivals counted over windows of `WINDOW`, the rate being the
/// last closed window's (or, while the current one is older than that, the current one's,
/// so a pause shows at once as a low rate).
#[derive(Debug, Clone)]
pub struct Arrivals {
    since: Instant,
    count: u64,
    per_second: f64,
}

/// The window arrivals are counted over: long enough to hold many arrivals at the rates
/// where waiting pays, short enough to follow a load that changes.
const WINDOW: Duration = Duration::from_millis(50);

impl Arrivals {
    pub fn new(now: Instant) -> Self {
        Self {
            since: now,
            count: 0,
            per_second: 0.0,
        }
    }

    /// Counts `n` arrivals at `now`.
    pub fn add(&mut self, n: usize, now: Instant) {
        self.roll(now);
        self.count += n as u64;
    }

    /// Arrivals per second, as of `now`.
    pub fn per_second(&mut self, now: Instant) -> f64 {
        self.roll(now);
        self.per_second
    }

    /// Closes the current window once it is `WINDOW` old.
    fn roll(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= WINDOW {
            self.per_second = self.count as f64 / elapsed.as_secs_f64();
            self.since = now;
            self.count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn how_long_a_writer_waits() {
        let ms = Duration::from_millis;
        // (waiting, target, arrivals per second, cap) → wait
        let table = [
            // The target reached: at once.
            (8, 8, 10_000.0, ms(2), ms(0)),
            (9, 8, 10_000.0, ms(2), ms(0)),
            // The rest come before the cap: just that long.
            (2, 12, 10_000.0, ms(2), ms(1)),
            (1, 2, 10_000.0, ms(2), Duration::from_micros(100)),
            // They would take longer than the cap: the cap.
            (2, 32, 2_000.0, ms(2), ms(2)),
            // Not one more expected within the cap: at once.
            (1, 8, 400.0, ms(2), ms(0)),
            (1, 8, 0.0, ms(2), ms(0)),
            // Exactly one more expected: waits.
            (1, 8, 500.0, ms(2), ms(2)),
            // A target of one (a previous group of one) or none: at once.
            (1, 1, 10_000.0, ms(2), ms(0)),
            (1, 0, 10_000.0, ms(2), ms(0)),
            // No cap: never waits.
            (1, 8, 1e9, ms(0), ms(0)),
            (1, 8, f64::INFINITY, ms(2), ms(0)),
        ];
        for (waiting, target, rate, max, wait) in table {
            let got = linger(waiting, target, rate, max);
            assert!(
                got.abs_diff(wait) < Duration::from_micros(1),
                "{waiting} of {target} at {rate}/s, cap {max:?}: {got:?}, expected {wait:?}"
            );
        }
    }

    #[test]
    fn the_rate_follows_the_arrivals() {
        let start = Instant::now();
        let mut arrivals = Arrivals::new(start);
        assert_eq!(arrivals.per_second(start), 0.0, "nothing seen yet");
        // 100 arrivals over one window: 2,000 a second once it closes.
        for i in 0..100 {
            arrivals.add(1, start + Duration::from_micros(500 * i));
        }
        assert_eq!(arrivals.per_second(start + Duration::from_millis(49)), 0.0);
        let rate = arrivals.per_second(start + WINDOW);
        assert!((rate - 2_000.0).abs() < 1.0, "{rate}");
        // Then a pause: the next look a second later sees the empty window.
        let later = start + WINDOW + Duration::from_secs(1);
        assert_eq!(arrivals.per_second(later), 0.0);
    }
}
