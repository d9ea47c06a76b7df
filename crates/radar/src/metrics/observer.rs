//! Delivery's observations ([`Observer`]) as metrics: attempts, latencies, queues,
//! breakers, credentials, routing and dead letters, per destination.

use std::time::Duration;

use radar_delivery::Observer;
use radar_delivery::breaker::BreakerState;

use super::Metrics;

impl Observer for Metrics {
    fn attempt(&self, destination: &str, result: &'static str) {
        self.attempts
            .with_label_values(&[destination, result])
            .inc();
    }

    fn delivered(&self, destination: &str, latency: Duration) {
        self.delivery_latency
            .with_label_values(&[destination])
            .observe(latency.as_secs_f64());
    }

    fn dead_lettered(&self, destination: &str) {
        self.dead_lettered.with_label_values(&[destination]).inc();
    }

    fn queue(&self, destination: &str, depth: u64, oldest_age: Duration) {
        self.queue_depth
            .with_label_values(&[destination])
            .set(depth as i64);
        self.queue_age
            .with_label_values(&[destination])
            .set(oldest_age.as_secs_f64());
        self.board.queue(destination, depth, oldest_age);
    }

    fn breaker(&self, destination: &str, state: BreakerState) {
        self.breaker
            .with_label_values(&[destination])
            .set(state.gauge());
        self.board.breaker(destination, state);
    }

    fn routed(&self, destination: &str, team: &'static str, routing: &'static str) {
        self.crm_records
            .with_label_values(&[destination, team, routing])
            .inc();
    }

    fn known(&self, destination: &str) {
        // Present at zero from the start, so a rate or an alert has a series to read.
        self.dead_lettered.with_label_values(&[destination]);
        self.park_failures.with_label_values(&[destination]);
        self.unacknowledged.with_label_values(&[destination]);
        self.overdue.with_label_values(&[destination]);
        self.crm.known(destination);
        self.takeover.known(destination);
    }

    fn repeat(&self, destination: &str) {
        self.takeover.repeat(destination);
    }

    fn skipped_settled(&self, destination: &str) {
        self.takeover.skipped(destination);
    }

    fn duplicate_opportunity(&self) {
        self.takeover.duplicate();
    }

    fn ledger_failed(&self) {
        self.takeover.ledger_failed();
    }

    fn auth(&self, destination: &str, degraded: Option<&str>) {
        self.crm.credentials(destination, degraded.is_some());
        self.board.credentials(destination, degraded);
    }

    fn api_usage(&self, destination: &str, used: u64, limit: u64) {
        self.crm.usage(destination, used, limit);
        self.board.api_usage(destination, used, limit);
    }

    fn api_burst(&self, destination: &str, remaining: u64, _max: u64) {
        self.crm.burst(destination, remaining);
    }

    fn api_paced(&self, destination: &str, paced: bool) {
        self.crm.paced(destination, paced);
        self.board.paced(destination, paced);
    }

    fn token_request(&self, destination: &str, outcome: &'static str) {
        self.crm.token_request(destination, outcome);
    }

    fn overdue(&self, destination: &str, waited: Duration) {
        self.overdue
            .with_label_values(&[destination])
            .set(waited.as_secs_f64());
    }

    fn unacknowledged(&self, destination: &str, outcomes: u64) {
        self.unacknowledged
            .with_label_values(&[destination])
            .set(outcomes as i64);
    }

    fn park_failed(&self, destination: &str) {
        self.park_failures.with_label_values(&[destination]).inc();
    }

    fn dead_letter_degraded(&self, destination: &str, outcome: &'static str) {
        self.delivery_letters_degraded
            .with_label_values(&[destination, outcome])
            .inc();
    }
}
