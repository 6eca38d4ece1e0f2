//! The pacing rule behind `Store::throttle_slot`: each throttled endpoint keeps the
//! earliest time its next attempt may start (the "theoretical arrival time" of the
//! generic cell rate algorithm). A backend keeps that one time per endpoint where every
//! node sees it and applies `next_slot` to it atomically.

use chrono::{DateTime, Duration, Utc};

/// With the endpoint's next free start `next` (if any), the time `now` and a rate of
/// `per_second`: the start handed out, and the next free start after it. A rate of 0
/// means unpaced: the start is `now` and nothing is kept.
pub fn next_slot(
    next: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    per_second: u32,
) -> (DateTime<Utc>, Option<DateTime<Utc>>) {
    if per_second == 0 {
        return (now, next);
    }
    let spacing = Duration::nanoseconds(1_000_000_000 / i64::from(per_second));
    let start = next.filter(|t| *t > now).unwrap_or(now);
    (start, Some(start + spacing))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn ms(n: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000, 0).unwrap() + Duration::milliseconds(n)
    }

    #[track_caller]
    fn check(next: Option<i64>, now: i64, rate: u32, start: i64, after: Option<i64>) {
        assert_eq!(
            next_slot(next.map(ms), ms(now), rate),
            (ms(start), after.map(ms))
        );
    }

    #[test]
    fn an_idle_endpoint_starts_now() {
        check(None, 0, 4, 0, Some(250));
    }

    #[test]
    fn a_busy_endpoint_waits_for_its_next_free_start() {
        check(Some(250), 0, 4, 250, Some(500));
    }

    #[test]
    fn a_next_start_in_the_past_does_not_let_a_burst_through() {
        check(Some(100), 900, 4, 900, Some(1150));
    }

    #[test]
    fn the_spacing_follows_the_rate() {
        check(None, 0, 50, 0, Some(20));
        check(Some(20), 5, 50, 20, Some(40));
    }

    #[test]
    fn rate_zero_is_unpaced() {
        check(Some(700), 0, 0, 0, Some(700));
        check(None, 3, 0, 3, None);
    }
}
