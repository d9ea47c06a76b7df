//! `radar replay`: runs a file of events (JSON lines) through the engine, exactly as the
//! pipeline would for one partition, and writes one JSON line per opportunity. `radar
//! backtest` streams events through the same loop ([`stream`]), so its numbers describe
//! exactly what replay (and `radar run`) would have sent.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use radar_core::engine::Outcome;
use radar_core::{Engine, Opportunity, Record, Settings};

/// Lines handed to the engine at once, about what one Kafka poll delivers.
const BATCH: usize = 512;

/// One batch as the engine saw it: its lines, each line's outcome (in order), and the
/// opportunities they produced.
#[derive(Debug)]
pub struct Batch<'a> {
    pub lines: &'a [&'a [u8]],
    pub outcomes: &'a [Outcome],
    pub opportunities: &'a [Opportunity],
}

/// Reads every line of `input` through an engine, handing each batch to `each`, and
/// returns the engine (for its stats and `--explain`). Blank lines are skipped; only I/O
/// errors (and `each`'s) fail.
pub fn stream(
    settings: Arc<Settings>,
    mut input: impl BufRead,
    mut each: impl FnMut(&Batch<'_>) -> io::Result<()>,
) -> io::Result<Engine> {
    let mut engine = Engine::new(settings);
    let mut buffer = Vec::with_capacity(BATCH * 512);
    let mut spans: Vec<(usize, usize)> = Vec::with_capacity(BATCH);
    let mut opportunities = Vec::new();
    let mut outcomes = Vec::with_capacity(BATCH);
    loop {
        buffer.clear();
        spans.clear();
        while spans.len() < BATCH {
            let start = buffer.len();
            if input.read_until(b'\n', &mut buffer)? == 0 {
                break;
            }
            let len = buffer[start..].trim_ascii_end().len();
            if len == 0 {
                buffer.truncate(start);
            } else {
                spans.push((start, start + len));
            }
        }
        if spans.is_empty() {
            break;
        }
        let lines: Vec<&[u8]> = spans.iter().map(|&(s, e)| &buffer[s..e]).collect();
        let records = lines.iter().map(|bytes| Record {
            bytes,
            time: None,
            key: None,
        });
        engine.process_batch(records, &mut opportunities, &mut outcomes);
        each(&Batch {
            lines: &lines,
            outcomes: &outcomes,
            opportunities: &opportunities,
        })?;
        outcomes.clear();
        opportunities.clear();
    }
    Ok(engine)
}

/// Reads every line of `input`, writes each opportunity to `out` as a JSON line, and
/// returns the engine.
pub fn run(
    settings: Arc<Settings>,
    input: impl BufRead,
    mut out: impl Write,
) -> io::Result<Engine> {
    let engine = stream(settings, input, |batch| {
        for opportunity in batch.opportunities {
            serde_json::to_writer(&mut out, opportunity)?;
            out.write_all(b"\n")?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(engine)
}
