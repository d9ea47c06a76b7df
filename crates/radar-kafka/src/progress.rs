//! What the source shows whoever watches it ([`Progress`]), and how it is asked to stop
//! ([`Stop`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use radar_core::Stats;
use radar_store::Content;

use crate::dead_letter::LetterCounts;
use crate::quarantine::QuarantineCounts;

/// What the source shows whoever watches it (tests, metrics, readiness), refreshed
/// after every poll round: atomics and short-held locks, never touched per event.
#[derive(Debug, Default)]
pub struct Progress {
    pub consumed: AtomicU64,
    /// Errors the consumer reported (a broker away, a topic missing): logged at most
    /// every few seconds, all counted here.
    pub consumer_errors: AtomicU64,
    /// Offset commits refused (a rebalance in progress, a lost assignment): each is
    /// logged, and harmless, since the checkpoint is the truth.
    pub commits_refused: AtomicU64,
    /// Partitions dropped unwritten at a checkpoint because another instance had written
    /// their changelog since (this one had lost them without being told yet).
    pub fenced: AtomicU64,
    /// Partitions assigned and restored, ready to process.
    pub partitions: AtomicU64,
    pub tracked_accounts: AtomicU64,
    /// Every partition's counts so far (including partitions since revoked).
    pub stats: Mutex<Stats>,
    /// Consumer lag by (topic, partition), from librdkafka's statistics.
    pub lag: Mutex<BTreeMap<(String, i32), i64>>,
    pub checkpoints: Mutex<CheckpointTimes>,
    /// Dead letters that could not be sent whole.
    pub dead_letters: LetterCounts,
    /// Changelog records restores set aside (`state.store = "kafka"`).
    pub quarantined: QuarantineCounts,
    /// How long each poll round's processing took (decode → state → rules → score →
    /// opportunities, dead letters handed on), not yet taken by a metrics reader; at most
    /// [`Progress::KEPT`] are kept.
    pub rounds: Mutex<Vec<Duration>>,
    /// Opportunities of playbooks in shadow mode: delivered nowhere, counted and kept
    /// here for the admin API.
    pub shadow: Mutex<ShadowLog>,
    /// The `[[sources]]` read through a mapping, for their metrics.
    pub sources: Mutex<Vec<SourceCounts>>,
}

/// One mapped source's counters: registry failures, and when it is re-keyed, what the
/// re-keying loop did.
#[derive(Debug, Clone)]
pub struct SourceCounts {
    pub name: String,
    pub mapped: std::sync::Arc<crate::MappedSource>,
    pub rekey: Option<std::sync::Arc<crate::RekeyCounts>>,
}

/// The would-be opportunities of shadow-mode playbooks: counts by playbook, and the most
/// recent ones as JSON.
#[derive(Debug, Default)]
pub struct ShadowLog {
    pub counts: BTreeMap<String, u64>,
    /// Newest last; at most [`ShadowLog::KEPT`].
    pub recent: VecDeque<Vec<u8>>,
}

impl ShadowLog {
    pub const KEPT: usize = 500;

    pub fn record(&mut self, playbook: &str, json: Vec<u8>) {
        *self.counts.entry(playbook.to_owned()).or_default() += 1;
        if self.recent.len() == ShadowLog::KEPT {
            self.recent.pop_front();
        }
        self.recent.push_back(json);
    }
}

impl Progress {
    /// Timings kept for a reader that has not come yet.
    pub const KEPT: usize = 65_536;

    pub(crate) fn note(list: &Mutex<Vec<Duration>>, took: Duration) {
        if let Ok(mut list) = list.lock()
            && list.len() < Progress::KEPT
        {
            list.push(took);
        }
    }
}

/// When the last checkpoint was written and how long checkpoints take.
#[derive(Debug, Default, Clone)]
pub struct CheckpointTimes {
    /// Durations of checkpoints not yet taken by a metrics reader.
    pub durations: Vec<Duration>,
    /// What each partition checkpoint wrote (a snapshot or changes) and its size in
    /// bytes, not yet taken by a metrics reader.
    pub written: Vec<(Content, usize)>,
    /// When the last one completed.
    pub last: Option<Instant>,
}

/// How the source was asked to stop.
#[derive(Debug, Default)]
pub struct Stop {
    graceful: AtomicBool,
    abrupt: AtomicBool,
}

impl Stop {
    /// Finish in-flight work, checkpoint every partition, commit, return.
    pub fn graceful(&self) {
        self.graceful.store(true, Ordering::SeqCst);
    }

    /// Return at once, as a crash would: nothing more is checkpointed or committed.
    pub fn abrupt(&self) {
        self.abrupt.store(true, Ordering::SeqCst);
    }

    pub fn is_graceful(&self) -> bool {
        self.graceful.load(Ordering::SeqCst)
    }

    pub fn is_abrupt(&self) -> bool {
        self.abrupt.load(Ordering::SeqCst)
    }
}
