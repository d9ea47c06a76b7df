//! Radar's shared test utilities, one place for what every test binary of the workspace
//! used to write for itself (svix keeps one such module; so does Radar now).
//!
//! - [`eventually`]: waiting for a condition with a deadline, failing with a message that
//!   names what was awaited and what was last seen: never running out silently. Tests
//!   wait on a positive signal with it instead of sleeping;
//! - [`broker`]: a tansu broker process (Kafka protocol) on a free loopback port;
//! - [`kafka`]: producing test events keyed by account, reading a topic back to its end,
//!   a group's committed offsets;
//! - [`process`]: a child process killed if the test fails first, a free loopback port;
//! - [`http`]: a `GET` to a local server and one Prometheus sample of its `/metrics`.
//!
//! It depends on no Radar crate, so any crate's tests can use it without a cycle.

#![allow(clippy::unwrap_used)] // test utilities: a failure is the test failing

pub mod broker;
pub mod eventually;
pub mod http;
pub mod kafka;
pub mod process;

pub use eventually::{Check, Eventually, eventually, eventually_async};
