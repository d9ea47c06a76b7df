//! Dead letters: each rejected record goes to the dead-letter topic with its key, its
//! bytes and headers saying why and where from (`radar.reason`, `radar.detail`,
//! `radar.source` = topic/partition/offset).
//!
//! A dead letter must always fit, or one record would stop the pipeline at every start
//! (its offset never moves past it). So key, payload and headers are sized together to
//! the producer's `message.max.bytes`: the key is cut to [`MAX_KEY`] bytes, the detail to
//! [`MAX_DETAIL`], and the payload to what room is left, each cut said in the headers
//! (`radar.truncated`, `radar.original_sizes`). Should the broker still refuse a letter
//! (a topic whose `max.message.bytes` is lower), the source sends its
//! [`coordinates_only`] instead: the reason and where the record is, which Kafka still
//! holds, without its bytes (keyed as the record was, cut to [`MAX_KEY`]). A batch of
//! letters refused together (a topic limit below the producer's) is refused letter by
//! letter: set `kafka.client.message_max_bytes` to the dead-letter topic's limit.

use std::sync::atomic::AtomicU64;

/// librdkafka's default `message.max.bytes`.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;
/// Room kept under the limit for the record batch's and the record's own framing.
const FRAMING: usize = 1_024;
/// The most of a key kept: enough for any account id (ids are ≤ 128 bytes), while a
/// hostile 100 KB key cannot crowd the payload out.
pub const MAX_KEY: usize = 1_024;
/// The most of a rejection's detail kept.
pub const MAX_DETAIL: usize = 1_024;

/// Where a rejected record is and why it was rejected: what its dead letter says even
/// when its bytes cannot be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's key, cut to [`MAX_KEY`] bytes: the key of its letters too, so a
    /// compacted dead-letter topic takes them.
    pub key: Vec<u8>,
    pub reason: &'static str,
    pub detail: String,
}

impl Origin {
    /// `topic/partition/offset`, the `radar.source` header.
    pub fn source(&self) -> String {
        format!("{}/{}/{}", self.topic, self.partition, self.offset)
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("radar.reason", self.reason.to_owned()),
            (
                "radar.detail",
                cut_text(&self.detail, MAX_DETAIL).to_owned(),
            ),
            ("radar.source", self.source()),
        ]
    }
}

/// A dead letter as it is produced.
#[derive(Debug, PartialEq, Eq)]
pub struct Letter<'a> {
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub headers: Vec<(&'static str, String)>,
    /// Whether the key or the payload was cut to fit.
    pub truncated: bool,
}

impl Letter<'_> {
    /// Bytes the letter puts in a record: key, payload, header names and values.
    pub fn size(&self) -> usize {
        self.key.map_or(0, <[u8]>::len)
            + self.payload.len()
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }
}

/// The dead letter of a rejected record, within `limit` bytes (the producer's
/// `message.max.bytes`) with room to spare for the record's framing.
pub fn letter<'a>(
    origin: &Origin,
    key: Option<&'a [u8]>,
    payload: &'a [u8],
    limit: usize,
) -> Letter<'a> {
    let mut headers = origin.headers();
    let kept_key = key.map(cut_key);
    let key_cut = kept_key.map(<[u8]>::len) != key.map(<[u8]>::len);
    // The truncation headers are reserved before measuring the room, so the payload's
    // share does not depend on whether they come.
    const TRUNCATION_HEADERS: usize = 128;
    let taken = headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum::<usize>()
        + kept_key.map_or(0, <[u8]>::len)
        + TRUNCATION_HEADERS;
    let room = limit.saturating_sub(FRAMING + taken);
    let kept_payload = &payload[..payload.len().min(room)];
    let payload_cut = kept_payload.len() < payload.len();
    if key_cut || payload_cut {
        let what = match (key_cut, payload_cut) {
            (true, true) => "key,payload",
            (true, false) => "key",
            _ => "payload",
        };
        headers.push(("radar.truncated", what.to_owned()));
        headers.push((
            "radar.original_sizes",
            format!(
                "key={} payload={}",
                key.map_or(0, <[u8]>::len),
                payload.len()
            ),
        ));
    }
    Letter {
        key: kept_key,
        payload: kept_payload,
        headers,
        truncated: key_cut || payload_cut,
    }
}

