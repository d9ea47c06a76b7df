//! A source's records read from a file (docs/events.md#records-in-a-file), for `radar
//! map`, `radar replay --source` and `radar backtest --source`: one JSON value per line
//! (`json`), one base64 record value per line (`base64`), or one Kafka record per line
//! with its key and headers (`records`, radar-ingest's record lines).
//!
//! Replay and backtest read a source's records as Radar's envelope lines
//! ([`ToEnvelope`]), written exactly as the live pipeline writes them to its
//! repartition topic: so replay equals the live pipeline for mapped events too.

use std::collections::BTreeMap;
use std::io::{self, BufRead, Read};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use radar_ingest::record_line::OwnedRecord;
use radar_ingest::spec::{Format, Framing};
use radar_ingest::{Schema, Schemas};

use super::Ingest;
use super::registry::Fetched;

/// How a file writes its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Form {
    /// One JSON value per line.
    Json,
    /// One record value per line, in base64.
    Base64,
    /// One Kafka record per line: `{"key", "headers", "value"}`, bytes in base64.
    Records,
}

impl Form {
    /// JSON without framing is read as JSON lines; anything binary as base64.
    pub fn usual(ingest: &Ingest) -> Form {
        let spec = ingest.source.spec();
        if spec.format == Format::Json && spec.framing == Framing::None {
            Form::Json
        } else {
            Form::Base64
        }
    }

    /// One line as a record.
    pub fn read(self, line: &[u8]) -> Result<OwnedRecord, String> {
        match self {
            Form::Json => Ok(OwnedRecord {
                value: line.to_vec(),
                ..OwnedRecord::default()
            }),
            Form::Base64 => STANDARD
                .decode(line)
                .map(|value| OwnedRecord {
                    value,
                    ..OwnedRecord::default()
                })
                .map_err(|e| format!("not base64: {e}")),
            Form::Records => std::str::from_utf8(line)
                .map_err(|e| e.to_string())
                .and_then(|line| OwnedRecord::parse(line).map_err(|e| e.to_string())),
        }
    }
}

/// Makes sure the schema a record needs is known: from the registry if the schema
/// files did not have it (a few tries), else settled as missing.
pub fn settle_schema(ingest: &Ingest, schemas: &mut Schemas, value: &[u8]) -> Result<(), String> {
    let Some(id) = ingest.source.schema_id(value) else {
        return Ok(());
    };
    if schemas.knows(id) {
        return Ok(());
    }
    let Some(registry) = &ingest.registry else {
        schemas.insert(id, Schema::Missing);
        return Ok(());
    };
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500 << attempt));
        }
        match registry.fetch(id) {
            Ok(Fetched::Missing) => {
                schemas.insert(id, Schema::Missing);
                return Ok(());
            }
            Ok(Fetched::Found { schema, .. }) => {
                // As the pipeline does: a schema the source cannot read makes its records
                // `unknown_schema`, not the whole run fail.
                let compiled = ingest.source.compile_schema(&schema).unwrap_or_else(|e| {
                    tracing::warn!(source = ingest.source.name(), schema_id = id, error = %e, "schema unusable");
                    Schema::Missing
                });
                schemas.insert(id, compiled);
                return Ok(());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

/// A source's records, read as Radar's envelope lines; what cannot be mapped is counted
/// by reason and left out (the pipeline dead-letters it).
#[derive(Debug)]
pub struct ToEnvelope<R> {
    ingest: Arc<Ingest>,
    schemas: Schemas,
    form: Form,
    input: R,
    line: Vec<u8>,
    out: Vec<u8>,
    at: usize,
    /// Records left out, by reason.
    pub rejected: BTreeMap<&'static str, u64>,
}

impl<R: BufRead> ToEnvelope<R> {
    pub fn new(ingest: Arc<Ingest>, form: Form, input: R) -> Self {
        ToEnvelope {
            schemas: ingest.schemas.clone(),
            ingest,
            form,
            input,
            line: Vec::new(),
            out: Vec::new(),
            at: 0,
            rejected: BTreeMap::new(),
        }
    }

    /// Maps input lines until one gives an envelope line (in `out`) or the input ends.
    fn refill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.at = 0;
        while self.out.is_empty() {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                return Ok(());
            }
            let line = self.line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let record = match self.form.read(line) {
                Ok(record) => record,
                Err(_) => {
                    *self.rejected.entry("bad_format").or_default() += 1;
                    continue;
                }
            };
            settle_schema(&self.ingest, &mut self.schemas, &record.value)
                .map_err(io::Error::other)?;
            let headers = record.header_refs();
            let raw = record.raw(&headers);
            match self.ingest.source.map(&self.schemas, &raw) {
                Ok((parts, _)) => {
                    self.out = radar_ingest::envelope::to_json(&parts);
                    self.out.push(b'\n');
                }
                Err(rejection) => {
                    *self.rejected.entry(rejection.reason.as_str()).or_default() += 1;
                }
            }
        }
        Ok(())
    }
}

impl<R: BufRead> Read for ToEnvelope<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for ToEnvelope<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at >= self.out.len() {
            self.refill()?;
        }
        Ok(&self.out[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at = (self.at + amount).min(self.out.len());
    }
}
