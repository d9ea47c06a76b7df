//! `radar replay`: runs a file of events (JSON lines) through the engine, exactly as the
//! pipeline would for one partition, and writes one JSON line per opportunity. `radar
//! backtest` streams events through the same loop ([`stream`]), so its numbers describe
//! exactly what replay (and `radar run`) would have sent.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use radar_core::engine::EventOutcome;
use radar_core::{Engine, EventRecord, Opportunity, Settings};

/// Lines handed to the engine at once, about what one Kafka poll delivers.
const BATCH: usize = 512;

/// One batch as the engine saw it: its lines, each line's outcome (in order), and the
/// opportunities they produced.
#[derive(Debug)]
pub struct Batch<'a> {
    pub lines: &'a [&'a [u8]],
    pub outcomes: &'a [EventOutcome],
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
            if read_line(&mut input, &mut buffer)? == 0 {
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
        let records = lines.iter().map(|bytes| EventRecord {
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

/// Appends the next line of `input`, with its `\n` if it has one, to `buffer`; `Ok(0)`
/// at the end. `BufRead::read_until` with memchr's vectorised search for the newline
/// instead of std's word-at-a-time one, which took ~320 instructions of a 216-byte event
/// (callgrind, `radar replay`).
fn read_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> io::Result<usize> {
    let mut read = 0;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let (taken, ended) = match memchr::memchr(b'\n', available) {
            Some(newline) => (newline + 1, true),
            None => (available.len(), available.is_empty()),
        };
        buffer.extend_from_slice(&available[..taken]);
        input.consume(taken);
        read += taken;
        if ended {
            return Ok(read);
        }
    }
}

/// Reads every line of `input`, writes each opportunity to `out` as a JSON line, and
/// returns the engine.
pub fn run(
    settings: Arc<Settings>,
    input: impl BufRead,
    mut out: impl Write,
) -> io::Result<Engine> {
    let mut line = Vec::new();
    let engine = stream(settings, input, |batch| {
        for opportunity in batch.opportunities {
            line.clear();
            opportunity.write_json(&mut line);
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    })?;
    out.flush()?;
    Ok(engine)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines longer than the reader's buffer, a last line without its newline, and an
    /// empty line come out as `read_until` gives them.
    #[test]
    fn lines_are_read_across_buffer_refills() {
        let text = b"first line\n\nsecond, longer than the buffer\nlast";
        for capacity in [1, 3, 7, 64] {
            let mut input = io::BufReader::with_capacity(capacity, &text[..]);
            let mut expected = io::BufReader::new(&text[..]);
            loop {
                let (mut line, mut want) = (Vec::new(), Vec::new());
                let read = read_line(&mut input, &mut line).unwrap();
                assert_eq!(read, expected.read_until(b'\n', &mut want).unwrap());
                assert_eq!(line, want, "buffer of {capacity}");
                if read == 0 {
                    break;
                }
            }
        }
    }

    /// A read interrupted by a signal is retried; any other error is returned, as
    /// `read_until` does.
    #[test]
    fn an_interrupted_read_is_retried_and_an_error_returned() {
        struct Flaky(Vec<io::Result<&'static [u8]>>);
        impl io::Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.pop() {
                    None => Ok(0),
                    Some(Ok(bytes)) => {
                        buf[..bytes.len()].copy_from_slice(bytes);
                        Ok(bytes.len())
                    }
                    Some(Err(e)) => Err(e),
                }
            }
        }
        let broken = || io::Error::new(io::ErrorKind::BrokenPipe, "gone");
        let interrupted = || io::Error::from(io::ErrorKind::Interrupted);
        // Read from the end: "ab", interrupted, "c\nd", then broken.
        let mut input = io::BufReader::new(Flaky(vec![
            Err(broken()),
            Ok(b"c\nd"),
            Err(interrupted()),
            Ok(b"ab"),
        ]));
        let mut line = Vec::new();
        assert_eq!(read_line(&mut input, &mut line).unwrap(), 4);
        assert_eq!(line, b"abc\n");
        line.clear();
        let error = read_line(&mut input, &mut line).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
        assert_eq!(line, b"d", "what was read before the error is kept");
    }
}
