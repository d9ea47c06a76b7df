//! What one call's results do, decided purely: to the destination (its breaker, a pause
//! a `Retry-After` asks for) and to each delivery it carried (delivered, retried when,
//! dead-lettered, or the destination disabled). A call carries one delivery, or a batch
//! for a CRM. The time and the jitter come in as arguments, so every rule is unit-tested
//! without a clock or a sleep; the worker carries the decision out (store writes,
//! metrics, logs).

use std::time::Duration;

use crate::breaker::Breaker;
use crate::queue::{Delivery, FailedDelivery, Settlement};
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
pub struct DeliveryDecision {
    pub settlement: Settlement,
    /// Set by a 410: the destination is to be disabled, with this reason.
    pub disable: Option<String>,
}

/// What a result says about the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    /// Nothing (refused by the SSRF guard, not sendable, not sent).
    Silent,
    /// It answered, even if it refused this delivery.
    Up,
    /// It is failing: timeout, connection error, 408, 429, 5xx.
    Down,
}

fn health(result: &AttemptResult) -> Health {
    match result {
        AttemptResult::Response {
            status: 408 | 429 | 500..,
            ..
        } => Health::Down,
        AttemptResult::Timeout | AttemptResult::Connection(_) => Health::Down,
        AttemptResult::Response { .. }
        | AttemptResult::Rejected { .. }
        | AttemptResult::Transient { .. } => Health::Up,
        AttemptResult::Refused(_) | AttemptResult::Unsendable(_) | AttemptResult::Deferred(_) => {
            Health::Silent
        }
    }
}

/// Decides what the results of one call, got at `now_ms`, do; updates the destination's
/// breaker (once for the call, by its worst result: a batch that timed out is one
/// failure, not a hundred) and pause. Deliveries the call did not send ([`Deferred`])
/// keep their attempts and wait until the destination may be called again.
/// `jitter` draws uniformly in [0, 1).
///
/// [`Deferred`]: AttemptResult::Deferred
pub fn after_call(
    policy: &RetryPolicy,
    destination: &mut DestinationState,
    results: Vec<(Delivery, AttemptResult)>,
    now_ms: u64,
    jitter: &mut dyn FnMut() -> f64,
) -> Vec<DeliveryDecision> {
    match results.iter().map(|(_, r)| health(r)).max() {
        Some(Health::Down) => destination.breaker.record_down(now_ms),
        Some(Health::Up) => destination.breaker.record_up(),
        Some(Health::Silent) | None => destination.breaker.release_probe(),
    }
    for (_, result) in &results {
        if let AttemptResult::Response {
            status: 429,
            retry_after: Some(asked),
        } = result
        {
            let until = now_ms.saturating_add(millis((*asked).min(policy.retry_after_cap)));
            destination.paused_until_ms = destination.paused_until_ms.max(until);
        }
    }
    let mut outcomes: Vec<Option<DeliveryDecision>> = Vec::with_capacity(results.len());
    let mut deferred = Vec::new();
    // The earliest the deferred may go: when the pause ends, or when the delivery whose
    // answer stopped the call is tried again.
    let mut resume_ms = destination.paused_until_ms.max(now_ms);
    for (i, (delivery, result)) in results.into_iter().enumerate() {
        if let AttemptResult::Deferred(reason) = result {
            deferred.push((i, delivery, reason));
            outcomes.push(None);
            continue;
        }
        let outcome = decide(policy, delivery, &result, now_ms, jitter());
        if let Settlement::Retry { next, .. } = &outcome.settlement
            && health(&result) == Health::Down
        {
            resume_ms = resume_ms.max(next.due_ms);
        }
        outcomes.push(Some(outcome));
    }
    for (i, mut delivery, reason) in deferred {
        let previous_due_ms = delivery.due_ms;
        delivery.due_ms = resume_ms;
        delivery.last_error = Some(reason);
        outcomes[i] = Some(DeliveryDecision {
            settlement: Settlement::Retry {
                previous_due_ms,
                next: delivery,
            },
            disable: None,
        });
    }
    outcomes.into_iter().flatten().collect()
}

