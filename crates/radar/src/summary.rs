//! The summary `radar replay` prints on stderr.

use std::fmt::Write;

use radar_core::Stats;
use radar_core::event::RejectReason;
use radar_core::gates::Gate;
use radar_core::opportunity::Kind;
use radar_core::scoring::Tier;

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
    let _ = writeln!(
        out,
        "rejected by reason: {}",
        pairs(
            RejectReason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), stats.rejected(*r)))
        )
    );
    let _ = writeln!(out, "opportunities: {}", stats.opportunities_total());
    if stats.shadow > 0 {
        let _ = writeln!(
            out,
            "shadow opportunities (playbooks in shadow mode, delivered nowhere): {}",
            stats.shadow
        );
    }
    for kind in Kind::ALL {
        let line = pairs(
            Tier::ALL
                .iter()
                .map(|t| (t.as_str().to_owned(), stats.opportunities(kind, *t))),
        );
        if line != "none" {
            let _ = writeln!(out, "  {}: {line}", kind.as_str());
        }
    }
    let _ = writeln!(
        out,
        "suppressed by gate: {}",
        pairs(
            Gate::ALL
                .iter()
                .map(|g| (g.as_str().to_owned(), stats.suppressed(*g)))
        )
    );
    let _ = writeln!(out, "in cooldown: {}", stats.cooldown);
    let _ = writeln!(out, "tracked accounts: {tracked_accounts}");
    out
}
