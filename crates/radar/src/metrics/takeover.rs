//! The metrics of partitions taken over from another instance (`store = "kafka"`): what
//! the settlement ledger spared sending again, what was sent again because it was in
//! flight when the earlier owner stopped, and the opportunities the source produced
//! twice, delivered once (docs/delivery.md#no-repeats-after-a-failover).

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::register;

/// See the module doc.
#[derive(Debug, Clone)]
pub(super) struct TakeoverMetrics {
    repeats: IntCounterVec,
    skipped: IntCounterVec,
    duplicates: IntCounter,
    ledger_failures: IntCounter,
}

fn counter_vec(registry: &Registry, name: &str, help: &str) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), &["destination"])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    register(registry, metric)
}

impl TakeoverMetrics {
    pub(super) fn new(r: &Registry) -> TakeoverMetrics {
        TakeoverMetrics {
            repeats: counter_vec(
                r,
                "radar_delivery_repeats_total",
                "With state.store = \"kafka\": deliveries sent again after a partition changed hands because they were in flight when its earlier owner stopped (under the same id). At most max_in_flight calls per destination and takeover.",
            ),
            skipped: counter_vec(
                r,
                "radar_delivery_skipped_settled_total",
                "With state.store = \"kafka\": deliveries not sent again after a partition changed hands, because the settlement ledger said its earlier owner had settled them.",
            ),
            duplicates: super::counter(
                r,
                "radar_delivery_duplicate_opportunities_total",
                "With state.store = \"kafka\": opportunities the source produced a second time after a failover (the same id, re-processing events the dead instance had processed past its last checkpoint), not delivered again.",
            ),
            ledger_failures: super::counter(
                r,
                "radar_delivery_ledger_failures_total",
                "With state.store = \"kafka\": reads of the settlement ledger or of the opportunity ids below the commit as partitions were taken over, and writes of revoked partitions' marks, that failed (logged); what they would have spared is sent again, under the same ids.",
            ),
        }
    }

    pub(super) fn known(&self, destination: &str) {
        self.repeats.with_label_values(&[destination]);
        self.skipped.with_label_values(&[destination]);
    }

    pub(super) fn repeat(&self, destination: &str) {
        self.repeats.with_label_values(&[destination]).inc();
    }

    pub(super) fn skipped(&self, destination: &str) {
        self.skipped.with_label_values(&[destination]).inc();
    }

    pub(super) fn duplicate(&self) {
        self.duplicates.inc();
    }

    pub(super) fn ledger_failed(&self) {
        self.ledger_failures.inc();
    }
}
