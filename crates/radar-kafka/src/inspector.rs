//! Looking at account state held by a running source, from other threads (the admin
//! API).

use std::sync::{Arc, Mutex};

use crate::error::SourceError;
use crate::partitions::Partitions;

/// Reads account state held by a running source's partitions. It takes the partitions'
/// lock for the length of one lookup, so it may wait for the round being processed.
#[derive(Clone)]
pub struct Inspector {
    pub(crate) partitions: Arc<Mutex<Partitions>>,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector").finish_non_exhaustive()
    }
}

impl Inspector {
    /// The account's state, score and breakdown ([`radar_core::Engine::explain`]), from
    /// whichever partition holds it; `None` if none of this process's partitions does.
    pub fn explain(&self, account_id: &str) -> Result<Option<serde_json::Value>, SourceError> {
        Ok(self
            .partitions
            .lock()
            .map_err(|_| SourceError::Poisoned)?
            .workers
            .values()
            .find_map(|worker| worker.engine().explain(account_id)))
    }
}