/// The decision about one delivery that got `result` at `now_ms`.
fn decide(
    policy: &RetryPolicy,
    mut delivery: Delivery,
    result: &AttemptResult,
    now_ms: u64,
    jitter: f64,
) -> DeliveryDecision {
    delivery.attempts += 1;
    match policy.decide(delivery.attempts, result, jitter) {
        Action::Delivered => DeliveryDecision {
            settlement: Settlement::Delivered(delivery),
            disable: None,
        },
        Action::Retry { after, reason } => {
            let previous_due_ms = delivery.due_ms;
            delivery.due_ms = now_ms.saturating_add(millis(after));
            delivery.last_error = Some(reason);
            DeliveryDecision {
                settlement: Settlement::Retry {
                    previous_due_ms,
                    next: delivery,
                },
                disable: None,
            }
        }
        Action::GiveUp { reason } => DeliveryDecision {
            settlement: dead(delivery, now_ms, reason),
            disable: None,
        },
        Action::Disable { reason } => DeliveryDecision {
            settlement: dead(delivery, now_ms, reason.clone()),
            disable: Some(reason),
        },
    }
}

/// The settlement of a delivery given up on at `now_ms`.
pub fn dead(delivery: Delivery, now_ms: u64, reason: String) -> Settlement {
    Settlement::DeadLettered {
        previous_due_ms: delivery.due_ms,
        dead: dead_letter(delivery, now_ms, reason),
    }
}

/// The dead letter of a delivery given up on at `now_ms`.
pub fn dead_letter(delivery: Delivery, now_ms: u64, reason: String) -> FailedDelivery {
    FailedDelivery {
        destination: delivery.destination,
        seq: delivery.seq,
        attempts: delivery.attempts,
        created_ms: delivery.created_ms,
        failed_ms: now_ms,
        reason,
        opportunity: delivery.opportunity,
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
    fn attempt(destination: &mut DestinationState, result: AttemptResult) -> DeliveryDecision {
        let policy = RetryPolicy::default();
        one(&policy, destination, delivery(), result)
    }

    /// The outcome of a call that carried only `delivery`, with a jitter of one half.
    fn one(
        policy: &RetryPolicy,
        destination: &mut DestinationState,
        delivery: Delivery,
        result: AttemptResult,
    ) -> DeliveryDecision {
        let mut outcomes = after_call(
            policy,
            destination,
            vec![(delivery, result)],
            NOW,
            &mut || 0.5,
        );
        assert_eq!(outcomes.len(), 1);
        outcomes.remove(0)
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
        let outcome = one(&policy, &mut destination(), last, status(503, None));
        let Settlement::DeadLettered { dead, .. } = outcome.settlement else {
            panic!("{outcome:?}");
        };
        assert!(dead.reason.contains("gave up after"), "{}", dead.reason);
    }

    #[test]
    fn a_failed_batch_is_one_failure_for_the_breaker() {
        let policy = RetryPolicy::default();
        let mut state = destination();
        for _ in 0..2 {
            let batch = (0..100)
                .map(|_| (delivery(), AttemptResult::Timeout))
                .collect();
            after_call(&policy, &mut state, batch, NOW, &mut || 0.5);
        }
        // Three failures open it (see `destination`): two batches are two.
        assert_eq!(state.breaker.state(NOW), BreakerState::Closed);
        let mixed = vec![
            (delivery(), status(200, None)),
            (delivery(), AttemptResult::Timeout),
        ];
        after_call(&policy, &mut state, mixed, NOW, &mut || 0.5);
        assert_eq!(state.breaker.state(NOW), BreakerState::Open);
    }

    #[test]
    fn deliveries_a_halted_call_did_not_send_keep_their_attempts_and_wait_for_the_pause() {
        let policy = RetryPolicy::default();
        let mut state = destination();
        let mut tried = delivery();
        tried.attempts = 2;
        let batch = vec![
            (tried, status(429, Some(Duration::from_secs(60)))),
            (delivery(), AttemptResult::Deferred("HTTP 429".into())),
        ];
        let outcomes = after_call(&policy, &mut state, batch, NOW, &mut || 0.5);
        assert_eq!(state.paused_until_ms, NOW + 60_000);
        let retried: Vec<(u32, u64)> = outcomes
            .iter()
            .map(|o| match &o.settlement {
                Settlement::Retry { next, .. } => (next.attempts, next.due_ms),
                other => panic!("{other:?}"),
            })
            .collect();
        // The 429's own delivery: its third attempt, due after at least the Retry-After.
        assert_eq!(retried[0].0, 3);
        assert!(retried[0].1 >= NOW + 60_000);
        // The deferred one: no attempt spent, due when the paused call's delivery is.
        assert_eq!(retried[1], (0, retried[0].1));
    }
}
