//! `radar map`: what each record of a source becomes, before going live
//! (docs/events.md#see-the-mapping). One JSON line per record on stdout — the Radar event
//! it becomes, or why it is refused — then the counts on stderr: events by type,
//! refusals by reason, their event names no `types` entry maps, and the mapped paths no
//! record had.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};

use radar_core::Settings;
use radar_core::event::assemble;
use radar_ingest::TypeFrom;
use serde_json::json;

use crate::ingest::Ingest;
use crate::ingest::input::{Form, settle_schema};

/// What `radar map` counted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MapReport {
    pub records: u64,
    pub by_type: BTreeMap<String, u64>,
    pub rejected: BTreeMap<&'static str, u64>,
    /// Their event names that are not Radar types and that no `types` entry maps.
    pub unmapped: BTreeMap<String, u64>,
    /// Mapped paths no record had a value at.
    pub never_matched: Vec<String>,
}

/// Maps every record of `input`, writing one line per record to `out`.
pub fn run(
    ingest: &Ingest,
    settings: &Settings,
    form: Form,
    input: impl BufRead,
    mut out: impl Write,
) -> anyhow::Result<MapReport> {
    let mut schemas = ingest.schemas.clone();
    let mut report = MapReport::default();
    let mut matched: BTreeSet<String> = BTreeSet::new();
    for (n, line) in input.split(b'\n').enumerate() {
        let line = line?;
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        report.records += 1;
        let at = n + 1;
        let record = match form.read(line) {
            Ok(record) => record,
            Err(detail) => {
                *report.rejected.entry("bad_format").or_default() += 1;
                writeln!(
                    out,
                    "{}",
                    json!({"line": at, "rejected": "bad_format", "detail": detail})
                )?;
                continue;
            }
        };
        settle_schema(ingest, &mut schemas, &record.value).map_err(anyhow::Error::msg)?;
        let headers = record.header_refs();
        let raw = record.raw(&headers);
        matched.extend(
            ingest
                .source
                .filled(&schemas, &raw)
                .into_iter()
                .map(str::to_owned),
        );
        let mapped = ingest.source.map(&schemas, &raw).and_then(|(parts, from)| {
            assemble(parts.clone(), None, settings.max_future_skew).map(|_| (parts, from))
        });
        let (parts, from) = match mapped {
            Ok(mapped) => mapped,
            Err(rejection) => {
                let reason = rejection.reason.as_str();
                *report.rejected.entry(reason).or_default() += 1;
                writeln!(
                    out,
                    "{}",
                    json!({"line": at, "rejected": reason, "detail": rejection.detail})
                )?;
                continue;
            }
        };
        let event: serde_json::Value =
            serde_json::from_slice(&radar_ingest::envelope::to_json(&parts))?;
        if from == TypeFrom::Name && settings.types.lookup(&parts.event_type).is_none() {
            *report
                .unmapped
                .entry(parts.event_type.to_string())
                .or_default() += 1;
            writeln!(
                out,
                "{}",
                json!({"line": at, "unmapped_type": parts.event_type, "event": event})
            )?;
            continue;
        }
        *report
            .by_type
            .entry(parts.event_type.to_string())
            .or_default() += 1;
        writeln!(out, "{}", json!({"line": at, "event": event}))?;
    }
    out.flush()?;
    let mut paths: BTreeSet<&str> = BTreeSet::new();
    for (_, slot) in ingest.source.mapping().paths() {
        paths.insert(ingest.source.trie().path(*slot));
    }
    report.never_matched = paths
        .into_iter()
        .filter(|path| !matched.contains(*path))
        .map(str::to_owned)
        .collect();
    Ok(report)
}

impl MapReport {
    /// The counts as text, for stderr.
    pub fn text(&self) -> String {
        let list = |counts: &BTreeMap<String, u64>| {
            counts
                .iter()
                .map(|(name, n)| format!("{name:?} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rejected: BTreeMap<String, u64> = self
            .rejected
            .iter()
            .map(|(reason, n)| ((*reason).to_owned(), *n))
            .collect();
        let mut text = format!("{} records\n", self.records);
        text += &format!("  events by type: {}\n", or_none(list(&self.by_type)));
        text += &format!("  rejected by reason: {}\n", or_none(list(&rejected)));
        text += &format!(
            "  unmapped event names (counted as unknown_type): {}\n",
            or_none(list(&self.unmapped))
        );
        text += &format!(
            "  mapped paths no record had: {}\n",
            or_none(self.never_matched.join(", "))
        );
        text
    }
}

fn or_none(text: String) -> String {
    if text.is_empty() { "none".into() } else { text }
}