/// The headers of the letter sent without key or payload when the broker refused the
/// whole one: the reason, where the record is, and why its bytes are missing.
pub fn coordinates_only(origin: &Origin, refused: &str) -> Vec<(&'static str, String)> {
    let mut headers = origin.headers();
    headers.push((
        "radar.payload_dropped",
        cut_text(
            &format!("the broker refused the dead letter with the record's bytes: {refused}"),
            MAX_DETAIL,
        )
        .to_owned(),
    ));
    headers
}

/// A key cut to at most [`MAX_KEY`] bytes.
pub fn cut_key(key: &[u8]) -> &[u8] {
    &key[..key.len().min(MAX_KEY)]
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut_text(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Dead letters that could not be sent whole, since the source started.
#[derive(Debug, Default)]
pub struct LetterCounts {
    /// Sent with the key or payload cut to fit.
    pub truncated: AtomicU64,
    /// Refused by the broker, then sent with the coordinates and reason only.
    pub payload_dropped: AtomicU64,
    /// Refused even without their bytes: only the log names them.
    pub lost: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(detail: &str) -> Origin {
        Origin {
            topic: "events".into(),
            partition: 3,
            offset: 42,
            key: b"acme".to_vec(),
            reason: "invalid_json",
            detail: detail.into(),
        }
    }

    fn header<'h>(letter: &'h [(&str, String)], name: &str) -> Option<&'h str> {
        letter
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_small_record_is_sent_whole() {
        let built = letter(
            &origin("expected value at line 1"),
            Some(b"acme"),
            b"{not json",
            DEFAULT_MESSAGE_MAX_BYTES,
        );
        assert_eq!(
            (built.key, built.payload, built.truncated),
            (Some(&b"acme"[..]), &b"{not json"[..], false)
        );
        assert_eq!(header(&built.headers, "radar.source"), Some("events/3/42"));
        assert_eq!(header(&built.headers, "radar.truncated"), None);
    }

    /// A 100 KB key and a 999 KB value: each under the producer's 1 MB, together over it,
    /// and over every smaller limit.
    #[test]
    fn key_payload_and_headers_fit_together() {
        let key = vec![b'k'; 100_000];
        let payload = vec![b'x'; 999_000];
        let detail = "é".repeat(5_000);
        for limit in [DEFAULT_MESSAGE_MAX_BYTES, 200_000, 10_000] {
            let built = letter(&origin(&detail), Some(&key), &payload, limit);
            assert!(built.truncated);
            assert!(
                built.size() + FRAMING <= limit,
                "{} bytes against {limit}",
                built.size()
            );
            assert_eq!(built.key.map(<[u8]>::len), Some(MAX_KEY));
            assert!(
                built.payload.len() > limit / 2,
                "the payload keeps the room"
            );
            assert_eq!(
                header(&built.headers, "radar.truncated"),
                Some("key,payload")
            );
            assert_eq!(
                header(&built.headers, "radar.original_sizes"),
                Some("key=100000 payload=999000")
            );
            let detail = header(&built.headers, "radar.detail").unwrap();
            assert!(detail.len() <= MAX_DETAIL && detail.chars().all(|c| c == 'é'));
        }
    }

    #[test]
    fn a_cut_payload_alone_says_so() {
        let payload = vec![b'x'; 2_000_000];
        let built = letter(&origin("trailing bytes"), None, &payload, 1_000_000);
        assert_eq!(built.key, None);
        assert_eq!(header(&built.headers, "radar.truncated"), Some("payload"));
        assert!(built.size() + FRAMING <= 1_000_000);
    }

    #[test]
    fn the_coordinates_letter_names_the_record_and_the_refusal() {
        let headers = coordinates_only(&origin("bad"), "Broker: Message size too large");
        assert_eq!(header(&headers, "radar.reason"), Some("invalid_json"));
        assert_eq!(header(&headers, "radar.source"), Some("events/3/42"));
        assert!(
            header(&headers, "radar.payload_dropped")
                .unwrap()
                .ends_with("Broker: Message size too large")
        );
    }
}
