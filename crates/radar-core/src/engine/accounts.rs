//! The accounts an engine holds: idle eviction, snapshots and incremental changes for
//! checkpoints, and restoring them. Called at checkpoints and restores, not per event.

use std::sync::Arc;

use compact_str::CompactString;

use super::{AccountRecords, Engine};
use crate::settings::Settings;
use crate::snapshot::{self, SnapshotError};
use crate::state::{AccountState, Changed, latest};
use crate::time::Millis;

impl Engine {
    /// How far event time moves between two sweeps for idle accounts: one day.
    pub const SWEEP_STEP: Millis = 86_400_000;

    /// How many accounts (and at least half of them) must have reached a time before a
    /// sweep takes it as the partition's present.
    pub const SWEEP_QUORUM: usize = 16;

    /// Frees the memory of accounts idle for longer than the configured TTL; returns how
    /// many went. The semantics are per account ([`Engine::process`]): an event more than
    /// the TTL after its account's stream time finds the account reset, in the live
    /// pipeline and in `radar replay` alike. A dropped account's next event finds it new,
    /// which is the same, provided that event is more than the TTL after the account's
    /// stream time.
    ///
    /// So which accounts may go is judged against the partition's present: the stream
    /// time that half its accounts (and at least [`Engine::SWEEP_QUORUM`]) have reached,
    /// their median. Not the newest time of all: one producer with a bad clock (event and
    /// record time in 2099) would make every other account look idle, and accounts
    /// dropped while their next events are still within the TTL would start afresh where
    /// a replay carries on. With the median, bad clocks must hold half a partition's
    /// accounts to move it, and only an account whose own events run more than the TTL
    /// behind most of its partition's can differ from a replay. Churned accounts are
    /// swept as long as fewer accounts churn within a TTL than stay active.
    ///
    /// Accounts an event reached since the changes were last taken (or forgotten) stay
    /// for a later sweep: a changelog checkpoint then never writes an account's tombstone
    /// ahead of the state its events left (a crash before the completion record would
    /// otherwise restore it absent).
    ///
    /// The pipeline calls it at its checkpoints. A sweep visits every account, so it runs
    /// only once the newest time less the TTL has moved [`Engine::SWEEP_STEP`] past the
    /// last sweep's cutoff, and at most once per as many events as there are accounts: its
    /// cost per event stays constant, and an idle account stays a little longer at most.
    pub fn evict_idle(&mut self) -> usize {
        let (Some(ttl), Some(newest)) = (self.settings.idle_ttl, self.newest) else {
            return 0;
        };
        let moved_on = |cutoff: Millis, swept: Option<Millis>| {
            swept.is_none_or(|swept| cutoff >= swept.saturating_add(Self::SWEEP_STEP))
        };
        let quorum = Self::SWEEP_QUORUM.max(self.accounts.len().div_ceil(2));
        if !moved_on(newest.saturating_sub(ttl), self.swept_to)
            || self.accounts.len() < quorum
            || self.stats.read.saturating_sub(self.read_at_sweep) < self.accounts.len() as u64
        {
            return 0;
        }
        self.read_at_sweep = self.stats.read;
        let mut times: Vec<Millis> = self.accounts.values().map(|s| s.stream_time).collect();
        let present = *times.select_nth_unstable(self.accounts.len() - quorum).1;
        let cutoff = present.saturating_sub(ttl);
        if !moved_on(cutoff, self.swept_to) {
            return 0;
        }
        self.swept_to = Some(cutoff);
        let before = self.accounts.len();
        let evicted = &mut self.evicted;
        self.accounts.retain(|account_id, state| {
            // An account changed since the last checkpoint waits for the next sweep: a
            // changelog then never holds its tombstone ahead of the state it left.
            let keep = state.stream_time >= cutoff || state.changed.0;
            if !keep {
                evicted.push(account_id.clone());
            }
            keep
        });
        let evicted = before - self.accounts.len();
        self.stats.evicted += evicted as u64;
        evicted
    }

    pub fn tracked_accounts(&self) -> usize {
        self.accounts.len()
    }

    pub fn account(&self, account_id: &str) -> Option<&AccountState> {
        self.accounts.get(account_id).map(|s| &**s)
    }

    pub fn accounts(&self) -> impl Iterator<Item = (&str, &AccountState)> {
        self.accounts.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// The account states as bytes, for a checkpoint (accounts in id order). Counters
    /// ([`Stats`]) are not part of it.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut accounts: Vec<snapshot::EntryRef<'_>> = self
            .accounts()
            .map(|(account_id, state)| snapshot::EntryRef { account_id, state })
            .collect();
        accounts.sort_unstable_by_key(|e| e.account_id);
        snapshot::encode(accounts)
    }

