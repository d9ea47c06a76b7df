//! Radar's integration tests: one binary, one module per area.
//!
//! - `golden`: hand-written event files under `tests/golden/` with their exact expected
//!   opportunities and counters, run through `radar replay`'s code path;
//! - `model`: property tests of the engine against the semantics of docs/design.md#engine-semantics;
//! - `cli`: the `radar` binary's commands, exit codes and messages;
//! - `backtest`: `radar backtest` on generated events and outcomes, and its HTML report
//!   in headless Chromium;
//! - `deploy`: deploy/ against the binary: a live scrape has every metric the dashboard
//!   and alerts query; every config under deploy/ passes `radar validate`;
//! - `docs`: every relative link and `#anchor` in README.md, docs/, benches/RESULTS.md
//!   and deploy/*.md resolves;
//! - `reload`: hot reload: what applies live, and a reload under load against `radar run`;
//! - `ops`: operating `radar run`: JSON logs only, on every line; series at 0 from the
//!   first scrape;
//! - `peers`: a crafted consumer-group member against `/v1/accounts`' peer lookups;
//! - `run`: `radar run` against a Kafka-protocol broker (librdkafka's mock cluster);
//! - `tansu`: `radar run` against a tansu broker process: dead letters, `kill -9` and
//!   restart, SIGTERM;
//! - `hardening`: `radar run` with `state.store = "kafka"` on tansu given unusable
//!   changelog records and an account busy enough to outgrow a Kafka record;
//! - `scale_out`: several `radar run` instances with `state.store = "kafka"` against tansu:
//!   instances killed, added, removed and frozen, a receiver down, compared with replay.
//!
//! What any test binary needs (waiting with [`radar_testkit::eventually`], the tansu
//! broker, producing and reading topics, child processes, admin-server requests) is in
//! the `radar-testkit` crate; what only these tests share (generated events and replay's
//! answer, a webhook receiver, `radar run` on a broker's topic) is in `support`. No test
//! sleeps to wait: it waits on the thing itself, and asserts an absence only once a
//! positive signal shows the thing would have happened by then.

#![allow(clippy::unwrap_used)] // test helpers, like tests, fail loudly

mod backtest;
mod cli;
mod deploy;
mod docs;
mod golden;
mod hardening;
mod ingest;
mod model;
mod ops;
mod peers;
mod reload;
mod run;
mod scale_out;
mod support;
mod tansu;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use radar_core::{Engine, Opportunity, Settings};

/// The workspace root, where `tests/` and `config/` live.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn default_settings() -> Arc<Settings> {
    Arc::new(radar::config::load(None).expect("the default config is valid"))
}

/// Runs events through one engine; returns the engine and every opportunity in order.
pub fn run<'a>(
    settings: &Arc<Settings>,
    lines: impl IntoIterator<Item = &'a [u8]>,
) -> (Engine, Vec<Opportunity>) {
    let mut engine = Engine::new(settings.clone());
    let mut out = Vec::new();
    for line in lines {
        engine.process(line, None, &mut out);
    }
    (engine, out)
}
