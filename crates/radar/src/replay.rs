//! `radar replay`: runs a file of events (JSON lines) through the engine, exactly as the
//! pipeline would for one partition, and writes one JSON line per opportunity.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use radar_core::{Engine, Settings};

/// Reads every line of `input`, writes each opportunity to `out`, and returns the engine
/// (for its stats and `--explain`). Blank lines are skipped; only I/O errors fail.
pub fn run(
    settings: Arc<Settings>,
    mut input: impl BufRead,
    mut out: impl Write,
) -> io::Result<Engine> {
    let mut engine = Engine::new(settings);
    let mut line = Vec::with_capacity(1024);
    let mut opportunities = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let trimmed = line.trim_ascii_end();
        if trimmed.is_empty() {
            continue;
        }
        engine.process(trimmed, None, &mut opportunities);
        for opportunity in opportunities.drain(..) {
            serde_json::to_writer(&mut out, &opportunity)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(engine)
}
