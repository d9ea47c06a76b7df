//! Radar's embedded on-disk store, on [redb]: a single file, ACID transactions, a
//! copy-on-write B-tree that survives a crash mid-write, pure Rust and maintained.
//!
//! Modules:
//! - [`store`]: the store file, and per-partition checkpoints (offset and engine state):
//!   generations, each a snapshot or the changes since the one before, checksummed; the
//!   previous snapshot and its changes stay as the fallback until a newer snapshot is
//!   written intact;
//! - [`outbox`]: opportunities made durable before the offsets that produced them are
//!   committed, for delivery to read;
//! - [`delivery`]: the tables of the per-destination delivery queues (retries wait
//!   there, on disk), of the failed deliveries, and of each account's latest
//!   opportunities; their values are opaque here, `radar-delivery` defines them.

pub mod delivery;
pub mod outbox;
pub mod store;

pub use delivery::{FailedKey, QueueKey, QueueWrite};
pub use store::{Checkpoint, Content, Loaded, LoadedState, Store, StoreError};
