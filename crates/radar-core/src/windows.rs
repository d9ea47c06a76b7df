//! Event-time window counters.
//!
//! Per (account, counted type), a sparse series of cumulative counts by bucket. A window
//! of `len` buckets evaluated at bucket `b` counts the events in buckets `[b - len + 1, b]`
//! (docs/design.md#windows): `total_through(b) - total_through(b - len)`, two short searches
//! whatever the window length or the account's volume. Recording an event late by at most
//! the lateness bound touches only the points after it, so the cost stays bounded.
//! Totals wrap: a difference is exact while one window holds fewer than 2³² events.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

/// The stable key of a counted event type: a hash of its name, so counters saved with an
/// account stay attached to their type whatever the order of the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SeriesKey(pub u32);

impl SeriesKey {
    pub fn of(type_name: &str) -> SeriesKey {
        SeriesKey(xxhash_rust::xxh3::xxh3_64(type_name.as_bytes()) as u32)
    }
}

/// One bucket that saw events: `total` counts every event up to and including it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Point {
    bucket: u32,
    total: u32,
}

/// Cumulative counts of one event type for one account. The first points live inline:
/// most accounts send a few signals a month, and this spares them allocations and cache
/// misses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Series {
    points: SmallVec<[Point; 2]>,
    /// Total of the points pruned away (all of them older than any window can reach).
    base: u32,
    /// Copies of the first point's bucket and of the last point, kept beside the
    /// (possibly spilled) points: a window that reaches past either end is answered from
    /// them without touching the heap, which on the hot path is a cache miss saved.
    /// Derived, so not saved: recomputed when a snapshot is restored.
    #[serde(skip)]
    first_bucket: u32,
    #[serde(skip)]
    last: Point,
}

impl Series {
    /// Counts one event in `bucket`.
    pub fn record(&mut self, bucket: u32) {
        self.record_point(bucket);
        self.sync_edges();
    }

    pub(crate) fn sync_edges(&mut self) {
        if let (Some(first), Some(last)) = (self.points.first(), self.points.last()) {
            self.first_bucket = first.bucket;
            self.last = *last;
        }
    }

    fn record_point(&mut self, bucket: u32) {
        match self.points.last_mut() {
            Some(last) if last.bucket == bucket => last.total = last.total.wrapping_add(1),
            Some(last) if last.bucket < bucket => {
                let total = last.total.wrapping_add(1);
                self.points.push(Point { bucket, total });
            }
            None => self.points.push(Point {
                bucket,
                total: self.base.wrapping_add(1),
            }),
            Some(_) => self.record_late(bucket),
        }
    }

    fn record_late(&mut self, bucket: u32) {
        let at = self.points.partition_point(|p| p.bucket < bucket);
        if self.points[at].bucket != bucket {
            let before = at
                .checked_sub(1)
                .map_or(self.base, |i| self.points[i].total);
            self.points.insert(
                at,
                Point {
                    bucket,
                    total: before,
                },
            );
        }
        for point in &mut self.points[at..] {
            point.total = point.total.wrapping_add(1);
        }
    }

    /// Events in buckets `[bucket - len + 1, bucket]`.
    pub fn count(&self, bucket: u32, len: u32) -> u32 {
        let upper = self.total_through(bucket);
        let lower = match bucket.checked_sub(len) {
            Some(below) => self.total_through(below),
            None => 0,
        };
        upper.wrapping_sub(lower)
    }

