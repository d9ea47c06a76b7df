//! One Kafka partition's worth of Radar: the engine holding the state of the accounts
//! keyed to it, the next offset to consume, and when to checkpoint.
//!
//! State is owned per partition (docs/design.md#durability): on assignment a worker is
//! restored from the partition's newest good checkpoint and tells the consumer where to
//! resume; on revocation or shutdown it checkpoints. [`PartitionWorker::checkpoint`]
//! returns the offset that may then be committed, and only once the checkpoint is
//! durable: at-least-once by construction, and since the engine is deterministic, a
//! replay from the checkpoint gives the same opportunities (same ids) again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use radar_core::event::RejectReason;
use radar_core::time::Millis;
use radar_core::{Engine, EventOutcome, EventRecord, Opportunity, Settings, Stats};
use radar_store::{Checkpoint, Content, Store};

use crate::changelog::Changelog;
use crate::error::SourceError;

mod from_changelog;

/// A record as the consumer hands it over.
#[derive(Clone, Copy, Debug)]
pub struct KafkaRecord<'a> {
    pub offset: i64,
    pub payload: &'a [u8],
    /// The record's own timestamp (CreateTime or LogAppendTime), for `too_far_in_future`.
    pub timestamp: Option<Millis>,
    /// The record's key, empty when it has none: it must be the event's account id
    /// (`key_mismatch` otherwise).
    pub key: &'a [u8],
    /// The record's headers, collected only for a mapped source that reads them
    /// (CloudEvents in binary mode); empty otherwise.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// A rejected record, to produce to the dead-letter topic with its original bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRecord {
    pub offset: i64,
    pub reason: RejectReason,
    pub detail: String,
}

/// Checkpoint after this many events or this much time, whichever comes first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointPolicy {
    pub every_events: u64,
    pub every: Duration,
}

/// What restoring found, for logs and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    /// The offset to resume from; `None` when the partition has no usable checkpoint (the
    /// source then rebuilds the state from the start of the partition).
    pub resume_at: Option<i64>,
    /// Checkpoints newer than the last one applied, left out because one of them (or the
    /// snapshot they followed) was damaged or unreadable.
    pub skipped: u32,
    pub accounts: usize,
    /// Changelog records read, when the state came from (or was brought up to date by)
    /// the changelog; `None` when the local store sufficed.
    pub from_changelog: Option<u64>,
    /// Changelog records that could not be used, set aside (see [`crate::quarantine`]).
    pub quarantined: usize,
    /// Accounts whose changelog state could not be read, rebuilt from the start of the
    /// source partition (`resume_at` is then `None`).
    pub rebuilding: usize,
    /// Accounts whose changelog state is ahead of `resume_at` (a crash between a
    /// checkpoint's account records and its completion record): their records before
    /// the offset their state is complete up to are read again but not applied.
    pub ahead: usize,
}

/// The records a partition restored from its changelog reads again without applying
/// them all, up to `until`:
/// - an account whose changelog record is ahead of the resume offset (its checkpoint's
///   completion record never came) skips the records its state already holds;
/// - accounts whose state could not be read are rebuilt from the start of the partition,
///   the others' records skipped until the resume offset (duplicates or late to them,
///   their rejections dead-lettered already).
///
/// Until `until` nothing is checkpointed: the local store could not say which accounts
/// are ahead, and a completion record behind the one the changelog resumes from would
/// leave rebuilt accounts' records behind it; a restart does the same again.
#[derive(Debug)]
pub(crate) struct CatchUp {
    /// Account id → the source offset its state is complete up to.
    pub(crate) ahead: HashMap<Vec<u8>, i64>,
    /// Accounts rebuilt from the partition's start, and the offset up to which only
    /// their records are applied.
    pub(crate) rebuild: Option<(HashSet<Vec<u8>>, i64)>,
    pub(crate) until: i64,
}

impl CatchUp {
    fn applies(&self, record: &KafkaRecord<'_>) -> bool {
        if let Some((accounts, resume)) = &self.rebuild
            && record.offset < *resume
            && !accounts.contains(record.key)
        {
            return false;
        }
        self.ahead
            .get(record.key)
            .is_none_or(|complete_to| record.offset >= *complete_to)
    }
}

#[derive(Debug)]
pub struct PartitionWorker {
    topic: String,
    partition: i32,
    engine: Engine,
    /// The offset after the last record processed.
    next_offset: Option<i64>,
    /// The offset the last durable checkpoint covers.
    checkpointed: Option<i64>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Accounts in the last snapshot this worker wrote (0: none yet, or a failed write),
    /// and accounts written or evicted in changes since, and how many changes: a
    /// checkpoint writes the changes, or a snapshot once they would outnumber the
    /// accounts of the last one or of now, or after [`PartitionWorker::MAX_CHANGES`]
    /// changes, so a restore reads about twice a snapshot at most, in a bounded number of
    /// steps.
    snapshot_accounts: usize,
    changed_since_snapshot: usize,
    changes_since_snapshot: u32,
    /// What the last checkpoint wrote and its size in bytes, until taken for metrics.
    written: Option<(Content, usize)>,
    /// Where this instance's view of the partition's changelog ends: its last write, or
    /// what it restored ([`Changelog::write`] refuses to write past another's).
    changelog_seen: i64,
    catch_up: Option<CatchUp>,
    outcomes: Vec<EventOutcome>,
}

