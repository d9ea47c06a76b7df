//! Kafka records written one per line in a file, for `radar map`, `radar replay` and
//! the tests: `{"key": <base64 or null>, "headers": [[<name>, <base64>], ...],
//! "value": <base64>}` (docs/events.md#records-in-a-file). Keys, headers and values are
//! bytes, so they are base64; this is how a binary record (Avro, Protobuf) or a
//! CloudEvent in binary mode is kept in a text file.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::source::RawRecord;

/// One record read from a line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnedRecord {
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub value: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    value: String,
}

/// A line that is not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a record line: {0}")]
pub struct RecordLineError(String);

impl OwnedRecord {
    /// Reads one line.
    pub fn parse(line: &str) -> Result<OwnedRecord, RecordLineError> {
        let line: Line = serde_json::from_str(line).map_err(|e| RecordLineError(e.to_string()))?;
        let bytes = |field: &str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| RecordLineError(format!("{field} is not base64: {e}")))
        };
        Ok(OwnedRecord {
            key: line.key.map(|k| bytes("key", &k)).transpose()?,
            headers: line
                .headers
                .iter()
                .map(|(name, value)| Ok((name.clone(), bytes("a header", value)?)))
                .collect::<Result<_, RecordLineError>>()?,
            value: bytes("value", &line.value)?,
        })
    }

    /// The record's headers as [`RawRecord`] borrows them.
    pub fn header_refs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_slice()))
            .collect()
    }

    /// The record as a source reads it; `headers` from [`OwnedRecord::header_refs`].
    pub fn raw<'a>(&'a self, headers: &'a [(&'a str, &'a [u8])]) -> RawRecord<'a> {
        RawRecord {
            value: &self.value,
            key: self.key.as_deref(),
            headers,
            time: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_gives_its_key_headers_and_value() {
        let record = OwnedRecord::parse(
            r#"{"key":"YWNtZQ==","headers":[["ce_id","MQ=="]],"value":"AAAAAAE="}"#,
        )
        .unwrap();
        assert_eq!(record.key.as_deref(), Some(&b"acme"[..]));
        assert_eq!(record.header_refs(), vec![("ce_id", &b"1"[..])]);
        assert_eq!(record.value, [0, 0, 0, 0, 1]);
        assert!(OwnedRecord::parse(r#"{"value":"%%"}"#).is_err());
        assert!(OwnedRecord::parse(r#"{"value":"","extra":1}"#).is_err());
    }
}