    /// Events in every bucket up to and including `bucket` (plus the pruned base).
    ///
    /// Buckets are strictly increasing integers, so the point sought is at most
    /// `last.bucket - bucket` places before the end: the search starts there and gallops
    /// forward. A busy account has a point in nearly every bucket and is answered in one
    /// or two probes instead of a binary search over its whole horizon.
    fn total_through(&self, bucket: u32) -> u32 {
        let n = self.points.len();
        if n == 0 || bucket < self.first_bucket {
            return self.base;
        }
        let last = self.last;
        if bucket >= last.bucket {
            return last.total;
        }
        let behind = (last.bucket - bucket) as usize;
        if behind >= n {
            let at = self.points.partition_point(|p| p.bucket <= bucket);
            return at
                .checked_sub(1)
                .map_or(self.base, |i| self.points[i].total);
        }
        // points[lo].bucket <= bucket holds from here on.
        let mut lo = n - 1 - behind;
        let mut step = 1;
        loop {
            let hi = lo + step;
            if hi >= n || self.points[hi].bucket > bucket {
                let end = hi.min(n);
                let at = lo + self.points[lo + 1..end].partition_point(|p| p.bucket <= bucket);
                return self.points[at].total;
            }
            lo = hi;
            step *= 2;
        }
    }

    /// Folds buckets older than `keep_from` into the base; no window evaluated at a
    /// bucket within the lateness bound can reach them.
    pub fn prune(&mut self, keep_from: u32) {
        let stale = self.points.partition_point(|p| p.bucket < keep_from);
        if stale > 0 {
            self.base = self.points[stale - 1].total;
            self.points.drain(..stale);
            self.sync_edges();
        }
    }
}

/// The series of one account, for the counted types it has seen (sparse: most accounts
/// see few of them, and the first two are inline).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Windows {
    series: SmallVec<[(SeriesKey, Series); 2]>,
}

impl Windows {
    /// Counts an event of type `key` in `bucket`, pruning what `keep_from` excludes.
    pub fn record(&mut self, key: SeriesKey, bucket: u32, keep_from: u32) {
        let series = match self.series.iter().position(|(k, _)| *k == key) {
            Some(i) => &mut self.series[i].1,
            None => {
                self.series.push((key, Series::default()));
                let last = self.series.len() - 1;
                &mut self.series[last].1
            }
        };
        series.record(bucket);
        series.prune(keep_from);
    }

    /// Recomputes what is derived from the points (after a restore).
    pub(crate) fn sync_edges(&mut self) {
        for (_, series) in &mut self.series {
            series.sync_edges();
        }
    }

    pub fn count(&self, key: SeriesKey, bucket: u32, len: u32) -> u32 {
        self.series
            .iter()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, series)| series.count(bucket, len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive(buckets: &[u32], at: u32, len: u32) -> u32 {
        buckets.iter().filter(|&&b| b <= at && b + len > at).count() as u32
    }

    #[test]
    fn window_bounds_are_inclusive_of_the_current_bucket() {
        let mut s = Series::default();
        for b in [10, 10, 12, 15] {
            s.record(b);
        }
        assert_eq!(s.count(15, 1), 1);
        assert_eq!(s.count(15, 4), 2);
        assert_eq!(s.count(15, 6), 4);
        assert_eq!(s.count(12, 3), 3);
        assert_eq!(s.count(9, 100), 0);
        assert_eq!(s.count(3, 100), 0);
    }

    #[test]
    fn late_events_land_in_their_bucket() {
        let mut s = Series::default();
        for b in [10, 14, 12, 12, 9] {
            s.record(b);
        }
        assert_eq!(s.count(14, 1), 1);
        assert_eq!(s.count(12, 3), 3);
        assert_eq!(s.count(14, 6), 5);
    }

    proptest! {
        /// The model test: counts equal a naive recount over the same events, with
        /// arrivals up to `late` buckets behind the latest one and pruning on the way.
        #[test]
        fn counts_match_a_naive_recount(
            steps in prop::collection::vec((0u32..4, 0u32..6), 1..300),
            len in 1u32..40,
        ) {
            let late = 5u32;
            let horizon = 40 + late + 1;
            let mut windows = Windows::default();
            let mut seen = Vec::new();
            let mut latest = 0u32;
            for (advance, behind) in steps {
                latest += advance;
                let bucket = latest.saturating_sub(behind.min(late));
                windows.record(SeriesKey(0), bucket, latest.saturating_sub(horizon));
                seen.push(bucket);
                for at in latest.saturating_sub(late)..=latest {
                    prop_assert_eq!(windows.count(SeriesKey(0), at, len), naive(&seen, at, len));
                }
            }
        }
    }
}
