//! Radar's delivery: opportunities from the outbox to the places CS and sales work —
//! generic webhooks signed per Standard Webhooks, Slack, HubSpot and Salesforce —
//! retried with backoff, never lost, and never holding up the hot path.
//!
//! Modules (the pure ones first):
//! - [`retry`]: the retry policy: classify an attempt, compute the next delay (full
//!   jitter, `Retry-After`), or give up;
//! - [`breaker`]: the per-destination circuit breaker;
//! - [`outcome`]: what one call's results do to its deliveries and its destination
//!   (breaker, pause, retry, dead letter, disable), decided purely
//!   ([`outcome::DeliveryDecision`]);
//! - [`rate`]: the per-destination rate limit (token bucket);
//! - [`redact`]: secrets taken out of the reasons delivery stores and logs;
//! - [`signing`]: Standard Webhooks signatures and `whsec_` secrets;
//! - [`payload`]: the HTTP request each kind of destination gets;
//! - [`error`]: delivery's error types;
//! - [`clock`]: the clock delivery reads, injected ([`Clock::tokio`] in paused-time
//!   tests);
//! - [`settings`]: the `[delivery]` config section, parsed with every error keyed;
//! - [`queue`]: delivery's domain types ([`queue::Delivery`], [`queue::Settlement`],
//!   [`FailedDelivery`]), how they are kept in the store ([`DeliveryStore`]), and the
//!   one [`queue::DeliveryQueue`] the workers use: [`queue::local::LocalQueue`] (the
//!   outbox and the store, `store = "local"`) or [`queue::topic::TopicQueue`] (Kafka
//!   topics, `store = "kafka"`);
//! - [`auth`]: a CRM destination's credentials: static, or OAuth tokens renewed before
//!   they expire and after a refusal, degraded and healing by themselves;
//! - [`crm`]: HubSpot and Salesforce: deals and opportunities on the right company,
//!   owned by the right team;
//! - [`guard`]: the SSRF guard, applied to resolved addresses;
//! - [`http`]: sending one request and classifying the answer;
//! - [`observe`]: what delivery reports, for metrics;
//! - [`kafka`]: delivery's Kafka side: the delivery consumer group, parking retries and
//!   dead letters on their topics, `radar dlq` over the dead-letter topic;
//! - [`worker`]: the runtime: [`DeliveryService`] supervises one worker per destination
//!   (`service`), which takes what is due and admits it (`dispatch`), attempts it
//!   (`attempt`) and settles it through the queue (`destination`), and reports the
//!   queues' metrics (`report`).

pub mod auth;
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
