//! What one attempt's result does, decided purely: to the destination (its breaker, a
//! pause a `Retry-After` asks for) and to the delivery (delivered, retried when, dead-
//! lettered, or the destination disabled). The time and the jitter come in as arguments,
//! so every rule is unit-tested without a clock or a sleep; the worker carries the
//! decision out (store writes, metrics, logs).

use std::time::Duration;

use radar_store::{DeadLetter, Delivery, Settlement};

use crate::breaker::Breaker;
use crate::retry::{Action, AttemptResult, RetryPolicy};

/// What a destination's attempts change besides their deliveries.
#[derive(Debug)]
pub struct DestinationState {
    pub breaker: Breaker,
    /// A 429's `Retry-After` pauses the whole destination, not just one delivery (Unix ms).
    pub paused_until_ms: u64,
}

/// The decision about one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub settlement: Settlement,
    /// Set by a 410: the destination is to be disabled, with this reason.
    pub disable: Option<String>,
}

/// Decides what `result`, got at `now_ms` by an attempt of `delivery`, does; updates the
/// destination's breaker and pause. `jitter` is a uniform draw in [0, 1).
pub fn after_attempt(
    policy: &RetryPolicy,
    destination: &mut DestinationState,
    mut delivery: Delivery,
    result: &AttemptResult,
    now_ms: u64,
    jitter: f64,
) -> Outcome {
    match result {
        // A server that answers is up, even when it refuses this delivery.
        AttemptResult::Response { status, .. } if !matches!(status, 408 | 429 | 500..) => {
            destination.breaker.record_up()
        }
        AttemptResult::Response { .. } | AttemptResult::Timeout | AttemptResult::Connection(_) => {
            destination.breaker.record_down(now_ms)
        }
        // Says nothing about the receiver; a probe it was frees its slot.
        AttemptResult::Refused(_) | AttemptResult::Unsendable(_) => {
            destination.breaker.release_probe()
        }
    }
    if let AttemptResult::Response {
        status: 429,
        retry_after: Some(asked),
    } = result
    {
        let until = now_ms.saturating_add(millis((*asked).min(policy.retry_after_cap)));
        destination.paused_until_ms = destination.paused_until_ms.max(until);
    }
    delivery.attempts += 1;
    match policy.decide(delivery.attempts, result, jitter) {
        Action::Delivered => Outcome {
            settlement: Settlement::Delivered(delivery),
            disable: None,
        },
        Action::Retry { after, reason } => {
            let previous_due_ms = delivery.due_ms;
            delivery.due_ms = now_ms.saturating_add(millis(after));
            delivery.last_error = Some(reason);
            Outcome {
                settlement: Settlement::Retry {
                    previous_due_ms,
                    next: delivery,
                },
                disable: None,
            }
        }
        Action::GiveUp { reason } => Outcome {
            settlement: dead(delivery, now_ms, reason),
            disable: None,
        },
        Action::Disable { reason } => Outcome {
            settlement: dead(delivery, now_ms, reason.clone()),
            disable: Some(reason),
        },
    }
}

