//! Taking a destination's due deliveries and admitting them into attempts: the pause a
//! `Retry-After` asked for, the in-flight bound, the breaker (a half-open breaker risks
//! one delivery, not a batch) and the rate limit decide what starts now.

use std::collections::HashSet;
use std::time::Duration;

use tracing::Instrument;

use super::attempt::attempt;
use super::destination::{DestinationWorker, Sending};
use crate::breaker::BreakerState;
use crate::queue::{Delivery, report_store_error};
use crate::settings::Destination;

/// The due deliveries that may start: those not already in flight, at most `room`.
fn not_in_flight(due: Vec<Delivery>, in_flight: &HashSet<u64>, room: usize) -> Vec<Delivery> {
    due.into_iter()
        .filter(|d| !in_flight.contains(&d.seq))
        .take(room)
        .collect()
}

impl DestinationWorker {
    /// Starts the attempts that are due and allowed (breaker, pause, rate limit, in-flight
    /// bound); returns how long to wait at most before looking again.
    pub(super) async fn start_due(
        &self,
        destination: &Destination,
        sending: &mut Sending,
        now: u64,
    ) -> Duration {
        let mut wait = self.settings.poll_interval;
        if now < sending.state.paused_until_ms {
            return wait.min(Duration::from_millis(sending.state.paused_until_ms - now));
        }
        // Degraded credentials, or a paced allocation: nothing is sent until then.
        if let Some(until) = self.crm.as_ref().and_then(|crm| crm.wait_until(now)) {
            return wait.min(Duration::from_millis(until.saturating_sub(now)));
        }
        let free = destination
            .max_in_flight
            .saturating_sub(sending.in_flight.len());
        if free == 0 {
            return wait;
        }
        // A probe (half-open breaker) risks one delivery, not a batch.
        let batch = match self.crm.as_ref() {
            Some(crm) if sending.state.breaker.state(now) == BreakerState::Closed => {
                crm.batch_size()
            }
            _ => 1,
        };
        let running: usize = sending.seqs.values().map(Vec::len).sum();
        let limit = destination.max_in_flight * batch + running;
        let due = match self.queue.due(&destination.name, now, limit).await {
            Ok(due) => {
                let running: HashSet<u64> = sending.seqs.values().flatten().copied().collect();
                not_in_flight(due, &running, free * batch)
            }
            Err(e) => {
                report_store_error("reading the queue", &e);
                Vec::new()
            }
        };
        if let Some(reason) = sending.disabled.clone() {
            self.dead_letter_all(due, &reason).await;
            return wait;
        }
        let mut due = due.into_iter().peekable();
        let mut calls: Vec<Vec<Delivery>> = Vec::new();
        while due.peek().is_some() {
            if sending.state.breaker.admit(now, 1) == 0 {
                break;
            }
            if let Some(bucket) = &mut sending.bucket
                && let Err(ms) = bucket.take(now)
            {
                sending.state.breaker.release_probe();
                wait = wait.min(Duration::from_millis(ms));
                break;
            }
            calls.push(due.by_ref().take(batch).collect());
        }
        if calls.is_empty() {
            return wait;
        }
        // Known to be in flight beyond this instance before any is sent: another that
        // takes them over sends them again as counted repeats, and nothing else.
        let keys = calls.iter().flatten().map(Delivery::key).collect();
        let going: HashSet<u64> = match self.queue.starting(&destination.name, keys).await {
            Ok(going) => going.into_iter().collect(),
            Err(_) => {
                // A probe among them did not start: the next round may probe instead.
                sending.state.breaker.release_probe();
                return wait;
            }
        };
        for mut deliveries in calls {
            // Those of a partition that moved away meanwhile are its new owner's.
            deliveries.retain(|d| going.contains(&d.seq));
            if deliveries.is_empty() {
                sending.state.breaker.release_probe();
                continue;
            }
            let seqs = deliveries.iter().map(|d| d.seq).collect();
            let span = tracing::debug_span!(
                "attempt",
                destination = %destination.name,
                attempt = deliveries.first().map_or(0, |d| d.attempts + 1),
                deliveries = deliveries.len(),
            );
            let task = match &self.crm {
                Some(crm) => {
                    let crm = crm.clone();
                    sending.in_flight.spawn(
                        async move {
                            let done = crm.deliver(deliveries).await;
                            for (_, result) in &done {
                                tracing::debug!(result = result.label(), "attempted");
                            }
                            done
                        }
                        .instrument(span),
                    )
                }
                None => {
                    let (client, target) = (self.client.clone(), destination.clone());
                    let (guard, clock) = (self.settings.guard.clone(), self.clock);
                    sending.in_flight.spawn(
                        async move {
                            let mut done = Vec::with_capacity(deliveries.len());
                            for delivery in deliveries {
                                let result =
                                    attempt(&client, &target, &guard, &delivery, clock).await;
                                tracing::debug!(result = result.label(), "attempted");
                                done.push((delivery, result));
                            }
                            done
                        }
                        .instrument(span),
                    )
                }
            };
            sending.seqs.insert(task.id(), seqs);
        }
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(seq: u64) -> Delivery {
        Delivery {
            destination: "d".into(),
            seq,
            due_ms: seq,
            attempts: 0,
            created_ms: 0,
            last_error: None,
            opportunity: Vec::new(),
        }
    }

    #[test]
    fn deliveries_in_flight_are_not_started_again_and_room_bounds_the_rest() {
        let due: Vec<Delivery> = (0..6).map(delivery).collect();
        let in_flight = HashSet::from([1, 3]);
        let seqs = |picked: Vec<Delivery>| picked.iter().map(|d| d.seq).collect::<Vec<_>>();
        assert_eq!(seqs(not_in_flight(due.clone(), &in_flight, 3)), [0, 2, 4]);
        assert_eq!(
            seqs(not_in_flight(due.clone(), &in_flight, 10)),
            [0, 2, 4, 5]
        );
        assert!(not_in_flight(due, &in_flight, 0).is_empty());
    }
}
