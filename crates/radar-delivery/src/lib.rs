//! Radar's delivery: opportunities from the outbox to the places CS and sales work —
//! generic webhooks signed per Standard Webhooks, Slack, HubSpot and Salesforce —
//! retried with backoff, never lost, and never holding up the hot path.
//!
//! Modules (the pure ones first):
//! - [`retry`]: the retry policy: classify an attempt, compute the next delay (full
//!   jitter, `Retry-After`), or give up;
//! - [`breaker`]: the per-destination circuit breaker;
//! - [`outcome`]: what one attempt's result does to its delivery and its destination
//!   (breaker, pause, retry, dead letter, disable), decided purely;
//! - [`rate`]: the per-destination rate limit (token bucket);
//! - [`redact`]: secrets taken out of the reasons delivery stores and logs;
//! - [`signing`]: Standard Webhooks signatures and `whsec_` secrets;
//! - [`payload`]: the HTTP request each kind of destination gets;
//! - [`queue`]: delivery's domain types (a delivery, its settlement, a failed delivery)
//!   and how they are kept in the store;
//! - [`crm`]: HubSpot and Salesforce: deals and opportunities on the right company,
//!   owned by the right team;
//! - [`settings`]: the `[delivery]` config section, parsed with every error keyed;
//! - [`guard`]: the SSRF guard, applied to resolved addresses;
//! - [`http`]: sending one request and classifying the answer;
//! - [`observe`]: what delivery reports, for metrics;
//! - [`worker`]: the runtime: outbox → per-destination queues → HTTP, outcomes recorded
//!   in the store (queue, retry, dead-letter store).

pub mod breaker;
pub mod clock;
pub mod crm;
pub mod error;
pub mod guard;
pub mod http;
pub mod kafka;
pub mod observe;
pub mod outcome;
pub mod payload;
pub mod queue;
pub mod rate;
pub mod redact;
pub mod retry;
pub mod settings;
pub mod signing;
pub mod worker;

pub use clock::Clock;
pub use kafka::{KafkaDelivery, KafkaDeliveryConfig};
pub use observe::{Observer, Unobserved};
pub use queue::{DeliveryStore, FailedDelivery};
pub use settings::{DeliverySettings, Destination, RawDelivery, SettingError, Target};
pub use worker::{DeliveryError, DeliveryService};
