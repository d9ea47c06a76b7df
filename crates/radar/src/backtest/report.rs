//! A backtest's output: the [`Report`] (its JSON is the documented format), the
//! terminal table, and two configurations side by side with their differences.

use std::fmt::Write;

use radar_core::Stats;
use serde::Serialize;

use super::analysis::{Figures, GroupFigures};
use super::outcomes::Outcomes;

/// What became of the input lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventCounts {
    pub read: u64,
    pub processed: u64,
    pub rejected: u64,
    pub unknown_type: u64,
    pub late: u64,
    pub duplicate: u64,
}

/// One configuration's backtest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The config file, or `built-in defaults`.
    pub config: String,
    pub events: EventCounts,
    pub outcome_rows: u64,
    pub outcome_rows_skipped: u64,
    #[serde(flatten)]
    pub figures: Figures,
}

impl Report {
    pub fn new(config: String, stats: &Stats, outcomes: &Outcomes, figures: Figures) -> Report {
        Report {
            config,
            events: EventCounts {
                read: stats.read,
                processed: stats.processed,
                rejected: stats.rejected_total(),
                unknown_type: stats.unknown_type,
                late: stats.late,
                duplicate: stats.duplicate,
            },
            outcome_rows: outcomes.rows,
            outcome_rows_skipped: outcomes.bad_rows,
            figures,
        }
    }
}

/// The change from the baseline to the candidate for one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub group: &'static str,
    pub name: String,
    pub opportunities: i64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub lift: Option<f64>,
    pub arr_caught: f64,
}

/// `--compare --json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison<'a> {
    pub baseline: &'a Report,
    pub candidate: &'a Report,
    /// Candidate minus baseline, for every group either has.
    pub difference: Vec<Difference>,
}

fn sub(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn find<'a>(report: &'a Report, group: &str, name: &str) -> Option<&'a GroupFigures> {
    report
        .figures
        .groups
        .iter()
        .find(|g| g.group == group && g.name == name)
}

/// Every group of either report, in the baseline's order then the candidate's new ones.
fn groups<'a>(baseline: &'a Report, candidate: &'a Report) -> Vec<(&'static str, &'a str)> {
    let mut keys: Vec<(&'static str, &str)> = Vec::new();
    for g in baseline
        .figures
        .groups
        .iter()
        .chain(&candidate.figures.groups)
    {
        if !keys.contains(&(g.group, g.name.as_str())) {
            keys.push((g.group, g.name.as_str()));
        }
    }
    keys
}

pub fn compare<'a>(baseline: &'a Report, candidate: &'a Report) -> Comparison<'a> {
    let difference = groups(baseline, candidate)
        .into_iter()
        .map(|(group, name)| {
            let (b, c) = (find(baseline, group, name), find(candidate, group, name));
            let count = |g: Option<&GroupFigures>| g.map_or(0, |g| g.opportunities as i64);
            let field =
                |g: Option<&GroupFigures>, f: fn(&GroupFigures) -> Option<f64>| g.and_then(f);
            Difference {
                group,
                name: name.to_owned(),
                opportunities: count(c) - count(b),
                precision: sub(field(c, |g| g.precision), field(b, |g| g.precision)),
                recall: sub(field(c, |g| g.recall), field(b, |g| g.recall)),
                lift: sub(field(c, |g| g.lift), field(b, |g| g.lift)),
                arr_caught: c.map_or(0.0, |g| g.arr_caught) - b.map_or(0.0, |g| g.arr_caught),
            }
        })
        .collect();
    Comparison {
        baseline,
        candidate,
        difference,
    }
}

/// A ratio as a percentage with one decimal, `-` when there is none.
pub(super) fn percent(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{:.1}%", v * 100.0))
}

fn times(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.2}x"))
}

fn days(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.1}d"))
}

