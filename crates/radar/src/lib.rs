//! The `radar` binary's library: everything that touches files, the environment and the
//! terminal, around the pure `radar-core`.
//!
//! Modules:
//! - [`config`]: layered config loading (defaults → `--config` file → `RADAR__…` env);
//! - [`replay`]: `radar replay`, a file of events through the engine;
//! - [`ingest`]: the `[[sources]]` compiled, their schema files and registry, and their
//!   records read from files;
//! - [`map`]: `radar map`, what each record of a source becomes;
//! - [`backtest`]: `radar backtest`, replay's opportunities against real expansions;
//! - [`pipeline`]: `radar run`: the Kafka source, delivery and the admin server together;
//! - [`reload`]: hot reload of the engine's configuration (SIGHUP, `POST /v1/reload`);
//! - [`admin`]: the admin HTTP server (`/metrics`, `/healthz`, `/readyz`, `/v1/…`);
//! - [`access`]: who may use it: the admin, read and peer tokens, the peer networks;
//! - [`lookup`], [`peer_auth`]: asking the group's other instances for an account, and
//!   how they prove to each other that they are radar;
//! - [`metrics`]: the Prometheus metrics;
//! - [`dlq`]: `radar dlq list` / `replay` over the delivery dead-letter store;
//! - `demo`: `radar demo`, the whole loop in one process (cargo feature `demo`, on by
//!   default);
//! - `demo_crm`: `radar demo --crm`, a local HubSpot or Salesforce filling up (the same
//!   feature, with the stand-ins of `radar-standin`);
//! - [`summary`]: the human summary of an engine's outcome counters;
//! - [`logging`]: `tracing` to stderr as text or JSON lines.

pub mod access;
pub mod admin;
pub mod backtest;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
#[cfg(feature = "demo")]
pub mod demo_crm;
pub mod dlq;
pub mod ingest;
pub mod logging;
pub mod lookup;
pub mod map;
pub mod metrics;
pub mod peer_auth;
pub mod pipeline;
pub mod reload;
pub mod replay;
pub mod summary;
