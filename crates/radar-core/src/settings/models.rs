//! The metrics, the score model and the priority model, as written, to their typed
//! forms: every window checked against the bucket, every table and tier with its key.

use std::collections::HashSet;

use super::{Errors, MAX_CAP, RawPriority, RawScoring, RawTiers, shown};
use crate::metric::{self, Metric, MetricSet};
use crate::opportunity::Kind;
use crate::priority::{Part, PriorityModel};
use crate::scoring::{Component, ScoreModel};
use crate::table::Table;
use crate::time::Millis;
use crate::types::{KeyCollision, TypeRegistry};

/// Checks windows against the bucket size and remembers the longest.
pub(super) struct WindowCheck {
    pub(super) bucket: Option<Millis>,
    pub(super) longest: Millis,
    /// The metrics seen so far.
    pub(super) metrics: MetricSet,
}

impl WindowCheck {
    pub(super) fn buckets(&mut self, errs: &mut Errors, key: &str, text: &str) -> Option<u32> {
        let window = errs.duration(key, text)?;
        let bucket = self.bucket?;
        if window == 0 || window % bucket != 0 {
            errs.push(
                key,
                format!("{text:?} must be a positive multiple of engine.bucket"),
            );
            return None;
        }
        self.longest = self.longest.max(window);
        match u32::try_from(window / bucket) {
            Ok(n) => Some(n),
            Err(_) => {
                errs.push(key, "spans too many buckets");
                None
            }
        }
    }
}

/// Resolves a metric given as `metric = "name"` or `count = "type"` + `window`.
pub(super) fn metric_spec(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    key: &str,
    metric: Option<&str>,
    count: Option<&str>,
    window: Option<&str>,
) -> Option<Metric> {
    match (metric, count, window) {
        (Some(name), None, None) => {
            let m = Metric::named(name);
            if m.is_none() {
                let known = metric::NAMES.join(", ");
                errs.push(
                    format!("{key}.metric"),
                    format!("unknown metric {name:?}; known: {known}"),
                );
            }
            m
        }
        (None, Some(event), Some(window)) => {
            let counted = match types.lookup(event) {
                Some(id) => {
                    match types.count(id) {
                        Ok(series) => Some((id, series)),
                        Err(KeyCollision { other }) => {
                            errs.push(
                            format!("{key}.count"),
                            format!("{event:?} and {other:?} hash to the same series key; rename one"),
                        );
                            None
                        }
                    }
                }
                None => {
                    let message = match errs.refused_types.iter().find(|(_, n)| n == event) {
                        Some((declared, _)) => format!(
                            "{} is not counted: {declared} refused that name (see its problem)",
                            shown(event)
                        ),
                        None => format!(
                            "unknown event type {}; declare it in engine.custom_types",
                            shown(event)
                        ),
                    };
                    errs.push(format!("{key}.count"), message);
                    None
                }
            };
            let buckets = windows.buckets(errs, &format!("{key}.window"), window);
            let (event, key) = counted?;
            Some(Metric::Count {
                event,
                key,
                buckets: buckets?,
            })
        }
        (None, Some(_), None) => {
            errs.push(
                format!("{key}.window"),
                "a count needs a window, e.g. \"7d\"",
            );
            None
        }
        _ => {
            errs.push(key, "needs either `metric` or `count` with `window`");
            None
        }
    }
}

