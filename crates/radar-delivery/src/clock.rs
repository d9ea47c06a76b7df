//! The clock delivery reads, injected so tests can drive it: [`Clock::system`] in
//! production; [`Clock::tokio`] in tests, where it follows tokio's time, so a test on
//! paused time (`#[tokio::test(start_paused = true)]`) sees backoffs, breaker cooldowns
//! and rate limits pass without sleeping. Nothing else in delivery reads the time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

/// See the module doc.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's wall clock and monotonic clock.
    System,
    /// Wall time `base_ms` at tokio instant `base`, advancing with tokio's time (which a
    /// paused runtime advances only when every task waits).
    Tokio {
        base_ms: u64,
        base: tokio::time::Instant,
    },
}

impl Clock {
    /// The system's clocks (production).
    pub fn system() -> Clock {
        Clock::System
    }

    /// A clock that starts at the system's wall time and then follows tokio's time.
    /// Create it inside the runtime whose time it follows.
    pub fn tokio() -> Clock {
        Clock::Tokio {
            base_ms: system_ms(),
            base: tokio::time::Instant::now(),
        }
    }

    /// Wall-clock time, in Unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => system_ms(),
            Clock::Tokio { base_ms, base } => {
                let elapsed = tokio::time::Instant::now().duration_since(*base);
                base_ms.saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            }
        }
    }

    /// Wall-clock time, as a date.
    pub fn wall(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(i64::try_from(self.now_ms()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    }

    /// Monotonic time, for intervals (log throttles, deadlines).
    pub fn instant(&self) -> Instant {
        match self {
            Clock::System => Instant::now(),
            Clock::Tokio { .. } => tokio::time::Instant::now().into_std(),
        }
    }
}

fn system_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_follows_paused_time() {
        let clock = Clock::tokio();
        let (start, instant) = (clock.now_ms(), clock.instant());
        tokio::time::sleep(Duration::from_secs(3_600)).await;
        assert_eq!(clock.now_ms() - start, 3_600_000);
        assert_eq!(clock.instant() - instant, Duration::from_secs(3_600));
    }
}
