//! Delivery's domain types: a delivery on its way, what became of an attempt, a failed
//! delivery kept for replay, and a destination's backlog. Pure data: the store keeps
//! them as opaque bytes ([`super::stored`] encodes them), the topics as records
//! ([`crate::kafka::parked`]).

use serde::{Deserialize, Serialize};

/// One opportunity on its way to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub destination: String,
    /// The opportunity's outbox sequence: unique per opportunity, stable across retries.
    pub seq: u64,
    /// Not before this wall-clock time (Unix ms).
    pub due_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the opportunity left the outbox (Unix ms): the start of delivery latency.
    pub created_ms: u64,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// The opportunity, as JSON.
    pub opportunity: Vec<u8>,
}

/// Where a delivery sits in its destination's queue: (destination, due time, sequence).
pub type QueueKey = radar_store::QueueKey;

impl Delivery {
    /// Where it sits in its destination's queue.
    pub fn key(&self) -> QueueKey {
        (self.destination.clone(), self.due_ms, self.seq)
    }
}

/// A delivery that was given up on (a dead letter), kept until it is replayed. Serialised field by field
/// in this order (the store's format): add fields only at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedDelivery {
    pub destination: String,
    pub seq: u64,
    pub attempts: u32,
    pub created_ms: u64,
    /// When delivery gave up (Unix ms).
    pub failed_ms: u64,
    pub reason: String,
    pub opportunity: Vec<u8>,
}

/// What became of an attempted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered: leaves the queue.
    Delivered(Delivery),
    /// To be tried again: `previous_due_ms` is where it sits now, the delivery carries the
    /// new due time and attempt count.
    Retry {
        previous_due_ms: u64,
        next: Delivery,
    },
    /// Given up on: leaves the queue for the dead-letter store (`radar dlq`).
    DeadLettered {
        previous_due_ms: u64,
        dead: FailedDelivery,
    },
}

impl Settlement {
    /// The destination and outbox sequence of the delivery it settles.
    pub fn delivery(&self) -> (&str, u64) {
        match self {
            Settlement::Delivered(d) | Settlement::Retry { next: d, .. } => (&d.destination, d.seq),
            Settlement::DeadLettered { dead, .. } => (&dead.destination, dead.seq),
        }
    }

    /// Where the settled delivery sat in its queue.
    pub fn queue_key(&self) -> QueueKey {
        match self {
            Settlement::Delivered(d) => d.key(),
            Settlement::Retry {
                previous_due_ms,
                next,
            } => (next.destination.clone(), *previous_due_ms, next.seq),
            Settlement::DeadLettered {
                previous_due_ms,
                dead,
            } => (dead.destination.clone(), *previous_due_ms, dead.seq),
        }
    }
}

/// A destination's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueSummary {
    pub depth: u64,
    /// Creation time of the oldest queued delivery (Unix ms).
    pub oldest_created_ms: Option<u64>,
    /// The earliest due time queued (Unix ms): once past, how long the destination has
    /// left a delivery that is due unsettled (waiting, in flight, or being recorded).
    pub earliest_due_ms: Option<u64>,
}

/// An opportunity leaving the outbox, remembered under its account (for the admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub account_id: String,
    pub seq: u64,
    pub opportunity: Vec<u8>,
}
