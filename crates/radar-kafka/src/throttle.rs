//! Logging a repeated error without flooding the log: the consumer reports the same
//! broker error on every poll while a broker is away.

use std::time::{Duration, Instant};

/// Lets an error through at most once per `every`, counting the ones held back.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// Whether to log an error seen at `now`: `Some(n)` with the `n` held back since the
    /// last one logged, `None` to hold this one back.
    pub fn admit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.duration_since(last) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_per_period_goes_through_with_the_count_held_back() {
        let start = Instant::now();
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit(start), Some(0));
        for ms in [1, 500, 9_999] {
            assert_eq!(throttle.admit(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(throttle.admit(start + Duration::from_secs(10)), Some(3));
        assert_eq!(throttle.admit(start + Duration::from_secs(11)), None);
    }
}
