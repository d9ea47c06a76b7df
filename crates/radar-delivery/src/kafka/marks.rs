//! What one destination has settled of one partition of the opportunities or retry
//! topic, beyond the partition's committed offset: the value of a settlement-ledger
//! record ([`Mark`]), and how an owner of the partition keeps it ([`PartitionMarks`]).
//!
//! The committed offset stops at a partition's first record with any delivery
//! unsettled, so after a crash the next owner would send again everything settled above
//! it. The marks say what that is, per destination:
//! - every record below `below` is settled for the destination, or does not want it;
//! - so is every record in the `settled` ranges;
//! - the records in `in_flight` were being sent when the mark was written: the next owner
//!   sends them again, and counts each as a repeat.
//!
//! The owner writes a destination's marks before it starts sending (with the new
//! deliveries in flight) and after it records outcomes, and starts nothing while the
//! marks of what it sent are not acknowledged. A crash therefore repeats only what was in
//! flight (docs/delivery.md#no-repeats-after-a-failover). A mark is never wrong, only
//! late: whatever it says was settled was, so a lost, stale or shortened mark costs
//! repeats, never a delivery.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// Settled ranges a mark lists at most (the lowest, which the next owner meets first): a
/// mark stays small whatever holds the partition's commit back. Those left out would be
/// sent again.
const MAX_RANGES: usize = 1_000;

/// One ledger record's value (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub below: i64,
    /// Settled offsets above `below`, as `[first, end)` ranges in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settled: Vec<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub in_flight: Vec<i64>,
}

impl Mark {
    /// The highest offset the mark speaks of.
    pub fn highest(&self) -> i64 {
        let settled = self.settled.last().map_or(0, |range| range[1]);
        let in_flight = self.in_flight.last().map_or(0, |offset| offset + 1);
        self.below.max(settled).max(in_flight)
    }
}

/// What an earlier owner's mark says of a record this owner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inherited {
    /// Settled: not sent again.
    Settled,
    /// It was in flight: sent again, a repeat.
    InFlight,
    /// Nothing: sent as usual.
    Open,
}

/// One destination's marks of one partition.
#[derive(Debug, Default)]
struct DestinationMarks {
    /// Offsets read with a delivery to it not settled yet.
    unsettled: BTreeSet<i64>,
    in_flight: BTreeSet<i64>,
    /// Settled here; none below the last mark's `below`.
    settled: BTreeSet<i64>,
    /// The earlier owner's mark.
    inherited: Mark,
    /// Bumped by every change a mark shows.
    version: u64,
    /// The version last acknowledged on the ledger.
    published: u64,
}

impl DestinationMarks {
    fn inherited_settled(&self, offset: i64) -> bool {
        let ranges = &self.inherited.settled;
        let after = ranges.partition_point(|range| range[0] <= offset);
        offset < self.inherited.below || (after > 0 && offset < ranges[after - 1][1])
    }
}

/// The marks of one partition this instance owns, per destination.
#[derive(Debug, Default)]
pub struct PartitionMarks {
    destinations: HashMap<String, DestinationMarks>,
}

impl PartitionMarks {
    /// Takes on the marks the partition's earlier owners left, per destination.
    pub fn inherit(&mut self, marks: impl IntoIterator<Item = (String, Mark)>) {
        for (destination, mark) in marks {
            let marks = self.destinations.entry(destination).or_default();
            // Not written again until this owner changes something: the ledger holds it.
            marks.inherited = mark;
        }
    }

    /// What the earlier owners' marks say of the record at `offset` for `destination`.
    pub fn inherited(&self, destination: &str, offset: i64) -> Inherited {
        let Some(marks) = self.destinations.get(destination) else {
            return Inherited::Open;
        };
        if marks.inherited_settled(offset) {
            Inherited::Settled
        } else if marks.inherited.in_flight.binary_search(&offset).is_ok() {
            Inherited::InFlight
        } else {
            Inherited::Open
        }
    }