    /// The accounts an event reached since the last call (or since the engine was made,
    /// restored, or [`Engine::forget_changes`]), and the ids of those evicted, as bytes:
    /// an incremental checkpoint, far smaller than a snapshot when most accounts are quiet.
    /// [`Engine::apply_changes`] on the state they follow brings it to this engine's.
    pub fn take_changes(&mut self) -> Vec<u8> {
        let mut changed = std::mem::take(&mut self.changed);
        changed.sort_unstable();
        // An account evicted and then seen again is listed twice.
        changed.dedup();
        let accounts: Vec<snapshot::EntryRef<'_>> = changed
            .iter()
            .filter_map(|account_id| {
                let state = self.accounts.get(account_id)?;
                Some(snapshot::EntryRef { account_id, state })
            })
            .collect();
        let bytes = snapshot::encode_changes(&snapshot::ChangesRef {
            accounts,
            evicted: &self.evicted,
        });
        self.changed = changed;
        self.forget_changes();
        bytes
    }

    /// The accounts an event reached since the changes were last taken, each with its
    /// state as bytes ([`snapshot::encode_account`]), and the ids of those evicted since:
    /// the records a changelog checkpoint writes (tombstones first, so an account evicted
    /// and seen again ends with its new state). It takes nothing: the changes are still
    /// there for [`Engine::take_changes`] or [`Engine::forget_changes`].
    pub fn changed_account_records(&self) -> AccountRecords<'_> {
        let mut updated: Vec<(&str, Vec<u8>)> = self
            .changed
            .iter()
            .filter_map(|account_id| {
                let state = self.accounts.get(account_id)?;
                Some((account_id.as_str(), snapshot::encode_account(state)))
            })
            .collect();
        updated.sort_unstable_by_key(|(account_id, _)| *account_id);
        updated.dedup_by_key(|(account_id, _)| *account_id);
        AccountRecords {
            evicted: self.evicted.iter().map(CompactString::as_str).collect(),
            updated,
        }
    }

    /// Sets an account's state from a changelog record's bytes, replacing what it had;
    /// restored accounts are not changes.
    pub fn restore_account(&mut self, account_id: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let mut state = snapshot::decode_account(bytes)?;
        state.windows.sync_edges();
        latest(&mut self.newest, state.stream_time);
        self.accounts.insert(account_id.into(), Box::new(state));
        Ok(())
    }

    /// Drops an account, as a changelog tombstone says.
    pub fn remove_account(&mut self, account_id: &str) {
        self.accounts.remove(account_id);
    }

    /// Drops an account whose stored state could not be read, as evicted: the pipeline
    /// rebuilds it from its events, and the next checkpoint writes its tombstone (then its
    /// state, if an event brought it back), which supersedes the unreadable record.
    pub fn discard_account(&mut self, account_id: &str) {
        self.accounts.remove(account_id);
        self.evicted.push(account_id.into());
    }

    /// How many accounts [`Engine::take_changes`] would write or remove now (at most).
    pub fn changed_accounts(&self) -> usize {
        self.changed.len() + self.evicted.len()
    }

    /// Marks every account unchanged, as after a full snapshot was saved.
    pub fn forget_changes(&mut self) {
        for account_id in self.changed.drain(..) {
            if let Some(state) = self.accounts.get_mut(&account_id) {
                state.changed = Changed(false);
            }
        }
        self.evicted.clear();
    }

    /// Applies changes taken by [`Engine::take_changes`] from an engine whose state was
    /// this one's: evicted accounts go, changed ones replace what was there.
    pub fn apply_changes(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let changes = snapshot::decode_changes(bytes)?;
        for account_id in changes.evicted {
            self.accounts.remove(account_id);
        }
        for entry in changes.accounts {
            let mut state = entry.state;
            state.windows.sync_edges();
            latest(&mut self.newest, state.stream_time);
            self.accounts
                .insert(entry.account_id.into(), Box::new(state));
        }
        Ok(())
    }

    /// An engine with the account states of a [`Engine::snapshot`], ready to carry on.
    pub fn restore(settings: Arc<Settings>, bytes: &[u8]) -> Result<Engine, SnapshotError> {
        let decoded = snapshot::decode(bytes)?;
        let mut engine = Engine::new(settings);
        engine.accounts.reserve(decoded.accounts.len());
        for entry in decoded.accounts {
            let mut state = entry.state;
            state.windows.sync_edges();
            latest(&mut engine.newest, state.stream_time);
            engine
                .accounts
                .insert(entry.account_id.into(), Box::new(state));
        }
        Ok(engine)
    }
}