impl PartitionWorker {
    /// A worker restored from the partition's checkpoints: the newest intact snapshot the
    /// engine can read (older ones are tried before giving up) and the changes after it.
    /// With a changelog, that local state is only a cache: used as it is when it is as
    /// new as the changelog, brought up to date from the changelog's tail when it is
    /// older, and ignored for the whole changelog when it has none of it.
    pub fn restore(
        settings: Arc<Settings>,
        store: &Store,
        changelog: Option<&Changelog>,
        topic: &str,
        partition: i32,
        now: Instant,
    ) -> Result<(PartitionWorker, Restored), SourceError> {
        let (found, skipped) = store.load_state(
            topic,
            partition,
            |snapshot| Engine::restore(settings.clone(), snapshot).ok(),
            |engine, changes| engine.apply_changes(changes).is_ok(),
        )?;
        let mut from_changelog = None;
        let mut changelog_seen = 0;
        let (mut quarantined, mut rebuilding, mut catch_up) = (0, 0, None::<CatchUp>);
        let (engine, resume_at) = match (found, changelog) {
            (Some(loaded), None) => (loaded.state, Some(loaded.offset)),
            (None, None) => (Engine::new(settings), None),
            (found, Some(changelog)) => {
                let restored = from_changelog::restore(settings, found, changelog, partition)?;
                from_changelog = restored.records;
                changelog_seen = restored.changelog_seen;
                (quarantined, rebuilding) = (restored.quarantined, restored.rebuilding);
                catch_up = restored.catch_up;
                (restored.engine, restored.resume_at)
            }
        };
        let restored = Restored {
            resume_at,
            skipped,
            accounts: engine.tracked_accounts(),
            from_changelog,
            quarantined,
            rebuilding,
            ahead: catch_up.as_ref().map_or(0, |c| c.ahead.len()),
        };
        let worker = PartitionWorker {
            topic: topic.to_owned(),
            partition,
            engine,
            next_offset: resume_at,
            checkpointed: resume_at,
            since_checkpoint: 0,
            last_checkpoint: now,
            // The local file holds no snapshot of this state yet: the first checkpoint
            // writes one.
            snapshot_accounts: 0,
            changed_since_snapshot: 0,
            changes_since_snapshot: 0,
            written: None,
            changelog_seen,
            catch_up,
            outcomes: Vec::new(),
        };
        Ok((worker, restored))
    }

