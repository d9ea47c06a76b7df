//! The `radar` binary's library: everything that touches files, the environment and the
//! terminal, around the pure `radar-core`.
//!
//! Modules:
//! - [`config`]: layered config loading (defaults → `--config` file → `RADAR__…` env);
//! - [`replay`]: `radar replay`, a file of events through the engine;
//! - [`summary`]: the human summary of an engine's outcome counters.

pub mod config;
pub mod replay;
pub mod summary;
