//! Instructions per event, counted by callgrind: repeatable to the instruction for the
//! same binary and input whatever else the machine does, unlike wall-clock rates on
//! shared machines. `scripts/bench-instructions` runs this under
//! `valgrind --tool=callgrind --toggle-collect=…` so only the measured function counts,
//! divides by the events, and compares with the figures committed in
//! `benches/instructions.json`.
//!
//! The input is the issue's: the first 100,000 lines of `radar generate --accounts 100000
//! --events 1000000 --seed 7`, generated in memory before anything is measured.
//!
//! - `decode`: the event decoder alone (envelope; properties for the types that read
//!   them), every line;
//! - `engine`: `Engine::process_batch` in batches of 512: decode, state, windows, the
//!   score, playbooks, gates, opportunities built;
//! - `replay`: the engine plus each opportunity serialised as a JSON line, as `radar
//!   replay` writes them.
//!
//! Run by hand: `cargo bench -p radar-core --bench instructions -- engine` (prints the
//! events and opportunities; meaningless timings without callgrind).

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;

use radar_core::engine::EventOutcome;
use radar_core::{Engine, EventRecord, Settings};

#[path = "../fuzz/settings.rs"]
mod settings;

/// Lines measured, and how they are generated.
pub const EVENTS: usize = 100_000;
const BATCH: usize = 512;

fn lines() -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 100_000,
        events: 1_000_000,
        seed: 7,
        ..Default::default()
    };
    radar_gen::Generator::new(opts)
        .expect("valid generator options")
        .take(EVENTS)
        .collect()
}

#[inline(never)]
fn measured_decode(lines: &[String], settings: &Settings) -> usize {
    let mut accepted = 0;
    for line in lines {
        if let Ok(event) =
            radar_core::event::decode(line.as_bytes(), None, settings.max_future_skew)
        {
            accepted += usize::from(black_box(event.properties()).is_ok());
        }
    }
    accepted
}

#[inline(never)]
fn measured_engine(lines: &[String], settings: Arc<Settings>, serialise: bool) -> (usize, usize) {
    let mut engine = Engine::new(settings);
    let mut out = Vec::new();
    let mut outcomes: Vec<EventOutcome> = Vec::with_capacity(BATCH);
    // As `radar replay` writes them: through a 64 KiB `BufWriter` (a bare `io::sink()`
    // let the compiler drop most of the writing, and counted ~400 fewer per event).
    let mut sink = std::io::BufWriter::with_capacity(1 << 16, std::io::sink());
    let mut line = Vec::new();
    let mut opportunities = 0;
    for batch in lines.chunks(BATCH) {
        let records = batch.iter().map(|line| EventRecord {
            bytes: line.as_bytes(),
            time: None,
            key: None,
        });
        engine.process_batch(records, &mut out, &mut outcomes);
        opportunities += out.len();
        if serialise {
            for opportunity in &out {
                line.clear();
                opportunity.write_json(&mut line);
                line.push(b'\n');
                let _ = sink.write_all(&line);
            }
        }
        black_box(&outcomes);
        outcomes.clear();
        out.clear();
    }
    (engine.stats().processed as usize, opportunities)
}

fn main() {
    let mode = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_default();
    let settings = settings::default();
    let lines = lines();
    match mode.as_str() {
        "decode" => {
            let accepted = measured_decode(&lines, &settings);
            println!("decode: {} lines, {accepted} accepted", lines.len());
        }
        "engine" | "replay" => {
            let (processed, opportunities) = measured_engine(&lines, settings, mode == "replay");
            println!(
                "{mode}: {} lines, {processed} processed, {opportunities} opportunities",
                lines.len()
            );
        }
        // `cargo bench` runs every bench target with only `--bench`: nothing to measure.
        other => println!("instructions: give a mode: decode, engine or replay (not {other:?})"),
    }
}