    /// Runs a batch of the partition's records, in offset order, through the engine:
    /// opportunities are appended to `out`, rejected records to `dead`. Records below the
    /// next offset are already in the state (fetched again around a rebalance or a seek)
    /// and are skipped, so no event is ever applied twice; gaps (compaction, transaction
    /// markers) are normal.
    pub fn process(
        &mut self,
        records: &[KafkaRecord<'_>],
        out: &mut Vec<Opportunity>,
        dead: &mut Vec<RejectedRecord>,
    ) {
        self.process_mapped(records, None, out, dead);
    }

    /// [`PartitionWorker::process`] for a topic whose records a source maps onto
    /// Radar's events (`mapped`: the source and the schemas it knows), or Radar's
    /// envelope (`None`).
    pub fn process_mapped(
        &mut self,
        records: &[KafkaRecord<'_>],
        mapped: Option<(&radar_ingest::Source, &radar_ingest::Schemas)>,
        out: &mut Vec<Opportunity>,
        dead: &mut Vec<RejectedRecord>,
    ) {
        let fresh = match self.next_offset {
            Some(next) => records.partition_point(|r| r.offset < next),
            None => 0,
        };
        let records = &records[fresh..];
        let Some(last) = records.last() else {
            return;
        };
        let read = records.len() as u64;
        let applied: Vec<KafkaRecord<'_>>;
        let records = match &self.catch_up {
            Some(catch_up) if records[0].offset < catch_up.until => {
                applied = records
                    .iter()
                    .filter(|r| catch_up.applies(r))
                    .copied()
                    .collect();
                &applied[..]
            }
            _ => records,
        };
        self.outcomes.clear();
        match mapped {
            None => {
                let batch = records.iter().map(|r| EventRecord {
                    bytes: r.payload,
                    time: r.timestamp,
                    key: Some(r.key),
                });
                self.engine.process_batch(batch, out, &mut self.outcomes);
            }
            Some((source, schemas)) => {
                let skew = self.engine.settings().max_future_skew;
                let decoded = records.iter().map(|r| {
                    let record = radar_ingest::RawRecord {
                        value: r.payload,
                        key: Some(r.key),
                        headers: r.headers,
                        time: r.timestamp,
                    };
                    source.decode(schemas, &record, skew)
                });
                self.engine
                    .process_decoded(decoded, out, &mut self.outcomes);
            }
        }
        for (record, outcome) in records.iter().zip(&self.outcomes) {
            if let EventOutcome::Rejected(rejection) = outcome {
                dead.push(RejectedRecord {
                    offset: record.offset,
                    reason: rejection.reason,
                    detail: rejection.detail.to_string(),
                });
            }
        }
        self.next_offset = Some(last.offset + 1);
        self.since_checkpoint += read;
        if let Some(caught_up) = self.catch_up.take_if(|c| last.offset + 1 >= c.until)
            && let Some((accounts, _)) = caught_up.rebuild
        {
            tracing::info!(
                topic = %self.topic,
                partition = self.partition,
                accounts = accounts.len(),
                "accounts with unreadable changelog states rebuilt from the source"
            );
        }
    }

    /// Whether the policy asks for a checkpoint now (and there is something new to save).
    pub fn checkpoint_due(&self, now: Instant, policy: &CheckpointPolicy) -> bool {
        self.since_checkpoint > 0
            && (self.since_checkpoint >= policy.every_events
                || now.duration_since(self.last_checkpoint) >= policy.every)
    }

    /// Changes written after a snapshot before the next snapshot comes, whatever their
    /// size: a restore applies at most this many.
    pub const MAX_CHANGES: u32 = 100;

    /// Writes a checkpoint of the state (its changes, or a snapshot) and the next offset:
    /// to the changelog first when there is one (acknowledged), then to the local store
    /// (with the changelog position, as its cache). Returns the offset that may now be
    /// committed to Kafka (`None` before the first record).
    pub fn checkpoint(
        &mut self,
        store: &Store,
        changelog: Option<&Changelog>,
        now: Instant,
    ) -> Result<Option<i64>, SourceError> {
        let Some(offset) = self.next_offset else {
            return Ok(None);
        };
        if self.catch_up.is_some() {
            return Ok(None);
        }
        if self.checkpointed != Some(offset) {
            // Idle accounts go now, so they leave memory and the checkpoint together.
            self.engine.evict_idle();
            let position = match changelog {
                Some(changelog) => {
                    let at = changelog.write(
                        self.partition,
                        &self.engine.changed_account_records(),
                        &[],
                        offset,
                        self.changelog_seen,
                    )?;
                    self.changelog_seen = at;
                    Some(at)
                }
                None => None,
            };
            // Each change counts as one account at least, so empty ones add up too.
            let changed = self.engine.changed_accounts().max(1);
            let outnumbered = self.snapshot_accounts.min(self.engine.tracked_accounts());
            let checkpoint = if self.snapshot_accounts == 0
                || self.changed_since_snapshot + changed > outnumbered
                || self.changes_since_snapshot >= Self::MAX_CHANGES
            {
                let state = self.engine.snapshot();
                self.engine.forget_changes();
                self.snapshot_accounts = self.engine.tracked_accounts().max(1);
                (self.changed_since_snapshot, self.changes_since_snapshot) = (0, 0);
                Checkpoint {
                    offset,
                    content: Content::Snapshot,
                    state,
                }
            } else {
                self.changed_since_snapshot += changed;
                self.changes_since_snapshot += 1;
                Checkpoint {
                    offset,
                    content: Content::Changes,
                    state: self.engine.take_changes(),
                }
            };
            let saved = match position {
                Some(at) => store.save_checkpoint_at(&self.topic, self.partition, &checkpoint, at),
                None => store.save_checkpoint(&self.topic, self.partition, &checkpoint),
            };
            if let Err(e) = saved {
                // What was taken is not in the store: only a snapshot can follow now.
                self.snapshot_accounts = 0;
                return Err(e.into());
            }
            self.written = Some((checkpoint.content, checkpoint.state.len()));
            self.checkpointed = Some(offset);
        }
        self.since_checkpoint = 0;
        self.last_checkpoint = now;
        Ok(Some(offset))
    }

    /// What the last checkpoint wrote (a snapshot or changes) and its size, once.
    pub fn take_written(&mut self) -> Option<(Content, usize)> {
        self.written.take()
    }

    /// Where the consumer should be for this partition: after the last record processed,
    /// or the checkpoint's offset (`None`: no position of its own yet).
    pub fn resume_offset(&self) -> Option<i64> {
        self.next_offset
    }

    pub fn stats(&self) -> &Stats {
        self.engine.stats()
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Evaluates the next records with `settings` (see [`Engine::set_settings`]).
    pub fn set_settings(&mut self, settings: Arc<Settings>) {
        self.engine.set_settings(settings);
    }
}

#[cfg(test)]
mod tests;
