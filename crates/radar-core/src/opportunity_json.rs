//! Opportunities as JSON: byte for byte what serde_json writes from the derived
//! `Serialize` (a proptest holds them equal), at about a third of its cost. Every emitted
//! opportunity is serialised once on the hot path (the outbox in `radar run`, stdout in
//! `radar replay`), and serde_json spent ~28,000 instructions on each 1.2 KB one, ~1,100 per
//! event in `radar replay` (callgrind): most on escaping field names that never change
//! and on a write call per punctuation mark. Here field names are constants, strings that
//! need no escape are copied as they are, and the rest go through serde_json itself.

use crate::opportunity::Opportunity;
use crate::priority::PartScore;
use crate::scan;
use crate::scoring::BreakdownItem;

/// Room for the usual opportunity, ~1.2 KB with the default config's eleven components,
/// so that [`Opportunity::to_json`] writes it without growing its buffer nine times from
/// empty (a quarter of its cost, counted by callgrind in the pipeline bench).
const CAPACITY: usize = 2048;

impl Opportunity {
    /// The opportunity as a JSON object, as `serde_json::to_vec` gives it.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CAPACITY);
        self.write_json(&mut out);
        out
    }

    /// Appends the opportunity as a JSON object to `out`, as `serde_json::to_writer`
    /// would write it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"opportunity_id\":");
        string(out, &self.opportunity_id);
        out.extend_from_slice(b",\"account_id\":");
        string(out, &self.account_id);
        out.extend_from_slice(b",\"kind\":");
        string(out, self.kind.as_str());
        out.extend_from_slice(b",\"playbook\":");
        string(out, &self.playbook);
        out.extend_from_slice(b",\"score\":");
        number(out, self.score);
        out.extend_from_slice(b",\"tier\":");
        string(out, self.tier.as_str());
        out.extend_from_slice(b",\"breakdown\":[");
        list(out, &self.breakdown, breakdown_item);
        out.extend_from_slice(b"],\"triggered_by\":[");
        list(out, &self.triggered_by, |out, id| string(out, id));
        out.extend_from_slice(b"],\"owner\":");
        string(out, self.owner.as_str());
        out.extend_from_slice(b",\"occurred_at\":");
        string(out, &self.occurred_at);
        let expansion = &self.expansion_score;
        out.extend_from_slice(b",\"expansion_score\":{\"value\":");
        number(out, expansion.value);
        out.extend_from_slice(b",\"estimated_arr\":");
        optional(out, expansion.estimated_arr);
        out.extend_from_slice(b",\"parts\":[");
        list(out, &expansion.parts, part);
        out.extend_from_slice(b"]}");
        if self.shadow {
            out.extend_from_slice(b",\"shadow\":true");
        }
        if let Some(version) = &self.config_version {
            out.extend_from_slice(b",\"config_version\":");
            string(out, version);
        }
        out.push(b'}');
    }
}

fn breakdown_item(out: &mut Vec<u8>, item: &BreakdownItem) {
    out.extend_from_slice(b"{\"component\":");
    string(out, &item.component);
    out.extend_from_slice(b",\"value\":");
    optional(out, item.value);
    out.extend_from_slice(b",\"points\":");
    number(out, item.points);
    out.push(b'}');
}

fn part(out: &mut Vec<u8>, part: &PartScore) {
    out.extend_from_slice(b"{\"part\":");
    string(out, &part.part);
    out.extend_from_slice(b",\"input\":");
    optional(out, part.input);
    out.extend_from_slice(b",\"score\":");
    number(out, part.score);
    out.extend_from_slice(b",\"weight\":");
    number(out, part.weight);
    out.push(b'}');
}

/// The items, comma-separated.
fn list<T>(out: &mut Vec<u8>, items: &[T], mut each: impl FnMut(&mut Vec<u8>, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(out, item);
    }
}

/// A JSON string. serde_json escapes only `"`, `\` and control characters below 0x20;
/// a string without them (ids, names, times: nearly all) is copied between quotes.
fn string(out: &mut Vec<u8>, s: &str) {
    if scan::special(s.as_bytes()).is_none() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's errors come from its writer, and a Vec's writes cannot fail.
        let written = serde_json::to_writer(&mut *out, s);
        debug_assert!(written.is_ok());
    }
}

/// A number as serde_json writes an `f64`: shortest round-trip form (zmij, serde_json's
/// own formatter), `null` when not finite.
fn number(out: &mut Vec<u8>, x: f64) {
    if x.is_finite() {
        out.extend_from_slice(zmij::Buffer::new().format_finite(x).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn optional(out: &mut Vec<u8>, x: Option<f64>) {
    match x {
        Some(x) => number(out, x),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use compact_str::CompactString;
    use proptest::prelude::*;

    use super::*;
    use crate::opportunity::{Kind, Owner};
    use crate::priority::ExpansionScore;
    use crate::scoring::Tier;

    /// Any string: control characters, quotes, backslashes and non-ASCII included, in
    /// short strings and in strings long enough for them to fall past the first sixteen
    /// bytes (where `scan::special` goes from SSE2 blocks to words, then bytes).
    fn text() -> impl Strategy<Value = CompactString> {
        prop_oneof![
            any::<String>(),
            "[a-z_\"\\\\\u{0}-\u{1f}\u{7f}é€😀]{0,12}",
            "[a-z_]{14,30}[\"\\\\\u{0}-\u{1f}]?[a-z_\u{7f}é]{0,10}",
        ]
        .prop_map(CompactString::from)
    }

    /// Any f64, with the special values and two-decimal ones drawn often.
    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|c| c as f64 / 100.0),
            prop::sample::select(vec![
                0.0,
                -0.0,
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::MIN_POSITIVE,
                f64::MAX,
                1e21,
                1e-7,
            ]),
        ]
    }

    fn opportunity() -> impl Strategy<Value = Opportunity> {
        let item =
            (text(), prop::option::of(float()), float()).prop_map(|(component, value, points)| {
                BreakdownItem {
                    component,
                    value,
                    points,
                }
            });
        let part = (text(), prop::option::of(float()), float(), float()).prop_map(
            |(part, input, score, weight)| PartScore {
                part,
                input,
                score,
                weight,
            },
        );
        let expansion = (
            float(),
            prop::option::of(float()),
            prop::collection::vec(part, 0..5),
        )
            .prop_map(|(value, estimated_arr, parts)| ExpansionScore {
                value,
                estimated_arr,
                parts,
            });
        (
            (
                text(),
                text(),
                prop::sample::select(Kind::ALL.to_vec()),
                text(),
            ),
            (float(), prop::sample::select(Tier::ALL.to_vec())),
            prop::collection::vec(item, 0..12),
            prop::collection::vec(text(), 0..3),
            (prop::sample::select(vec![Owner::Cs, Owner::Sales]), text()),
            expansion,
            (any::<bool>(), prop::option::of(text())),
        )
            .prop_map(
                |(
                    (opportunity_id, account_id, kind, playbook),
                    (score, tier),
                    breakdown,
                    triggered_by,
                    (owner, occurred_at),
                    expansion_score,
                    (shadow, config_version),
                )| Opportunity {
                    opportunity_id,
                    account_id,
                    kind,
                    playbook,
                    score,
                    tier,
                    breakdown,
                    triggered_by,
                    owner,
                    occurred_at,
                    expansion_score,
                    shadow,
                    config_version,
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_json_is_what_serde_json_writes(opportunity in opportunity()) {
            let expected = serde_json::to_string(&opportunity).unwrap();
            let written = String::from_utf8(opportunity.to_json()).unwrap();
            prop_assert_eq!(written, expected);
        }
    }
}