/// The dead letter of a delivery given up on at `now_ms`.
pub fn dead(delivery: Delivery, now_ms: u64, reason: String) -> Settlement {
    Settlement::DeadLettered {
        previous_due_ms: delivery.due_ms,
        dead: DeadLetter {
            destination: delivery.destination,
            seq: delivery.seq,
            attempts: delivery.attempts,
            created_ms: delivery.created_ms,
            failed_ms: now_ms,
            reason,
            opportunity: delivery.opportunity,
        },
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breaker::BreakerState;

    const NOW: u64 = 1_000_000;

    fn delivery() -> Delivery {
        Delivery {
            destination: "crm".into(),
            seq: 7,
            attempts: 0,
            created_ms: NOW - 5_000,
            due_ms: NOW - 10,
            last_error: None,
            opportunity: b"{}".to_vec(),
        }
    }

    fn destination() -> DestinationState {
        DestinationState {
            breaker: Breaker::new(3, Duration::from_secs(30)),
            paused_until_ms: 0,
        }
    }

    fn status(code: u16, retry_after: Option<Duration>) -> AttemptResult {
        AttemptResult::Response {
            status: code,
            retry_after,
        }
    }

    /// A first attempt of a fresh delivery at `NOW` that got `result`, with the default
    /// policy and a jitter of one half.
    fn attempt(destination: &mut DestinationState, result: AttemptResult) -> Outcome {
        let policy = RetryPolicy::default();
        after_attempt(&policy, destination, delivery(), &result, NOW, 0.5)
    }

    #[test]
    fn a_2xx_is_delivered_and_counts_the_attempt() {
        let outcome = attempt(&mut destination(), status(204, None));
        let Settlement::Delivered(delivered) = outcome.settlement else {
            panic!("{outcome:?}");
        };
        assert_eq!(delivered.attempts, 1);
        assert_eq!(outcome.disable, None);
    }

    #[test]
    fn a_retry_is_due_after_the_jittered_delay_from_now() {
        // The first retry's ceiling is 5 s; a jitter of 0.5 gives 2.5 s.
        let outcome = attempt(&mut destination(), status(503, None));
        let Settlement::Retry {
            previous_due_ms,
            next,
        } = outcome.settlement
        else {
            panic!("{outcome:?}");
        };
        assert_eq!(previous_due_ms, NOW - 10);
        assert_eq!(next.due_ms, NOW + 2_500);
        assert_eq!(next.attempts, 1);
        assert_eq!(next.last_error.as_deref(), Some("HTTP 503"));
    }

    #[test]
    fn a_429_pauses_the_destination_for_its_retry_after_capped() {
        let mut state = destination();
        let secs = |s| status(429, Some(Duration::from_secs(s)));
        attempt(&mut state, secs(120));
        assert_eq!(state.paused_until_ms, NOW + 120_000);
        // A later, shorter pause never shortens it; a huge one is capped.
        attempt(&mut state, secs(10));
        assert_eq!(state.paused_until_ms, NOW + 120_000);
        attempt(&mut state, secs(30 * 86_400));
        let cap = RetryPolicy::default().retry_after_cap;
        assert_eq!(state.paused_until_ms, NOW + millis(cap));
    }

    #[test]
    fn failures_open_the_breaker_and_answers_close_it() {
        let mut failing = destination();
        for _ in 0..3 {
            attempt(&mut failing, AttemptResult::Timeout);
        }
        assert_eq!(failing.breaker.state(NOW), BreakerState::Open);
        // The SSRF guard's refusal says nothing about the receiver.
        let mut refused = destination();
        for _ in 0..5 {
            attempt(&mut refused, AttemptResult::Refused("10.0.0.1".into()));
        }
        assert_eq!(refused.breaker.state(NOW), BreakerState::Closed);
        // A 4xx is an answer: the receiver is up.
        let mut answered = destination();
        for code in [503, 503, 400, 503, 503] {
            attempt(&mut answered, status(code, None));
        }
        assert_eq!(answered.breaker.state(NOW), BreakerState::Closed);
    }

    #[test]
    fn a_410_dead_letters_and_disables_and_a_4xx_only_dead_letters() {
        let gone = attempt(&mut destination(), status(410, None));
        assert!(matches!(
            gone.settlement,
            Settlement::DeadLettered { ref dead, .. } if dead.failed_ms == NOW && dead.attempts == 1
        ));
        assert!(gone.disable.is_some_and(|why| why.contains("410")));
        let refused = attempt(&mut destination(), status(422, None));
        assert!(matches!(
            refused.settlement,
            Settlement::DeadLettered { .. }
        ));
        assert_eq!(refused.disable, None);
    }

    #[test]
    fn the_last_attempt_of_the_schedule_dead_letters() {
        let policy = RetryPolicy::default();
        let mut last = delivery();
        last.attempts = u32::try_from(policy.schedule.len()).unwrap_or(u32::MAX);
        let outcome = after_attempt(
            &policy,
            &mut destination(),
            last,
            &status(503, None),
            NOW,
            0.5,
        );
        let Settlement::DeadLettered { dead, .. } = outcome.settlement else {
            panic!("{outcome:?}");
        };
        assert!(dead.reason.contains("gave up after"), "{}", dead.reason);
    }
}