pub(super) fn score_model(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    raw: RawScoring,
) -> Option<ScoreModel> {
    let RawTiers {
        warm,
        hot,
        critical,
    } = raw.tiers;
    if !(0.0 < warm && warm < hot && hot < critical) {
        errs.push(
            "scoring.tiers",
            "floors must satisfy 0 < warm < hot < critical",
        );
    }
    let mut names = HashSet::new();
    let mut components = Vec::new();
    let count = raw.components.len();
    for (i, c) in raw.components.into_iter().enumerate() {
        let key = format!("scoring.components[{i}]");
        if c.name.is_empty() || !names.insert(c.name.clone()) {
            errs.push(
                format!("{key}.name"),
                format!("{:?} is empty or used twice", c.name),
            );
        }
        let metric = metric_spec(
            errs,
            types,
            windows,
            &key,
            c.metric.as_deref(),
            c.count.as_deref(),
            c.window.as_deref(),
        );
        let table = errs.table(&format!("{key}.points"), c.points);
        if !(c.cap.is_finite() && (0.0..=MAX_CAP).contains(&c.cap)) {
            errs.push(
                format!("{key}.cap"),
                "must be a number from 0 to 1,000,000,000",
            );
        }
        if !(c.missing.is_finite() && c.missing >= 0.0) {
            errs.push(format!("{key}.missing"), "must be a number ≥ 0");
        }
        if table.as_ref().is_some_and(|t| t.min_y() < 0.0) {
            errs.push(format!("{key}.points"), "points must be ≥ 0");
        }
        if let (Some(metric), Some(table)) = (metric, table) {
            components.push(Component {
                name: c.name.into(),
                metric: windows.metrics.add(metric),
                table,
                cap: c.cap,
                missing: c.missing,
            });
        }
    }
    if count == 0 {
        errs.push("scoring.components", "needs at least one component");
    }
    (components.len() == count).then_some(ScoreModel {
        components,
        tier_floors: [warm, hot, critical],
    })
}

pub(super) fn priority_model(errs: &mut Errors, mut raw: RawPriority) -> Option<PriorityModel> {
    if !(0.0..=100.0).contains(&raw.neutral) {
        errs.push("priority.neutral", "must be within 0–100");
    }
    let part_names: Vec<&str> = Part::ALL.iter().map(|p| p.as_str()).collect();
    let kind_names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    for (section, known) in [
        ("weights", &part_names),
        ("tables", &part_names),
        ("uplift", &kind_names),
    ] {
        let keys: Vec<String> = match section {
            "weights" => raw.weights.keys().cloned().collect(),
            "tables" => raw.tables.keys().cloned().collect(),
            _ => raw.uplift.keys().cloned().collect(),
        };
        for key in keys.iter().filter(|k| !known.contains(&k.as_str())) {
            errs.push(
                format!("priority.{section}.{key}"),
                format!("unknown; expected one of {}", known.join(", ")),
            );
        }
    }
    let mut weights = [0.0; 4];
    let mut tables = Vec::new();
    for (i, part) in part_names.iter().enumerate() {
        match raw.weights.get(*part) {
            Some(w) if w.is_finite() && *w >= 0.0 => weights[i] = *w,
            Some(_) => errs.push(format!("priority.weights.{part}"), "must be a number ≥ 0"),
            None => errs.push(format!("priority.weights.{part}"), "is missing"),
        }
        let key = format!("priority.tables.{part}");
        match raw.tables.remove(*part) {
            Some(points) => {
                if let Some(t) = errs.table(&key, points) {
                    if t.min_y() < 0.0 || t.max_y() > 100.0 {
                        errs.push(&key, "scores must be within 0–100");
                    }
                    tables.push(t);
                }
            }
            None => errs.push(key, "is missing"),
        }
    }
    if (weights.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
        errs.push("priority.weights", "must add up to 1");
    }
    let mut uplift = [0.0; 6];
    for (i, kind) in kind_names.iter().enumerate() {
        match raw.uplift.get(*kind) {
            Some(u) if u.is_finite() && *u >= 0.0 => uplift[i] = *u,
            Some(_) => errs.push(format!("priority.uplift.{kind}"), "must be a number ≥ 0"),
            None => errs.push(format!("priority.uplift.{kind}"), "is missing"),
        }
    }
    let tables: [Table; 4] = tables.try_into().ok()?;
    Some(PriorityModel {
        weights,
        tables,
        neutral: raw.neutral,
        uplift,
    })
}
