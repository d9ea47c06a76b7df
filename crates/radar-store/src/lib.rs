//! Radar's embedded on-disk store, on [redb]: a single file, ACID transactions, a
//! copy-on-write B-tree that survives a crash mid-write, pure Rust and maintained.
//!
//! Modules:
//! - [`checkpoint`]: per-partition checkpoints (offset and engine snapshot), checksummed,
//!   with the previous generation kept as a fallback.

pub mod checkpoint;

pub use checkpoint::{Checkpoint, CheckpointStore, Loaded, StoreError};