/// Whole units with thousands grouped, whatever the magnitude (not through an integer
/// type, which would saturate).
fn money(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if value.round() < 0.0 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

fn label(g: &GroupFigures) -> String {
    let name = match g.group {
        "tier" => format!("tier {}", g.name),
        _ => g.name.clone(),
    };
    if g.shadow {
        format!("{name} (shadow)")
    } else {
        name
    }
}

fn header(report: &Report) -> String {
    let f = &report.figures;
    format!(
        "backtest of {}: {} events ({} processed), {} accounts, {} expanded (base rate {}), {} expansions worth {} ARR; horizon {} days{}\n",
        report.config,
        report.events.read,
        report.events.processed,
        f.accounts,
        f.accounts_expanded,
        percent(f.base_rate),
        f.expansions,
        money(f.expansion_arr),
        f.horizon_days,
        if report.outcome_rows_skipped > 0 {
            format!("; {} outcome rows skipped", report.outcome_rows_skipped)
        } else {
            String::new()
        }
    )
}

/// The terminal table of one report.
pub fn table(report: &Report) -> String {
    let mut out = header(report);
    let _ = writeln!(
        out,
        "\n{:<30} {:>7} {:>9} {:>7} {:>6} {:>8} {:>8} {:>12}",
        "group", "opps", "precision", "recall", "lift", "lead p50", "lead p90", "ARR caught"
    );
    for g in &report.figures.groups {
        let _ = writeln!(
            out,
            "{:<30} {:>7} {:>9} {:>7} {:>6} {:>8} {:>8} {:>12}",
            label(g),
            g.opportunities,
            percent(g.precision),
            percent(g.recall),
            times(g.lift),
            days(g.lead_days_median),
            days(g.lead_days_p90),
            money(g.arr_caught),
        );
    }
    let _ = writeln!(
        out,
        "\nby score threshold (every opportunity scoring at least):"
    );
    let _ = writeln!(
        out,
        "{:>9} {:>7} {:>9} {:>7}",
        "min score", "opps", "precision", "recall"
    );
    for t in &report.figures.thresholds {
        let _ = writeln!(
            out,
            "{:>9} {:>7} {:>9} {:>7}",
            t.min_score,
            t.opportunities,
            percent(t.precision),
            percent(t.recall)
        );
    }
    out
}

fn signed(value: Option<f64>, scale: f64, unit: &str) -> String {
    value.map_or("-".into(), |v| format!("{:+.1}{unit}", v * scale))
}

/// Two reports side by side, with the difference per group.
pub fn side_by_side(baseline: &Report, candidate: &Report) -> String {
    let mut out = format!("A: {}B: {}", header(baseline), header(candidate));
    let _ = writeln!(
        out,
        "\n{:<30} {:>7} {:>7} {:>9} {:>9} {:>7} {:>7} {:>6} {:>6} {:>10}",
        "group",
        "opps A",
        "opps B",
        "prec A",
        "prec B",
        "rec A",
        "rec B",
        "lift A",
        "lift B",
        "Δ precision"
    );
    let comparison = compare(baseline, candidate);
    for (difference, (group, name)) in comparison
        .difference
        .iter()
        .zip(groups(baseline, candidate))
    {
        let (a, b) = (find(baseline, group, name), find(candidate, group, name));
        let shown = a.or(b).map_or_else(|| name.to_owned(), label);
        let count =
            |g: Option<&GroupFigures>| g.map_or("-".into(), |g| g.opportunities.to_string());
        let _ = writeln!(
            out,
            "{:<30} {:>7} {:>7} {:>9} {:>9} {:>7} {:>7} {:>6} {:>6} {:>10}",
            shown,
            count(a),
            count(b),
            percent(a.and_then(|g| g.precision)),
            percent(b.and_then(|g| g.precision)),
            percent(a.and_then(|g| g.recall)),
            percent(b.and_then(|g| g.recall)),
            times(a.and_then(|g| g.lift)),
            times(b.and_then(|g| g.lift)),
            signed(difference.precision, 100.0, " pt"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands() {
        assert_eq!(money(1_234_567.4), "1,234,567");
        assert_eq!(money(999.0), "999");
        assert_eq!(money(-12_000.0), "-12,000");
        assert_eq!(money(-0.2), "0");
        // Past i64::MAX, which a cast saturated at 9,223,372,036,854,775,807.
        assert_eq!(money(1e19), "10,000,000,000,000,000,000");
    }
}
