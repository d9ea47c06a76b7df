//! The summary `radar replay` and a stopping `radar run` print on stderr: lines of text,
//! or with `--log-format json` one event with the counts as fields.

use std::fmt::Write;

use radar_core::Stats;
use radar_core::event::RejectReason;
use radar_core::gates::Gate;
use radar_core::opportunity::Kind;
use radar_core::scoring::Tier;

use crate::logging::LogFormat;

/// `name=count` pairs, skipping zeros, or `none`.
fn pairs(items: impl Iterator<Item = (String, u64)>) -> String {
    let parts: Vec<String> = items
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

/// Writes the summary on stderr in the format logs are written in.
pub fn print(stats: &Stats, tracked_accounts: usize) {
    match crate::logging::format() {
        LogFormat::Text => eprint!("{}", render(stats, tracked_accounts)),
        LogFormat::Json => event(stats, tracked_accounts),
    }
}

/// The summary as one event: the totals as numbers, the breakdowns as the same
/// `name=count` pairs the text shows (a log pipeline reads them as it reads any field).
fn event(stats: &Stats, tracked_accounts: usize) {
    let by_kind: Vec<String> = Kind::ALL
        .iter()
        .map(|kind| (kind, by_tier(stats, *kind)))
        .filter(|(_, tiers)| tiers != "none")
        .map(|(kind, tiers)| format!("{}: {tiers}", kind.as_str()))
        .collect();
    tracing::info!(
        events_read = stats.read,
        events_processed = stats.processed,
        events_rejected = stats.rejected_total(),
        unknown_type = stats.unknown_type,
        late = stats.late,
        duplicate = stats.duplicate,
        rejected_by_reason = %by_reason(stats),
        opportunities = stats.opportunities_total(),
        opportunities_by_kind = %by_kind.join("; "),
        shadow_opportunities = stats.shadow,
        suppressed_by_gate = %by_gate(stats),
        in_cooldown = stats.cooldown,
        tracked_accounts,
        "summary"
    );
}

fn by_reason(stats: &Stats) -> String {
    pairs(
        RejectReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), stats.rejected(*r))),
    )
}

fn by_tier(stats: &Stats, kind: Kind) -> String {
    pairs(
        Tier::ALL
            .iter()
            .map(|t| (t.as_str().to_owned(), stats.opportunities(kind, *t))),
    )
}

fn by_gate(stats: &Stats) -> String {
    pairs(
        Gate::ALL
            .iter()
            .map(|g| (g.as_str().to_owned(), stats.suppressed(*g))),
    )
}

pub fn render(stats: &Stats, tracked_accounts: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "events: read={} processed={} rejected={} unknown_type={} late={} duplicate={}",
        stats.read,
        stats.processed,
        stats.rejected_total(),
        stats.unknown_type,
        stats.late,
        stats.duplicate
    );
    let _ = writeln!(out, "rejected by reason: {}", by_reason(stats));
    let _ = writeln!(out, "opportunities: {}", stats.opportunities_total());
    if stats.shadow > 0 {
        let _ = writeln!(
            out,
            "shadow opportunities (playbooks in shadow mode, delivered nowhere): {}",
            stats.shadow
        );
    }
    for kind in Kind::ALL {
        let line = by_tier(stats, kind);
        if line != "none" {
            let _ = writeln!(out, "  {}: {line}", kind.as_str());
        }
    }
    let _ = writeln!(out, "suppressed by gate: {}", by_gate(stats));
    let _ = writeln!(out, "in cooldown: {}", stats.cooldown);
    let _ = writeln!(out, "tracked accounts: {tracked_accounts}");
    out
}
