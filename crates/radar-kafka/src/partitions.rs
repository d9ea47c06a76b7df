//! The partitions this member holds: one [`PartitionWorker`] each, owned by the poll loop
//! ([`crate::source`]), which alone changes them, between its rounds. The admin API reads
//! them through [`crate::Inspector`], which is why they sit behind a lock: the loop holds it
//! while it works on them, a lookup while it reads one account.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use radar_core::{Settings, Stats};
use radar_store::{Content, Store};
use rayon::prelude::*;

use crate::changelog::Changelog;
use crate::error::SourceError;
use crate::partition::{PartitionWorker, Restored};
use crate::progress::Progress;

/// Partitions restored at once, at most.
const RESTORES_AT_ONCE: usize = 4;

/// A partition: (topic, partition).
pub(crate) type Key = (String, i32);

/// The partitions held, and what is kept of those that left.
pub(crate) struct Partitions {
    pub(crate) workers: HashMap<Key, PartitionWorker>,
    /// The engine settings in force: what a partition assigned from now on starts with.
    pub(crate) settings: Arc<Settings>,
    /// Stats of partitions that left, so nothing counted is lost.
    retired: Stats,
    /// What partition checkpoints wrote since the source last published its progress.
    written: Vec<(Content, usize)>,
}

impl Partitions {
    pub(crate) fn new(settings: Arc<Settings>) -> Partitions {
        Partitions {
            workers: HashMap::new(),
            settings,
            retired: Stats::default(),
            written: Vec::new(),
        }
    }

    /// Restores the partitions of `keys`, several at a time (each reads its own
    /// checkpoints, and its changelog partition through a consumer of its own), and
    /// returns each with the offset to resume it from: `None` means from the start, since
    /// without a checkpoint there is no state to resume. A worker still held for one of
    /// them can only be stale (every revocation retires its partitions), so it is
    /// replaced.
    pub(crate) fn restore(
        &mut self,
        keys: &[Key],
        store: &Store,
        changelog: Option<&Changelog>,
    ) -> Result<Vec<(Key, Option<i64>)>, SourceError> {
        for key in keys {
            self.retire(key);
        }
        let settings = &self.settings;
        let restore = |(topic, partition): &Key| {
            let _restoring =
                tracing::info_span!("restore", %topic, partition = *partition).entered();
            let (worker, restored) = PartitionWorker::restore(
                settings.clone(),
                store,
                changelog,
                topic,
                *partition,
                Instant::now(),
            )?;
            report_restore(&restored);
            Ok::<_, SourceError>(worker)
        };
        let workers: Vec<PartitionWorker> = if keys.len() > 1 {
            // A pool of its own bounds the restores at once: each holds a consumer's
            // prefetch (up to 256 MiB) and the engine it builds.
            rayon::ThreadPoolBuilder::new()
                .num_threads(RESTORES_AT_ONCE.min(keys.len()))
                .thread_name(|i| format!("restore-{i}"))
                .build()
                .map_err(|e| SourceError::Changelog(format!("starting the restore threads: {e}")))?
                .install(|| keys.par_iter().map(restore).collect::<Result<_, _>>())?
        } else {
            keys.iter().map(restore).collect::<Result<_, _>>()?
        };
        let mut resume = Vec::with_capacity(keys.len());
        for (key, worker) in keys.iter().zip(workers) {
            resume.push((key.clone(), worker.resume_offset()));
            self.workers.insert(key.clone(), worker);
        }
        Ok(resume)
    }

    /// Lets a partition go, its counts kept.
    pub(crate) fn retire(&mut self, key: &Key) {
        if let Some(worker) = self.workers.remove(key) {
            self.retired.merge(worker.stats());
        }
    }

    /// Switches every partition to `settings`: between two rounds, so each round runs on
    /// one version.
    pub(crate) fn switch(&mut self, settings: Arc<Settings>) {
        for worker in self.workers.values_mut() {
            worker.set_settings(settings.clone());
        }
        tracing::info!(
            version = settings.version.as_deref().unwrap_or("-"),
            partitions = self.workers.len(),
            "new settings in force"
        );
        self.settings = settings;
    }

    /// Notes what a worker's checkpoint just wrote.
    pub(crate) fn note_written(&mut self, key: &Key) {
        if let Some(written) = self.workers.get_mut(key).and_then(|w| w.take_written())
            && self.written.len() < Progress::KEPT
        {
            self.written.push(written);
        }
    }

    /// What checkpoints wrote since the last call.
    pub(crate) fn take_written(&mut self) -> Vec<(Content, usize)> {
        std::mem::take(&mut self.written)
    }

    /// The counts of every partition held now or before.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.retired.clone();
        for worker in self.workers.values() {
            stats.merge(worker.stats());
        }
        stats
    }

    /// Accounts tracked by the partitions held now.
    pub(crate) fn tracked_accounts(&self) -> usize {
        self.workers
            .values()
            .map(|w| w.engine().tracked_accounts())
            .sum()
    }
}

/// Says what a partition was restored from, and warns when checkpoints were left out;
/// inside the `restore` span, which names the partition.
fn report_restore(restored: &Restored) {
    match restored.resume_at {
        Some(offset) => tracing::info!(
            accounts = restored.accounts,
            offset,
            "partition restored, resuming at its checkpoint's offset"
        ),
        None if restored.rebuilding > 0 => tracing::info!(
            accounts = restored.accounts,
            "partition restored, reading it from the start to rebuild the accounts whose state could not be read"
        ),
        None if restored.accounts > 0 => tracing::info!(
            accounts = restored.accounts,
            "partition restored from a changelog with no completed checkpoint, reading it from the start"
        ),
        None => tracing::info!("no checkpoint, building the partition's state from the start"),
    }
    if let Some(records) = restored.from_changelog.filter(|records| *records > 0) {
        tracing::info!(
            records,
            "changelog records read (the local store was missing or behind)"
        );
    }
    if restored.quarantined > 0 {
        tracing::warn!(
            records = restored.quarantined,
            "unusable changelog records set aside; restore went on without them"
        );
    }
    if restored.ahead > 0 {
        tracing::info!(
            accounts = restored.ahead,
            "accounts ahead of the resume offset (a checkpoint cut short): their records before it are read, not applied"
        );
    }
    if restored.rebuilding > 0 {
        tracing::warn!(
            accounts = restored.rebuilding,
            "accounts whose changelog state could not be read are rebuilt from the start of the partition"
        );
    }
    if restored.skipped > 0 {
        tracing::warn!(
            skipped = restored.skipped,
            "newer checkpoints left out (damaged or unreadable); the events after them are processed again"
        );
    }
}
