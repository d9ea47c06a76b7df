//! `radar replay`: runs a file of events (JSON lines) through the engine, exactly as the
//! pipeline would for one partition, and writes one JSON line per opportunity.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use radar_core::{Engine, Record, Settings};

/// Lines handed to the engine at once, about what one Kafka poll delivers.
const BATCH: usize = 512;

/// Reads every line of `input`, writes each opportunity to `out`, and returns the engine
/// (for its stats and `--explain`). Blank lines are skipped; only I/O errors fail.
pub fn run(
    settings: Arc<Settings>,
    mut input: impl BufRead,
    mut out: impl Write,
) -> io::Result<Engine> {
    let mut engine = Engine::new(settings);
    let mut buffer = Vec::with_capacity(BATCH * 512);
    let mut lines: Vec<(usize, usize)> = Vec::with_capacity(BATCH);
    let mut opportunities = Vec::new();
    let mut outcomes = Vec::with_capacity(BATCH);
    loop {
        buffer.clear();
        lines.clear();
        while lines.len() < BATCH {
            let start = buffer.len();
            if input.read_until(b'\n', &mut buffer)? == 0 {
                break;
            }
            let len = buffer[start..].trim_ascii_end().len();
            if len == 0 {
                buffer.truncate(start);
            } else {
                lines.push((start, start + len));
            }
        }
        if lines.is_empty() {
            break;
        }
        let records = lines.iter().map(|&(start, end)| Record {
            bytes: &buffer[start..end],
            time: None,
            key: None,
        });
        engine.process_batch(records, &mut opportunities, &mut outcomes);
        outcomes.clear();
        for opportunity in opportunities.drain(..) {
            serde_json::to_writer(&mut out, &opportunity)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(engine)
}
