//! Decoding the same 100,000 generated lines (the first of `radar generate --accounts
//! 100000 --events 1000000 --seed 7`, as in `benches/instructions.rs`) with Radar's
//! decoder and with serde_json, sonic-rs and simd-json, each counted by callgrind in its
//! `measured_*` function (`scripts/bench-json-parsers`).
//!
//! The general parsers get the easier job: the envelope and the known properties in one
//! typed pass with borrowed strings, and nothing checked beyond JSON and the types.
//! Radar's decoder also parses the timestamps and dates, checks lengths and ranges, and
//! keeps serde_json's exact rejection reasons for any line it does not take itself.

use std::hint::black_box;

use serde::Deserialize;

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    event_id: Option<&'a str>,
    #[serde(borrow, rename = "type")]
    event_type: Option<&'a str>,
    #[serde(borrow)]
    account_id: Option<&'a str>,
    #[serde(borrow)]
    timestamp: Option<&'a str>,
    #[serde(borrow)]
    user_id: Option<&'a str>,
    #[serde(borrow)]
    received_at: Option<&'a str>,
    #[serde(borrow)]
    properties: Option<Properties<'a>>,
}

#[derive(Deserialize)]
struct Properties<'a> {
    seats_used: Option<u32>,
    seat_limit: Option<u32>,
    api_calls: Option<u64>,
    api_limit: Option<u64>,
    #[serde(borrow)]
    plan: Option<&'a str>,
    arr: Option<f64>,
    #[serde(borrow)]
    contract_end: Option<&'a str>,
    #[serde(borrow)]
    customer_since: Option<&'a str>,
    active_users_1d: Option<u32>,
    active_users_30d: Option<u32>,
    api_calls_period: Option<u64>,
    features_adopted: Option<u32>,
    health_score: Option<f64>,
    churn_risk: Option<bool>,
    score: Option<f64>,
}

/// Reads every field, so none is parsed for nothing.
fn fields(line: &Line<'_>) -> usize {
    let text = |t: Option<&str>| t.map_or(0, str::len);
    let envelope = [
        line.event_id,
        line.event_type,
        line.account_id,
        line.timestamp,
        line.user_id,
        line.received_at,
    ]
    .map(text)
    .iter()
    .sum::<usize>();
    let Some(p) = &line.properties else {
        return envelope;
    };
    let small = [
        p.seats_used,
        p.seat_limit,
        p.active_users_1d,
        p.active_users_30d,
        p.features_adopted,
    ]
    .iter()
    .flatten()
    .count();
    let large = [p.api_calls, p.api_limit, p.api_calls_period]
        .iter()
        .flatten()
        .count();
    let real = [p.arr, p.health_score, p.score].iter().flatten().count();
    let texts = text(p.plan) + text(p.contract_end) + text(p.customer_since);
    envelope + small + large + real + texts + usize::from(p.churn_risk.is_some())
}

#[inline(never)]
fn measured_radar(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| {
            radar_core::event::decode(line.as_bytes(), None, radar_core::time::HOUR)
                .is_ok_and(|event| black_box(event.properties()).is_ok())
        })
        .count()
}

#[inline(never)]
fn measured_serde_json(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| {
            serde_json::from_slice::<Line<'_>>(line.as_bytes())
                .is_ok_and(|l| black_box(fields(&l)) > 0)
        })
        .count()
}

#[inline(never)]
fn measured_sonic_rs(lines: &[String]) -> usize {
    lines
        .iter()
        .filter(|line| {
            sonic_rs::from_slice::<Line<'_>>(line.as_bytes())
                .is_ok_and(|l| black_box(fields(&l)) > 0)
        })
        .count()
}

/// simd-json parses in place: each line is first copied into a reused buffer.
#[inline(never)]
fn measured_simd_json(lines: &[String]) -> usize {
    let mut buffer = Vec::new();
    let mut accepted = 0;
    for line in lines {
        buffer.clear();
        buffer.extend_from_slice(line.as_bytes());
        if simd_json::serde::from_slice::<Line<'_>>(&mut buffer)
            .is_ok_and(|l| black_box(fields(&l)) > 0)
        {
            accepted += 1;
        }
    }
    accepted
}

fn main() {
    let options = radar_gen::Options {
        accounts: 100_000,
        events: 1_000_000,
        seed: 7,
        ..Default::default()
    };
    let lines: Vec<String> = radar_gen::Generator::new(options)
        .expect("valid generator options")
        .take(100_000)
        .collect();
    let parser = std::env::args().nth(1).unwrap_or_default();
    let accepted = match parser.as_str() {
        "radar" => measured_radar(&lines),
        "serde_json" => measured_serde_json(&lines),
        "sonic_rs" => measured_sonic_rs(&lines),
        "simd_json" => measured_simd_json(&lines),
        other => {
            eprintln!("json-parsers: radar, serde_json, sonic_rs or simd_json, not {other:?}");
            std::process::exit(2);
        }
    };
    println!("{parser}: {accepted} of {} lines accepted", lines.len());
}
