//! Pace: how fast a limited quantity (seats used against the seat limit, API calls this
//! period against the API limit) grows, and when, at that pace, it reaches its limit.
//!
//! The exact definition (docs/design.md#pace-and-forecasts):
//! - The observations of a quantity are thinned to the latest of each *slot*: the window
//!   (`forecast.window`, 14 days by default) cut into 8 slots of equal length, aligned on
//!   the epoch. This bounds the state (at most 9 points fall within a window) and does
//!   not depend on how often the product reports the quantity.
//! - The points within `window` of the latest one are kept; older ones are forgotten.
//! - For a per-period counter (API calls), a value below the one before it (in event
//!   time) starts a new period: the points before it no longer count.
//! - The pace is the least-squares slope of (event time in days, value) over the kept
//!   points, given at least `forecast.min_points` (3) of them spanning at least
//!   `forecast.min_span` (3 days); otherwise it is unknown.
//! - Days to the limit = (limit − latest value) / pace, when the pace is positive (0 once
//!   the limit is reached); unknown otherwise, and unknown when the day it falls on is
//!   past the period's end, if one is known.
//!
//! Within a slot the latest observation wins whatever the order of arrival, and
//! forgetting goes by the latest point's time, so a quantity that does not reset has the
//! same pace whatever order its events arrive in (events with the very same timestamp
//! are the one exception: the later arrival wins, as everywhere in the state).

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::time::{DAY, Millis, days_between};

/// Slots per window (see the module doc).
pub const SLOTS_PER_WINDOW: Millis = 8;

/// The `[forecast]` settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PaceSettings {
    pub window: Millis,
    pub min_points: usize,
    pub min_span: Millis,
}

impl Default for PaceSettings {
    fn default() -> Self {
        PaceSettings {
            window: 14 * DAY,
            min_points: 3,
            min_span: 3 * DAY,
        }
    }
}

impl PaceSettings {
    fn slot(&self, at: Millis) -> Millis {
        at.div_euclid((self.window / SLOTS_PER_WINDOW).max(1))
    }
}

/// One kept observation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub at: Millis,
    pub value: f64,
}

/// The kept points of one quantity (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pace {
    /// In time order, at most one per slot.
    points: SmallVec<[Point; 2]>,
    /// For a counter that reset: the time its current period started (the points before
    /// it, and late observations before it, belong to an earlier period).
    period_start: Option<Millis>,
}

/// Where a quantity is headed at its pace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Projection {
    /// The latest value.
    pub used: f64,
    pub limit: f64,
    pub rate_per_day: f64,
    pub days_left: f64,
    /// When the limit is reached, at this pace.
    pub reaches_limit_at: Millis,
}

impl Pace {
    /// Takes the observation `value` at `at`; `resets`: the quantity is a per-period
    /// counter, and a drop starts a new period.
    pub fn observe(&mut self, at: Millis, value: f64, resets: bool, settings: &PaceSettings) {
        if !value.is_finite() || self.period_start.is_some_and(|start| at < start) {
            return;
        }
        let slot = settings.slot(at);
        match self.points.iter().position(|p| settings.slot(p.at) == slot) {
            Some(i) if self.points[i].at > at => return,
            Some(i) => {
                self.points.remove(i);
            }
            None => {}
        }
        let place = self.points.partition_point(|p| p.at <= at);
        self.points.insert(place, Point { at, value });
        if resets
            && let Some(drop) = (1..self.points.len())
                .rev()
                .find(|&i| self.points[i].value < self.points[i - 1].value)
        {
            self.period_start = Some(self.points[drop].at);
            self.points.drain(..drop);
        }
        let latest = self.points.last().map_or(at, |p| p.at);
        let keep_from = latest.saturating_sub(settings.window);
        let old = self.points.partition_point(|p| p.at < keep_from);
        self.points.drain(..old);
    }

    /// The latest observation kept.
    pub fn latest(&self) -> Option<Point> {
        self.points.last().copied()
    }

    /// The least-squares slope per day of the kept points; `None` with too few points or
    /// too short a span.
    pub fn rate_per_day(&self, settings: &PaceSettings) -> Option<f64> {
        let (first, last) = (self.points.first()?, self.points.last()?);
        if self.points.len() < settings.min_points.max(2)
            || last.at.saturating_sub(first.at) < settings.min_span
        {
            return None;
        }
        let n = self.points.len() as f64;
        let days = |p: &Point| days_between(first.at, p.at);
        let mean_t = self.points.iter().map(days).sum::<f64>() / n;
        let mean_v = self.points.iter().map(|p| p.value).sum::<f64>() / n;
        let (mut covariance, mut variance) = (0.0, 0.0);
        for p in &self.points {
            let dt = days(p) - mean_t;
            covariance += dt * (p.value - mean_v);
            variance += dt * dt;
        }
        (variance > 0.0).then(|| covariance / variance)
    }

    /// Where the quantity is headed against `limit`: `None` when the pace is unknown or
    /// not positive, or when the limit would be reached after `period_end`.
    pub fn project(
        &self,
        limit: f64,
        period_end: Option<Millis>,
        settings: &PaceSettings,
    ) -> Option<Projection> {
        let latest = self.latest()?;
        let rate = self.rate_per_day(settings).filter(|rate| *rate > 0.0)?;
        if !limit.is_finite() {
            return None;
        }
        let days_left = ((limit - latest.value) / rate).max(0.0);
        let reaches_limit_at = latest
            .at
            .saturating_add((days_left * DAY as f64).min(i64::MAX as f64) as Millis);
        if period_end.is_some_and(|end| reaches_limit_at > end) {
            return None;
        }
        Some(Projection {
            used: latest.value,
            limit,
            rate_per_day: rate,
            days_left,
            reaches_limit_at,
        })
    }
}

#[cfg(test)]
mod tests;
