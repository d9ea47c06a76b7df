//! Which accounts a changelog replay finds ahead of the completion record it resumes
//! from: those whose last record says their state is complete beyond it (a checkpoint
//! cut short between its account records and its completion, or a claim written after
//! such records).
//!
//! Kept cheaply, since every account record of a replay passes through here: the records
//! read since the last completion that covered them all go on a list, which the next
//! completion usually empties at once; only a record that supersedes one on the list (a
//! tombstone, or a state with nothing ahead) is noted by key.

use std::collections::HashMap;

/// An account record ahead of the completions read so far: its key, the source offset
/// its state is complete up to, and where it is in the changelog.
pub(crate) type Pending = (Vec<u8>, i64, i64);

#[derive(Debug)]
pub(crate) struct Ahead {
    pending: Vec<Pending>,
    /// The largest source offset on `pending`.
    max: i64,
    /// Keys of records read after some of `pending` that supersede them, with where the
    /// latest such record is.
    superseded: HashMap<Vec<u8>, i64>,
}

impl Default for Ahead {
    fn default() -> Self {
        Ahead {
            pending: Vec::new(),
            max: i64::MIN,
            superseded: HashMap::new(),
        }
    }
}

impl Ahead {
    /// An account record of `key` at changelog offset `at` (a state or a tombstone),
    /// complete up to `complete_to` when it says so, read while the replay resumes at
    /// `resume_at`.
    pub(crate) fn record(
        &mut self,
        key: &[u8],
        complete_to: Option<i64>,
        resume_at: Option<i64>,
        at: i64,
    ) {
        match complete_to {
            Some(to) if resume_at.is_none_or(|resume| to > resume) => {
                self.pending.push((key.to_vec(), to, at));
                self.max = self.max.max(to);
            }
            _ if !self.pending.is_empty() => {
                self.superseded.insert(key.to_vec(), at);
            }
            _ => {}
        }
    }

    /// A completion record at source offset `offset`: the records it covers are no
    /// longer ahead. Returns them when `keep` (a completion that may yet be dropped, see
    /// [`Ahead::reopen`]).
    pub(crate) fn complete(&mut self, offset: i64, keep: bool) -> Vec<Pending> {
        if self.max <= offset && !keep {
            self.pending.clear();
        }
        let (covered, still): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, to, _)| *to <= offset);
        self.pending = still;
        self.max = self
            .pending
            .iter()
            .map(|(_, to, _)| *to)
            .max()
            .unwrap_or(i64::MIN);
        if self.pending.is_empty() {
            self.superseded.clear();
        }
        if keep { covered } else { Vec::new() }
    }

    /// The accounts ahead: each one's latest record on the list, unless a later record of
    /// it superseded it.
    pub(crate) fn into_map(self) -> HashMap<Vec<u8>, i64> {
        let mut ahead = HashMap::new();
        for (key, to, at) in self.pending {
            match self.superseded.get(&key) {
                Some(later) if *later > at => {}
                _ => {
                    ahead.insert(key, to);
                }
            }
        }
        ahead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_covers_the_records_before_it_and_a_later_record_supersedes() {
        let mut ahead = Ahead::default();
        // A checkpoint completed at 100: nothing ahead.
        ahead.record(b"a", Some(100), None, 0);
        ahead.record(b"b", Some(100), None, 1);
        assert!(ahead.complete(100, false).is_empty());
        // One cut short at 200, then a claim at 100 by the next owner.
        ahead.record(b"a", Some(200), Some(100), 3);
        ahead.record(b"b", Some(200), Some(100), 4);
        ahead.record(b"c", Some(200), Some(100), 5);
        assert!(ahead.complete(100, false).is_empty());
        // b then evicted, and c written again by a checkpoint still pending at 300.
        ahead.record(b"b", None, Some(100), 7);
        ahead.record(b"c", Some(300), Some(100), 8);
        let map = ahead.into_map();
        let mut got: Vec<(&[u8], i64)> = map.iter().map(|(k, v)| (k.as_slice(), *v)).collect();
        got.sort_unstable();
        assert_eq!(got, [(&b"a"[..], 200), (&b"c"[..], 300)]);
    }

    #[test]
    fn a_completion_that_may_be_dropped_hands_back_what_it_covered() {
        let mut ahead = Ahead::default();
        ahead.record(b"a", Some(50), Some(10), 0);
        let covered = ahead.complete(1 << 62, true);
        assert_eq!(covered, [(b"a".to_vec(), 50, 0)]);
        assert!(ahead.into_map().is_empty());
    }
}
