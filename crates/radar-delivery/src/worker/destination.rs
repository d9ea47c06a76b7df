//! A destination's worker: its loop (start what is due, wait for an attempt to finish,
//! a wake-up or the next due time), its state between rounds (breaker, pause, rate
//! limit, what is in flight, whether a receiver disabled it), and settling what its
//! attempts did through the queue.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Client;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::breaker::Breaker;
use crate::clock::Clock;
use crate::crm::CrmClient;
use crate::observe::Observer;
use crate::outcome::{DestinationState, after_call, dead};
use crate::queue::{Delivery, DeliveryQueue, Settlement, report_store_error};
use crate::rate::TokenBucket;
use crate::redact::Redactor;
use crate::retry::AttemptResult;
use crate::settings::{DeliverySettings, Destination};

/// How long a destination lets its in-flight requests finish when asked to stop.
const DRAIN: Duration = Duration::from_secs(5);
/// How often the breaker's state is reported.
const REPORT_EVERY_MS: u64 = 1_000;

pub(super) type Attempted = (Delivery, AttemptResult);

/// One destination's worker (see the module doc).
pub(super) struct DestinationWorker {
    pub(super) settings: Arc<DeliverySettings>,
    pub(super) index: usize,
    pub(super) client: Client,
    pub(super) observer: Arc<dyn Observer>,
    pub(super) waker: Arc<Notify>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) queue: Arc<dyn DeliveryQueue>,
    pub(super) clock: Clock,
    /// Set for a CRM destination: its deliveries are sent in batches by this client.
    pub(super) crm: Option<Arc<CrmClient>>,
    /// Takes the destination's secrets out of every reason before it is stored or logged.
    pub(super) redactor: Redactor,
}

/// What a destination's loop keeps between rounds.
pub(super) struct Sending {
    /// The breaker and the pause, which [`after_call`] decides on.
    pub(super) state: DestinationState,
    pub(super) bucket: Option<TokenBucket>,
    /// Each task attempts one delivery, or a batch of them for a CRM.
    pub(super) in_flight: JoinSet<Vec<Attempted>>,
    /// The outbox sequences each running task is for, so a task that dies still
    /// releases its deliveries.
    pub(super) seqs: HashMap<tokio::task::Id, Vec<u64>>,
    /// Set by a 410, now or before a restart (the local queue keeps it): every delivery
    /// goes to the dead-letter store unattempted, until `radar dlq replay` enables it.
    pub(super) disabled: Option<String>,
}

impl DestinationWorker {
    pub(super) fn destination(&self) -> &Destination {
        &self.settings.destinations[self.index]
    }