    /// The record at `offset` was read with a delivery to `destination`.
    pub fn read(&mut self, destination: &str, offset: i64) {
        let marks = self.destinations.entry(destination.to_owned()).or_default();
        marks.unsettled.insert(offset);
    }

    /// The delivery of the record at `offset` to `destination` is being sent.
    pub fn started(&mut self, destination: &str, offset: i64) {
        if let Some(marks) = self.destinations.get_mut(destination)
            && marks.unsettled.contains(&offset)
            && marks.in_flight.insert(offset)
        {
            marks.version += 1;
        }
    }

    /// The delivery of the record at `offset` to `destination` did not start after all
    /// (its mark could not be written, or its partition is being revoked).
    pub fn unstarted(&mut self, destination: &str, offset: i64) {
        if let Some(marks) = self.destinations.get_mut(destination)
            && marks.in_flight.remove(&offset)
        {
            marks.version += 1;
        }
    }

    /// The delivery of the record at `offset` to `destination` is settled.
    pub fn settled(&mut self, destination: &str, offset: i64) {
        if let Some(marks) = self.destinations.get_mut(destination)
            && marks.unsettled.remove(&offset)
        {
            marks.in_flight.remove(&offset);
            marks.settled.insert(offset);
            marks.version += 1;
        }
    }

    /// Whether a delivery of the partition is in flight.
    pub fn in_flight(&self) -> bool {
        self.destinations
            .values()
            .any(|marks| !marks.in_flight.is_empty())
    }

    /// The destinations with marks of the partition.
    pub fn destinations(&self) -> impl Iterator<Item = &str> {
        self.destinations.keys().map(String::as_str)
    }

    /// The destination's mark now, and its version, if it has changes the ledger has not
    /// acknowledged; `read_to` is the offset after the last record read. Settled offsets
    /// the mark's `below` passes are forgotten.
    pub fn unpublished(&mut self, destination: &str, read_to: i64) -> Option<(Mark, u64)> {
        let marks = self.destinations.get_mut(destination)?;
        if marks.version == marks.published {
            return None;
        }
        // Below the first unsettled record, all is settled; if there is none, so is all
        // that was read, and all the earlier owner marked below its own `below`.
        let read = read_to.max(marks.inherited.below);
        let below = marks
            .unsettled
            .first()
            .map_or(read, |first| read.min(*first));
        marks.settled = marks.settled.split_off(&below);
        let mut settled: Vec<[i64; 2]> = marks
            .inherited
            .settled
            .iter()
            .filter(|range| range[1] > below)
            .map(|range| [range[0].max(below), range[1]])
            .chain(marks.settled.iter().map(|offset| [*offset, offset + 1]))
            .collect();
        settled.sort_unstable();
        let mut merged: Vec<[i64; 2]> = Vec::with_capacity(settled.len());
        for range in settled {
            match merged.last_mut() {
                Some(last) if range[0] <= last[1] => last[1] = last[1].max(range[1]),
                _ => merged.push(range),
            }
        }
        merged.truncate(MAX_RANGES);
        // What the earlier owner had in flight and this one has not read yet is still
        // in flight as far as the next owner can tell.
        let mut in_flight: Vec<i64> = marks.in_flight.iter().copied().collect();
        in_flight.extend(
            marks
                .inherited
                .in_flight
                .iter()
                .filter(|offset| **offset >= read_to),
        );
        in_flight.sort_unstable();
        in_flight.dedup();
        let mark = Mark {
            below,
            settled: merged,
            in_flight,
        };
        Some((mark, marks.version))
    }

    /// The ledger acknowledged the destination's mark of `version`.
    pub fn published(&mut self, destination: &str, version: u64) {
        if let Some(marks) = self.destinations.get_mut(destination) {
            marks.published = marks.published.max(version);
        }
    }
}

#[cfg(test)]
mod tests;
