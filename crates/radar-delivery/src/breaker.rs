//! A per-destination circuit breaker, pure: after `threshold` consecutive retryable
//! failures the destination is left alone for `cooldown`, then one probe decides whether
//! it is back. While it is open nothing is attempted, so no attempt budget is spent on
//! a receiver that is down, and its deliveries simply wait in the queue.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    /// Cooldown over: one probe is allowed.
    HalfOpen,
}

impl BreakerState {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    failures: u32,
    open_until_ms: Option<u64>,
    probe_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown_ms: u64::try_from(cooldown.as_millis()).unwrap_or(u64::MAX),
            failures: 0,
            open_until_ms: None,
            probe_in_flight: false,
        }
    }

    pub fn state(&self, now_ms: u64) -> BreakerState {
        match self.open_until_ms {
            None => BreakerState::Closed,
            Some(until) if now_ms < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// How many attempts may start now, out of `wanted`.
    pub fn admit(&mut self, now_ms: u64, wanted: usize) -> usize {
        match self.state(now_ms) {
            BreakerState::Closed => wanted,
            BreakerState::Open => 0,
            BreakerState::HalfOpen if self.probe_in_flight || wanted == 0 => 0,
            BreakerState::HalfOpen => {
                self.probe_in_flight = true;
                1
            }
        }
    }

    /// A probe that ended without saying anything about the receiver (refused by the
    /// SSRF guard, not sendable, not started): the next attempt may probe instead.
    pub fn release_probe(&mut self) {
        self.probe_in_flight = false;
    }

    /// The receiver answered in a way that says it is up (any 2xx, or a permanent 4xx).
    pub fn record_up(&mut self) {
        self.failures = 0;
        self.open_until_ms = None;
        self.probe_in_flight = false;
    }

    /// A retryable failure (5xx, 429, timeout, connection).
    pub fn record_down(&mut self, now_ms: u64) {
        self.failures = self.failures.saturating_add(1);
        let probing = self.probe_in_flight;
        self.probe_in_flight = false;
        if probing || self.failures >= self.threshold {
            self.open_until_ms = Some(now_ms.saturating_add(self.cooldown_ms));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_after_the_cooldown_and_closes_on_success() {
        let mut breaker = Breaker::new(3, Duration::from_millis(100));
        assert_eq!(breaker.admit(0, 4), 4);
        breaker.record_down(0);
        breaker.record_down(1);
        assert_eq!(breaker.state(1), BreakerState::Closed);
        breaker.record_down(2);
        assert_eq!(breaker.state(2), BreakerState::Open);
        assert_eq!(breaker.admit(50, 4), 0);
        assert_eq!(breaker.state(102), BreakerState::HalfOpen);
        assert_eq!(breaker.admit(102, 4), 1, "one probe");
        assert_eq!(breaker.admit(103, 4), 0, "only one probe at a time");
        breaker.record_down(110);
        assert_eq!(
            breaker.state(110),
            BreakerState::Open,
            "a failed probe reopens"
        );
        assert_eq!(breaker.admit(210, 4), 1);
        breaker.record_up();
        assert_eq!(breaker.state(210), BreakerState::Closed);
        assert_eq!(breaker.admit(210, 4), 4);
        // A probe released unanswered lets the next one go.
        breaker.record_down(300);
        breaker.record_down(300);
        breaker.record_down(300);
        assert_eq!(breaker.admit(401, 4), 1);
        assert_eq!(breaker.admit(401, 4), 0);
        breaker.release_probe();
        assert_eq!(breaker.admit(401, 4), 1);
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let mut breaker = Breaker::new(2, Duration::from_millis(100));
        breaker.record_down(0);
        breaker.record_up();
        breaker.record_down(1);
        assert_eq!(breaker.state(1), BreakerState::Closed);
    }
}
