//! Radar's decision core: pure, deterministic, no I/O, no clock, no async.
//!
//! For one account, the output (opportunities and state) is a function of that account's
//! events in arrival order and of the [`Settings`]; time is always an event's own time.
//! The pipeline, `radar replay` and `radar backtest` drive [`Engine::process_batch`] (a
//! poll round's records, each decoded one ahead of its processing); tests and the fuzz
//! targets also use [`Engine::process`], one record at a time, with the same result.
//!
//! Modules:
//! - [`event`]: the event envelope and its decoding, with a reason for every rejection;
//! - [`scan`]: the decoder's fast path, a one-pass scanner for the usual envelope, whose
//!   checking JSON scanner radar-ingest also walks records with;
//! - [`types`]: built-in and declared event types, and which of them windows count;
//! - [`time`]: event time (milliseconds) and RFC 3339;
//! - [`state`]: per-account entitlements, usage, health, dates, cooldowns;
//! - [`windows`]: event-time bucket counters with exact window semantics;
//! - [`dedupe`]: duplicate `event_id`s within the lateness horizon;
//! - [`metric`]: the account metrics conditions and components read;
//! - [`table`]: piecewise-linear tables;
//! - [`scoring`]: the PQL score, its breakdown and tiers;
//! - [`playbook`]: declarative trigger conditions;
//! - [`gates`]: what suppresses an opportunity;
//! - [`priority`]: the expansion score that ranks opportunities;
//! - [`opportunity`]: the payload and its stable id;
//! - `opportunity_json`: the payload as JSON bytes, serde_json's output at a third of the cost;
//! - [`settings`]: raw config → validated settings, every error with its key;
//! - [`snapshot`]: account states to bytes and back, for checkpoints;
//! - [`stats`]: outcome counters;
//! - [`engine`]: one call per event that ties it all together.

pub mod dedupe;
pub mod engine;
pub mod event;
pub mod gates;
pub mod metric;
pub mod opportunity;
mod opportunity_json;
pub mod pace;
pub mod playbook;
pub mod priority;
pub mod scan;
pub mod scoring;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod table;
pub mod time;
pub mod types;
pub mod windows;

pub use engine::{AccountRecords, Engine, EventOutcome, EventRecord};
pub use event::{RejectReason, Rejection};
pub use opportunity::{Kind, Opportunity};
pub use settings::{RawSettings, Settings, SettingsError};
pub use stats::Stats;