    pub(super) async fn run(self) {
        let destination = self.destination().clone();
        let mut stop = self.stop.clone();
        let mut sending = Sending {
            state: DestinationState {
                breaker: Breaker::new(
                    self.settings.breaker_failures,
                    self.settings.breaker_cooldown,
                ),
                paused_until_ms: 0,
            },
            bucket: destination
                .rate_limit
                .map(|rate| TokenBucket::new(rate, self.clock.now_ms())),
            in_flight: JoinSet::new(),
            seqs: HashMap::new(),
            disabled: self.disabled_before().await,
        };
        let mut reported_ms = 0;
        self.observer.known(&destination.name);
        while !*stop.borrow() {
            let now = self.clock.now_ms();
            if now.saturating_sub(reported_ms) >= REPORT_EVERY_MS {
                reported_ms = now;
                self.observer
                    .breaker(&destination.name, sending.state.breaker.state(now));
            }
            let wait = self.start_due(&destination, &mut sending, now).await;
            tokio::select! {
                Some(joined) = sending.in_flight.join_next_with_id(), if !sending.in_flight.is_empty() => {
                    let mut done = vec![joined];
                    while let Some(more) = sending.in_flight.try_join_next_with_id() {
                        done.push(more);
                    }
                    let done = self.collect(done, &mut sending);
                    self.settle(done, &mut sending).await;
                }
                _ = self.waker.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
        // Stopping: let what is in flight finish, within bounds, and record it. Anything
        // cut off stays queued and is sent again at the next start.
        let mut done = Vec::new();
        let _ = tokio::time::timeout(DRAIN, async {
            while let Some(joined) = sending.in_flight.join_next_with_id().await {
                done.push(joined);
            }
        })
        .await;
        let done = self.collect(done, &mut sending);
        self.settle(done, &mut sending).await;
        self.observer.breaker(
            &destination.name,
            sending.state.breaker.state(self.clock.now_ms()),
        );
    }

    /// The finished calls, each with its deliveries' results; a task that died (it should
    /// not) frees its deliveries, which stay queued and are tried again.
    fn collect(
        &self,
        joined: Vec<Result<(tokio::task::Id, Vec<Attempted>), tokio::task::JoinError>>,
        sending: &mut Sending,
    ) -> Vec<Vec<Attempted>> {
        let mut done = Vec::with_capacity(joined.len());
        for result in joined {
            match result {
                Ok((id, attempted)) => {
                    sending.seqs.remove(&id);
                    done.push(attempted);
                }
                Err(e) => {
                    sending.seqs.remove(&e.id());
                    sending.state.breaker.release_probe();
                    tracing::error!(
                        destination = %self.destination().name,
                        error = %e,
                        "a delivery attempt ended abnormally; it stays queued"
                    );
                }
            }
        }
        done
    }

    /// Whether a receiver disabled this destination before this run.
    async fn disabled_before(&self) -> Option<String> {
        match self.queue.disabled_before(&self.destination().name).await {
            // Disabled by an earlier version for refused credentials, which now make a
            // destination degraded until they work instead.
            Ok(Some(reason)) if reason.starts_with("credentials refused") => {
                tracing::info!(
                    destination = %self.destination().name,
                    "was disabled for refused credentials by an earlier version; its credentials now heal by themselves, so it delivers again"
                );
                None
            }
            Ok(Some(reason)) => {
                // Noted by an earlier version, perhaps before reasons were redacted.
                let reason = self.redactor.redact(&reason);
                tracing::warn!(
                    destination = %self.destination().name,
                    %reason,
                    "destination stays disabled; `radar dlq replay --destination <it>` enables it again"
                );
                Some(reason)
            }
            Ok(None) => None,
            Err(e) => {
                report_store_error("reading disabled destinations", &e);
                None
            }
        }
    }

    /// Sends `due` to the dead-letter store unattempted: the destination is disabled.
    pub(super) async fn dead_letter_all(&self, due: Vec<Delivery>, reason: &str) {
        let now = self.clock.now_ms();
        let settlements: Vec<Settlement> = due
            .into_iter()
            .map(|delivery| dead(delivery, now, format!("not attempted: {reason}")))
            .collect();
        self.record(settlements).await;
    }

    /// Decides what the finished calls do (see [`after_call`]), counts them, and records
    /// the settlements.
    async fn settle(&self, done: Vec<Vec<Attempted>>, sending: &mut Sending) {
        if done.is_empty() {
            return;
        }
        let name = &self.destination().name;
        let now = self.clock.now_ms();
        let mut decisions = Vec::new();
        for call in done {
            for (_, result) in &call {
                if !matches!(result, AttemptResult::Deferred(_)) {
                    self.observer.attempt(name, result.label());
                }
            }
            decisions.extend(after_call(
                &self.settings.policy,
                &mut sending.state,
                call,
                now,
                &mut rand::random::<f64>,
            ));
        }
        // A CRM's renewed tokens are in no configuration: its redactor learns them now.
        let learned;
        let redactor = match &self.crm {
            Some(crm) => {
                learned = self.redactor.with(crm.secrets_in_use());
                &learned
            }
            None => &self.redactor,
        };
        let mut settlements = Vec::with_capacity(decisions.len());
        for mut decision in decisions {
            redactor.outcome(&mut decision);
            if let Settlement::Delivered(delivery) = &decision.settlement {
                self.observer.delivered(
                    name,
                    Duration::from_millis(now.saturating_sub(delivery.created_ms)),
                );
            }
            if let Some(reason) = decision.disable {
                let again = sending.disabled.is_some();
                if let Err(e) = self.queue.disable(name, &reason, again).await {
                    report_store_error("noting the destination disabled", &e);
                }
                sending.disabled = Some(reason);
            }
            settlements.push(decision.settlement);
        }
        self.record(settlements).await;
    }

    /// Records settlements, trying again while radar runs: an outcome that is not
    /// recorded is sent again, never lost. Once stopping, it gives up after a few tries
    /// and leaves the deliveries queued for the next start (with `store = "kafka"`, their
    /// records are read again by the next owner of their partition).
    async fn record(&self, settlements: Vec<Settlement>) {
        if settlements.is_empty() {
            return;
        }
        let settlements = Arc::new(settlements);
        let name = &self.destination().name;
        let mut failures = 0;
        while self.queue.record(name, &settlements).await.is_err() {
            failures += 1;
            if *self.stop.borrow() && failures >= 3 {
                return;
            }
            tokio::time::sleep(self.settings.poll_interval).await;
        }
    }
}
