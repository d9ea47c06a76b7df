//! Waiting for a condition with a deadline. A test that waits for something polls a
//! check until it passes; when the deadline passes first, the test fails there, naming
//! what it waited for and the last thing the check saw, rather than running out
//! silently and failing later on an assertion that no longer says why.
//!
//! ```ignore
//! let consumed = eventually(Duration::from_secs(30), "radar consumed every record", || {
//!     let n = metric(admin, "radar_events_consumed_total").unwrap_or(0);
//!     if n >= 3_000 { Ok(n) } else { Err(format!("{n} of 3000 consumed")) }
//! });
//! ```

use std::fmt::Display;
use std::time::{Duration, Instant};

/// How often a check is polled unless told otherwise: often enough that a wait costs a
/// test little, seldom enough that polling a process or a broker costs it little too.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

/// What a check returns: done (with a value for the caller), or not yet (with what it
/// saw, when it can say).
pub trait Check {
    /// What the wait gives back once the check passes.
    type Value;
    /// `Ok` once the check passes; `Err` with the observation to report, if any.
    fn outcome(self) -> Result<Self::Value, Option<String>>;
}

/// `true` once the condition holds.
impl Check for bool {
    type Value = ();
    fn outcome(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

/// `Some(value)` once the condition holds.
impl<T> Check for Option<T> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Ok(value)` once the condition holds, `Err(what was seen)` until then: the last `Err`
/// is in the failure message.
impl<T, E: Display> Check for Result<T, E> {
    type Value = T;
    fn outcome(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// A wait: a deadline and how often to poll until it.
#[derive(Debug, Clone, Copy)]
pub struct Eventually {
    deadline: Duration,
    interval: Duration,
}

impl Eventually {
    /// A wait of at most `deadline`, polling every 50 ms.
    pub const fn within(deadline: Duration) -> Eventually {
        Eventually {
            deadline,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// Polls every `interval` instead (zero: back to back, for a check that blocks for
    /// a while itself, such as a consumer's poll).
    pub const fn every(self, interval: Duration) -> Eventually {
        Eventually { interval, ..self }
    }

    /// Polls `check` until it passes and returns its value; panics, naming `what` (the
    /// condition awaited, as in "waiting until {what}") and the last observation, if the
    /// deadline passes first. The check is polled at least once, and once more at the
    /// deadline.
    pub fn until<C: Check>(self, what: &str, mut check: impl FnMut() -> C) -> C::Value {
        let started = Instant::now();
        loop {
            let seen = match check().outcome() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            let elapsed = started.elapsed();
            if elapsed >= self.deadline {
                self.timed_out(what, seen);
            }
            std::thread::sleep(self.interval.min(self.deadline - elapsed));
        }
    }

    /// [`Eventually::until`] in async code: sleeps on tokio's clock, and measures the
    /// deadline on it, so that on paused time (`tokio::time::pause`) the deadline is
    /// virtual time too and a wait costs no real time.
    pub async fn until_async<C: Check>(self, what: &str, mut check: impl FnMut() -> C) -> C::Value {
        let started = tokio::time::Instant::now();
        loop {
            let seen = match check().outcome() {
                Ok(value) => return value,
                Err(seen) => seen,
            };
            let elapsed = started.elapsed();
            if elapsed >= self.deadline {
                self.timed_out(what, seen);
            }
            tokio::time::sleep(self.interval.min(self.deadline - elapsed)).await;
        }
    }

    fn timed_out(self, what: &str, seen: Option<String>) -> ! {
        let seen = seen.unwrap_or_else(|| "the check never passed".to_owned());
        panic!(
            "timed out after {:?} waiting until {what}; last seen: {seen}",
            self.deadline
        )
    }
}

/// Polls `check` every 50 ms until it passes, for at most `deadline`; see
/// [`Eventually::until`].
pub fn eventually<C: Check>(deadline: Duration, what: &str, check: impl FnMut() -> C) -> C::Value {
    Eventually::within(deadline).until(what, check)
}

/// [`eventually`] in async code, on tokio's clock; see [`Eventually::until_async`].
pub async fn eventually_async<C: Check>(
    deadline: Duration,
    what: &str,
    check: impl FnMut() -> C,
) -> C::Value {
    Eventually::within(deadline).until_async(what, check).await
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    use super::*;

    /// The message a panicking `f` panicked with.
    fn panic_message(f: impl FnOnce()) -> String {
        let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("it panics");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap()
    }

    #[test]
    fn returns_the_value_once_the_check_passes() {
        let mut polls = 0;
        let value = Eventually::within(Duration::from_secs(5))
            .every(Duration::from_millis(1))
            .until("the third poll", || {
                polls += 1;
                (polls == 3).then_some(polls * 10)
            });
        assert_eq!((value, polls), (30, 3));
        let mut ticks = 0;
        eventually(Duration::from_secs(5), "a bool turns true", || {
            ticks += 1;
            ticks > 1
        });
        let found: &str = eventually(Duration::from_secs(5), "found", || Ok::<_, String>("it"));
        assert_eq!(found, "it");
    }

    #[test]
    fn fails_naming_what_it_waited_for_and_what_it_last_saw() {
        let mut polls = 0;
        let message = panic_message(|| {
            Eventually::within(Duration::from_millis(30))
                .every(Duration::from_millis(5))
                .until("the receiver holds 8 opportunities", || {
                    polls += 1;
                    Err::<(), _>(format!("{polls} of 8"))
                })
        });
        assert!(
            message.starts_with(
                "timed out after 30ms waiting until the receiver holds 8 opportunities; last seen: "
            ),
            "{message}"
        );
        // The last observation, made at or after the deadline.
        assert!(
            message.ends_with(&format!("last seen: {polls} of 8")),
            "{message}"
        );
        assert!(polls > 1, "polled until the deadline, not once");
        let message = panic_message(|| eventually(Duration::ZERO, "never", || false));
        assert_eq!(
            message,
            "timed out after 0ns waiting until never; last seen: the check never passed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_async_flavour_waits_on_tokio_s_clock() {
        let started = tokio::time::Instant::now();
        let real = Instant::now();
        let mut polls = 0;
        let value = eventually_async(
            Duration::from_secs(3_600),
            "an hour of virtual time",
            || {
                polls += 1;
                (started.elapsed() >= Duration::from_secs(600)).then_some(polls)
            },
        )
        .await;
        // Ten minutes of 50 ms polls on paused time, in (much) less than real ten minutes.
        assert_eq!(value, 12_001);
        assert!(real.elapsed() < Duration::from_secs(60));
        let task = tokio::spawn(async {
            eventually_async(Duration::from_secs(60), "an order is acknowledged", || {
                Err::<(), _>("no acknowledgement")
            })
            .await
        });
        let error = task.await.expect_err("it panics").into_panic();
        let message = error.downcast_ref::<String>().unwrap();
        assert_eq!(
            message,
            "timed out after 60s waiting until an order is acknowledged; last seen: no acknowledgement"
        );
    }
}
