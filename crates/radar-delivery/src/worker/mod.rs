//! The delivery runtime, one concern per file:
//! - `service`: [`DeliveryService`]: supervision — starts the queue's feeder, one
//!   worker per destination and the queue reporter, and stops them together;
//! - `destination`: a destination's worker: its loop, its breaker, pause and rate
//!   state, and settling what its attempts did;
//! - `dispatch`: taking the due deliveries and admitting them (breaker, pause, rate
//!   limit, in-flight bound) into attempts;
//! - `attempt`: one HTTP attempt of a single-request destination, classified;
//! - `report`: the queues' metrics, from a task of their own.
//!
//! Where deliveries wait and where outcomes are recorded is the [`crate::queue`]'s
//! business: a slow or dead receiver only ever delays itself, every outcome is recorded
//! before it counts, and a crash at any point re-sends at most what was in flight, under
//! the same `webhook-id`.

mod attempt;
mod destination;
mod dispatch;
mod report;
mod service;

pub use service::{DeliveryError, DeliveryService};
