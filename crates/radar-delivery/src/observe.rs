//! What delivery reports as it works, for the binary to turn into Prometheus metrics:
//! its own module, so the worker and the CRM client both report without depending on
//! each other.

use std::time::Duration;

use crate::breaker::BreakerState;

/// Where delivery reports what it does; the binary turns it into Prometheus metrics.
pub trait Observer: Send + Sync {
    /// An attempt ended; `result` is [`AttemptResult::label`].
    fn attempt(&self, destination: &str, result: &'static str);
    /// Delivered, `latency` after the opportunity left the outbox.
    fn delivered(&self, destination: &str, latency: Duration);
    /// A dead letter was recorded (in the store, or acknowledged on its topic).
    fn dead_lettered(&self, destination: &str);
    fn queue(&self, destination: &str, depth: u64, oldest_age: Duration);
    fn breaker(&self, destination: &str, state: BreakerState);
    /// A CRM record was written, owned per `routing` for `team` (`cs` or `sales`).
    fn routed(&self, destination: &str, team: &'static str, routing: &'static str);
    /// A configured destination, said once as delivery starts: its counters can be shown
    /// at zero before anything happens to it.
    fn known(&self, _destination: &str) {}
    /// How long the earliest due delivery has waited unsettled (zero when none is due):
    /// a destination that is stuck shows here, whatever its queue's depth.
    fn overdue(&self, _destination: &str, _waited: Duration) {}
    /// Outcomes handed to Kafka (retries, dead letters) and not acknowledged yet.
    fn unacknowledged(&self, _destination: &str, _outcomes: u64) {}
    /// Recording outcomes on Kafka failed (a broker away); it is tried again.
    fn park_failed(&self, _destination: &str) {}
    /// A partition taken over from another instance (`store = "kafka"`) had a delivery
    /// the earlier owner settled beyond its commit: it is not sent again.
    fn skipped_settled(&self, _destination: &str) {}
    /// A partition taken over had a delivery in flight when its earlier owner stopped:
    /// it is sent again, a repeat (under the same id).
    fn repeat(&self, _destination: &str) {}
    /// An opportunity the source produced again after a failover (same id) was read: it
    /// is not delivered again.
    fn duplicate_opportunity(&self) {}
    /// Reading the settlement ledger or the ids below the commit as partitions were taken
    /// over, or writing the marks of revoked partitions, failed (logged): what they would
    /// have spared is sent again.
    fn ledger_failed(&self) {}
    /// A dead letter recorded without its whole opportunity: `outcome` is `truncated`,
    /// `payload_dropped` or `lost` (see [`crate::kafka::Landing::degraded`]).
    fn dead_letter_degraded(&self, _destination: &str, _outcome: &'static str) {}
    /// The destination's credentials became degraded (`Some` with the vendor's reason,
    /// never a secret) or work again (`None`).
    fn auth(&self, _destination: &str, _degraded: Option<&str>) {}
    /// A token request ended: `issued`, `refused` or `unavailable`.
    fn token_request(&self, _destination: &str, _outcome: &'static str) {}
    /// A CRM answer reported its daily API allocation: `used` of `limit` requests.
    fn api_usage(&self, _destination: &str, _used: u64, _limit: u64) {}
    /// HubSpot's ten-second window: `remaining` calls of `max`.
    fn api_burst(&self, _destination: &str, _remaining: u64, _max: u64) {}
    /// Calls to the CRM are paced (past `slow_down_at` of the allocation), or not.
    fn api_paced(&self, _destination: &str, _paced: bool) {}
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn attempt(&self, _: &str, _: &'static str) {}
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
}
