//! Changelog records a restore cannot use, treated the way a decoder treats a bad event:
//! set aside with the reason, never a reason to stop.
//!
//! A record in `<group>-state` that restore cannot read (an undecodable or truncated
//! state, a key that is no account id, a completion record that is unreadable, negative,
//! or beyond the end of the source partition) used to make every instance given its
//! partition exit, on every start, on any machine: the record stays in the compacted
//! topic. Now restore
//! - copies it to `<changelog topic>.dead-letter` (compacted, keyed by where the record
//!   is), sized to fit like the source's dead letters, with `radar.reason`,
//!   `radar.detail` and `radar.source` (topic/partition/offset);
//! - carries on without it: an unreadable completion leaves the partition at the last
//!   good one (the accounts written after it are then ahead of the resume offset, which
//!   is safe, see [`crate::changelog`]); an unreadable account state drops that account,
//!   which is rebuilt from the source partition's first offset on
//!   ([`crate::partition::PartitionWorker`] reads the other accounts' records there
//!   without applying them);
//! - supersedes it: the claim after a restore writes a completion record after a bad one,
//!   a tombstone for a key that is no account id, and the next checkpoint a tombstone or
//!   the rebuilt state for a dropped account. A record superseded so is not set aside
//!   again by later restores.
//!
//! Each one is counted in `radar_changelog_quarantined_total{reason}` and logged.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::dead_letter::{self, Origin};

/// Why a changelog record cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unusable {
    /// An account record whose state does not decode.
    State,
    /// A record whose key is not UTF-8, so no account's.
    Key,
    /// A completion record that is unreadable, has no value, or holds a negative offset.
    Completion,
    /// A completion record whose offset is past the end of the source partition: resuming
    /// there would leave the partition unread.
    CompletionBeyondSource,
}

impl Unusable {
    pub const ALL: [Unusable; 4] = [
        Unusable::State,
        Unusable::Key,
        Unusable::Completion,
        Unusable::CompletionBeyondSource,
    ];

    /// The `radar.reason` header and the metric's `reason` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Unusable::State => "unreadable_state",
            Unusable::Key => "key_not_utf8",
            Unusable::Completion => "unreadable_completion",
            Unusable::CompletionBeyondSource => "completion_beyond_source",
        }
    }
}

/// A changelog record set aside, with what restore could not make of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Quarantined {
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub why: Unusable,
    pub detail: String,
}

impl Quarantined {
    /// Where the record is and why it was set aside, as its dead letter says: keyed by
    /// `topic/partition/offset`, so a restore that meets it again (before it is
    /// superseded) writes the same letter, which compaction keeps once.
    pub(crate) fn origin(&self, topic: &str, partition: i32) -> Origin {
        let key = format!("{topic}/{partition}/{}", self.offset).into_bytes();
        Origin {
            topic: topic.to_owned(),
            partition,
            offset: self.offset,
            key,
            reason: self.why.as_str(),
            detail: format!("key \"{}\": {}", self.key.escape_ascii(), self.detail),
        }
    }
}

/// Changelog records set aside since start, by reason, and those whose letter the broker
/// refused even without their bytes.
#[derive(Debug, Default)]
pub struct QuarantineCounts {
    by_reason: [AtomicU64; Unusable::ALL.len()],
    pub lost: AtomicU64,
}

impl QuarantineCounts {
    pub(crate) fn add(&self, why: Unusable) {
        self.by_reason[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, why: Unusable) -> u64 {
        self.by_reason[why as usize].load(Ordering::Relaxed)
    }

    /// Takes `other`'s counts (for [`crate::Progress`]).
    pub(crate) fn copy_from(&self, other: &QuarantineCounts) {
        for (to, from) in self.by_reason.iter().zip(&other.by_reason) {
            to.store(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        let lost = other.lost.load(Ordering::Relaxed);
        self.lost.store(lost, Ordering::Relaxed);
    }
}

/// The dead letter of a quarantined record within `limit` bytes: its key, value and
/// detail cut to fit if they must (see [`dead_letter::letter`]).
pub(crate) fn letter<'a>(
    record: &'a Quarantined,
    origin: &'a Origin,
    limit: usize,
) -> dead_letter::Letter<'a> {
    dead_letter::letter(
        origin,
        Some(&origin.key),
        record.value.as_deref().unwrap_or_default(),
        limit,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_names_the_record_its_key_and_the_reason_and_fits() {
        let record = Quarantined {
            offset: 7,
            key: vec![b'a', 0xff],
            value: Some(vec![b'x'; 2_000_000]),
            why: Unusable::State,
            detail: "corrupt snapshot".into(),
        };
        let origin = record.origin("g-state", 3);
        let built = letter(&record, &origin, 1_000_000);
        assert_eq!(built.key, Some(&b"g-state/3/7"[..]));
        assert!(built.truncated && built.size() < 1_000_000);
        let header = |name: &str| {
            built
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(header("radar.reason").as_deref(), Some("unreadable_state"));
        assert_eq!(header("radar.source").as_deref(), Some("g-state/3/7"));
        assert_eq!(
            header("radar.detail").as_deref(),
            Some(r#"key "a\xff": corrupt snapshot"#)
        );
    }

    #[test]
    fn counts_are_kept_by_reason() {
        let counts = QuarantineCounts::default();
        counts.add(Unusable::Completion);
        counts.add(Unusable::Completion);
        counts.add(Unusable::Key);
        let all: Vec<u64> = Unusable::ALL.iter().map(|w| counts.get(*w)).collect();
        assert_eq!(all, [0, 1, 2, 0]);
    }
}
