//! Outcome counters of an engine: what the replay summary prints and what the pipeline
//! exports as metrics.

use crate::event::RejectReason;
use crate::gates::Gate;
use crate::opportunity::Kind;
use crate::scoring::Tier;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Every input, whatever became of it.
    pub read: u64,
    /// Accepted events that changed state (not rejected, unknown, late or duplicate).
    pub processed: u64,
    /// By [`RejectReason::ALL`] order.
    pub rejected: [u64; RejectReason::ALL.len()],
    pub unknown_type: u64,
    pub late: u64,
    pub duplicate: u64,
    /// Emitted opportunities by [`Kind::ALL`] then [`Tier::ALL`] order.
    pub opportunities: [[u64; 4]; 6],
    /// Opportunities a gate held back, once per (account, trigger) per cooldown, by
    /// [`Gate::ALL`] order.
    pub suppressed: [u64; 5],
    /// Firings within the cooldown of an emitted opportunity (not emitted).
    pub cooldown: u64,
    /// Opportunities of playbooks in shadow mode (emitted marked, delivered nowhere; not
    /// in `opportunities`).
    pub shadow: u64,
    /// Events of each known type, by [`crate::types::TypeId`] (whatever became of them:
    /// processed, late or duplicate); unknown types are in `unknown_type`.
    pub by_type: Vec<u64>,
    /// Accounts reset by an event after the idle TTL, or swept from memory after it.
    pub evicted: u64,
}

impl Stats {
    pub fn rejected(&self, reason: RejectReason) -> u64 {
        self.rejected[reason.index()]
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().sum()
    }

    pub fn opportunities(&self, kind: Kind, tier: Tier) -> u64 {
        self.opportunities[kind.index()][tier.index()]
    }

    pub fn opportunities_total(&self) -> u64 {
        self.opportunities.iter().flatten().sum()
    }

    pub fn suppressed(&self, gate: Gate) -> u64 {
        self.suppressed[gate.index()]
    }

    /// Adds another engine's counts (engines are per partition).
    pub fn merge(&mut self, other: &Stats) {
        self.read += other.read;
        self.processed += other.processed;
        for (a, b) in self.rejected.iter_mut().zip(other.rejected) {
            *a += b;
        }
        self.unknown_type += other.unknown_type;
        self.late += other.late;
        self.duplicate += other.duplicate;
        for (row, other_row) in self.opportunities.iter_mut().zip(other.opportunities) {
            for (a, b) in row.iter_mut().zip(other_row) {
                *a += b;
            }
        }
        for (a, b) in self.suppressed.iter_mut().zip(other.suppressed) {
            *a += b;
        }
        self.cooldown += other.cooldown;
        self.shadow += other.shadow;
        self.evicted += other.evicted;
        if self.by_type.len() < other.by_type.len() {
            self.by_type.resize(other.by_type.len(), 0);
        }
        for (a, b) in self.by_type.iter_mut().zip(&other.by_type) {
            *a += b;
        }
    }
}
