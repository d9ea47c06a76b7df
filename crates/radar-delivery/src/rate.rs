//! A token bucket, pure: a destination's rate limit (requests per second, with a burst
//! of one second's worth), so Radar stays inside a CRM's API quota instead of earning
//! 429s.

#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl TokenBucket {
    pub fn new(per_second: f64, now_ms: u64) -> TokenBucket {
        let burst = per_second.max(1.0);
        TokenBucket {
            per_ms: per_second / 1000.0,
            burst,
            tokens: burst,
            last_ms: now_ms,
        }
    }

    /// Takes one token if there is one; otherwise says how many milliseconds until there is.
    pub fn take(&mut self, now_ms: u64) -> Result<(), u64> {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.burst);
        self.last_ms = self.last_ms.max(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / self.per_ms).ceil() as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(10.0, 0);
        for _ in 0..10 {
            assert_eq!(bucket.take(0), Ok(()));
        }
        assert_eq!(bucket.take(0), Err(100));
        assert_eq!(bucket.take(100), Ok(()));
        assert_eq!(bucket.take(150), Err(50));
        // Idle time refills up to the burst, not beyond.
        for _ in 0..10 {
            assert_eq!(bucket.take(10_000), Ok(()));
        }
        assert!(bucket.take(10_000).is_err());
    }
}
