//! A delivery parked on a topic: a retry waiting for its due time on the retry topic, or
//! a dead letter on the delivery dead-letter topic. The value is the opportunity's JSON
//! as it was produced (so a record reads like one on the opportunities topic); what
//! delivery knows about it travels in headers.
//!
//! A dead letter must fit the producer's `message.max.bytes`, or the delivery it settles
//! could never be recorded and its destination would wait behind it forever: it is
//! sized as the source sizes its own (see `radar_kafka::dead_letter`), the opportunity
//! cut to the room its headers leave, and `radar.source` names the record it came from,
//! where Kafka still holds it whole.

use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

use crate::error::ParkedError;
use crate::queue::{Delivery, FailedDelivery};

const DESTINATION: &str = "radar.destination";
const ATTEMPTS: &str = "radar.attempts";
const DUE_MS: &str = "radar.due_ms";
const CREATED_MS: &str = "radar.created_ms";
const REASON: &str = "radar.reason";
const SOURCE: &str = "radar.source";
const TRUNCATED: &str = "radar.truncated";
const ORIGINAL_SIZES: &str = "radar.original_sizes";
const PAYLOAD_DROPPED: &str = "radar.payload_dropped";

/// Room kept under `message.max.bytes` for the record batch's and the record's framing.
pub const FRAMING: usize = 1_024;
/// The most of an opportunity id kept in a key: ids are 32 hex digits, and a record that
/// is not an opportunity may claim any.
const MAX_ID: usize = 256;
/// The most of a reason kept in a header: a vendor's error body can be a megabyte.
const MAX_REASON: usize = 4_096;
/// Room reserved for the headers that say a payload was cut.
const CUT_HEADERS: usize = 128;

/// A parked delivery, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    pub destination: String,
    pub attempts: u32,
    /// Not before (Unix ms): the retry's due time, or for a dead letter when it failed.
    pub due_ms: u64,
    pub created_ms: u64,
    /// Why the last attempt failed.
    pub reason: Option<String>,
    /// Where the record the delivery came from is (`topic/partition/offset`): what a
    /// dead letter without the whole opportunity points to.
    pub source: Option<String>,
    /// The opportunity was cut to fit (`radar.truncated`), or left out because the
    /// broker refused the letter (`radar.payload_dropped`, saying why).
    pub cut: Option<String>,
    pub opportunity: Vec<u8>,
}

/// A record to park: key, headers and value, measured before it is produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub key: String,
    pub headers: Vec<(&'static str, String)>,
    pub value: Vec<u8>,
}

impl Outgoing {
    /// Bytes the record carries: key, value, header names and values.
    pub fn size(&self) -> usize {
        self.key.len()
            + self.value.len()
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len())
                .sum::<usize>()
    }

    pub fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |all, (key, value)| {
                all.insert(Header {
                    key,
                    value: Some(value.as_str()),
                })
            },
        )
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A retry's record key: destination and opportunity id, so retries of one opportunity
/// stay in order on one partition.
pub fn key(destination: &str, opportunity: &[u8], seq: u64) -> String {
    let id = serde_json::from_slice::<serde_json::Value>(opportunity)
        .ok()
        .and_then(|v| {
            v["opportunity_id"]
                .as_str()
                .map(|id| cut(id, MAX_ID).to_owned())
        })
        .unwrap_or_else(|| format!("seq-{seq}"));
    format!("{destination}/{id}")
}

/// A dead letter's record key: its retry key and when it failed, so each letter is its
/// own key of the compacted dead-letter topic: replaying it writes the tombstone of that
/// letter only, never of a newer one for the same opportunity.
pub fn dead_letter_key(dead: &FailedDelivery) -> String {
    format!(
        "{}/{}",
        key(&dead.destination, &dead.opportunity, dead.seq),
        dead.failed_ms
    )
}

/// The record of a retry: `next` is due again at its due time.
pub fn retry(next: &Delivery) -> Outgoing {
    Outgoing {
        key: key(&next.destination, &next.opportunity, next.seq),
        headers: headers(
            &next.destination,
            next.attempts,
            next.due_ms,
            next.created_ms,
            next.last_error.as_deref(),
        ),
        value: next.opportunity.clone(),
    }
}

/// Headers of a retry (for `radar dlq replay`, which writes retries itself).
pub fn retry_headers(next: &Delivery) -> OwnedHeaders {
    retry(next).owned_headers()
}

/// The record of a dead letter, within `limit` bytes (the producer's
/// `message.max.bytes`) with room to spare for framing: the opportunity is cut to what
/// room is left, said in `radar.truncated` and `radar.original_sizes`, and `source` (the
/// record it came from, which Kafka still holds) says where the whole one is.
pub fn dead_letter(dead: &FailedDelivery, source: Option<&str>, limit: usize) -> Outgoing {
    let mut letter = Outgoing {
        key: dead_letter_key(dead),
        headers: headers(
            &dead.destination,
            dead.attempts,
            dead.failed_ms,
            dead.created_ms,
            Some(&dead.reason),
        ),
        value: Vec::new(),
    };
    if let Some(source) = source {
        letter
            .headers
            .push((SOURCE, cut(source, MAX_REASON).to_owned()));
    }
    let room = limit.saturating_sub(FRAMING + CUT_HEADERS + letter.size());
    let kept = dead.opportunity.len().min(room);
    letter.value = dead.opportunity[..kept].to_vec();
    if kept < dead.opportunity.len() {
        letter.headers.push((TRUNCATED, "payload".to_owned()));
        letter.headers.push((
            ORIGINAL_SIZES,
            format!("payload={}", dead.opportunity.len()),
        ));
    }
    letter
}

/// A dead letter without the opportunity, for when the broker refused it with (the
/// topic's `max.message.bytes` below the producer's): the reason, where the record is,
/// and why the opportunity is missing.
pub fn coordinates_only(dead: &FailedDelivery, source: Option<&str>, refused: &str) -> Outgoing {
    let mut letter = dead_letter(dead, source, 0);
    letter
        .headers
        .retain(|(name, _)| ![TRUNCATED, ORIGINAL_SIZES].contains(name));
    letter.headers.push((
        ORIGINAL_SIZES,
        format!("payload={}", dead.opportunity.len()),
    ));
    letter.headers.push((
        PAYLOAD_DROPPED,
        cut(
            &format!("the broker refused the dead letter with the opportunity: {refused}"),
            MAX_REASON,
        )
        .to_owned(),
    ));
    letter
}

fn headers(
    destination: &str,
    attempts: u32,
    due_ms: u64,
    created_ms: u64,
    reason: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (DESTINATION, destination.to_owned()),
        (ATTEMPTS, attempts.to_string()),
        (DUE_MS, due_ms.to_string()),
        (CREATED_MS, created_ms.to_string()),
    ];
    if let Some(reason) = reason {
        headers.push((REASON, cut(reason, MAX_REASON).to_owned()));
    }
    headers
}

/// Whether a record carries radar's headers: a letter does, even with an empty value
/// (an opportunity record that was empty), and a tombstone never does.
pub fn is_parked(message: &impl Message) -> bool {
    message
        .headers()
        .is_some_and(|headers| headers.iter().any(|h| h.key == DESTINATION))
}

/// Reads a parked delivery back; the error says what is missing or malformed.
pub fn read(message: &impl Message) -> Result<Parked, ParkedError> {
    let header = |name: &str| -> Option<String> {
        message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    let number = |name: &'static str| -> Result<u64, ParkedError> {
        header(name)
            .ok_or(ParkedError::Missing(name))?
            .parse()
            .map_err(|source| ParkedError::Number { name, source })
    };
    Ok(Parked {
        destination: header(DESTINATION).ok_or(ParkedError::Missing(DESTINATION))?,
        attempts: u32::try_from(number(ATTEMPTS)?).map_err(|source| ParkedError::OutOfRange {
            name: ATTEMPTS,
            source,
        })?,
        due_ms: number(DUE_MS)?,
        created_ms: number(CREATED_MS)?,
        reason: header(REASON),
        source: header(SOURCE),
        cut: header(PAYLOAD_DROPPED).or_else(|| {
            header(TRUNCATED).map(|what| {
                let sizes = header(ORIGINAL_SIZES).unwrap_or_default();
                format!("{what} cut to fit ({sizes})")
            })
        }),
        opportunity: message.payload().unwrap_or_default().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    use super::*;

    fn message(headers: OwnedHeaders) -> OwnedMessage {
        OwnedMessage::new(
            Some(br#"{"opportunity_id":"abc"}"#.to_vec()),
            Some(b"crm/abc".to_vec()),
            "opportunities.retry".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(headers),
        )
    }

    #[test]
    fn a_retry_reads_back_as_it_was_parked() {
        let next = Delivery {
            destination: "crm".into(),
            seq: 9,
            due_ms: 1_700_000_000_123,
            attempts: 3,
            created_ms: 1_700_000_000_000,
            last_error: Some("503 Service Unavailable".into()),
            opportunity: br#"{"opportunity_id":"abc"}"#.to_vec(),
        };
        let parked = read(&message(retry_headers(&next))).unwrap();
        assert_eq!(
            parked,
            Parked {
                destination: "crm".into(),
                attempts: 3,
                due_ms: 1_700_000_000_123,
                created_ms: 1_700_000_000_000,
                reason: Some("503 Service Unavailable".into()),
                source: None,
                cut: None,
                opportunity: next.opportunity.clone(),
            }
        );
        assert_eq!(key("crm", &next.opportunity, 9), "crm/abc");
        assert_eq!(key("crm", b"not json", 9), "crm/seq-9");
    }

    fn dead(opportunity: Vec<u8>, reason: &str) -> FailedDelivery {
        FailedDelivery {
            destination: "crm".into(),
            seq: 4,
            attempts: 1,
            created_ms: 10,
            failed_ms: 20,
            reason: reason.into(),
            opportunity,
        }
    }

    fn header<'h>(letter: &'h Outgoing, name: &str) -> Option<&'h str> {
        letter
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// An opportunity record of about a megabyte, a megabyte-long reason and id: the
    /// letter fits every limit, cut where it must be and saying so.
    #[test]
    fn a_dead_letter_fits_the_limit_whatever_it_holds() {
        let id = "i".repeat(100_000);
        let big = format!(
            r#"{{"opportunity_id":"{id}","pad":"{}"}}"#,
            "x".repeat(999_000)
        );
        let small = br#"{"opportunity_id":"abc"}"#.to_vec();
        let reason = "é".repeat(600_000);
        for limit in [1_000_000, 200_000, 10_000] {
            let letter = dead_letter(
                &dead(big.clone().into_bytes(), &reason),
                Some("opps/0/7"),
                limit,
            );
            assert!(
                letter.size() + FRAMING <= limit,
                "{} against {limit}",
                letter.size()
            );
            // The opportunity keeps the room that reason, key and framing leave.
            let others = FRAMING + CUT_HEADERS + MAX_REASON + 2 * MAX_ID;
            assert!(
                letter.value.len() + others >= limit,
                "{}",
                letter.value.len()
            );
            assert_eq!(header(&letter, SOURCE), Some("opps/0/7"));
            assert_eq!(header(&letter, TRUNCATED), Some("payload"));
            assert_eq!(
                header(&letter, ORIGINAL_SIZES),
                Some(format!("payload={}", big.len()).as_str())
            );
            assert!(header(&letter, REASON).unwrap().len() <= MAX_REASON);
            assert!(letter.key.len() < 300);
            let whole = dead_letter(&dead(small.clone(), "HTTP 400"), None, limit);
            assert_eq!(
                (whole.key.as_str(), whole.value.as_slice()),
                ("crm/abc/20", small.as_slice())
            );
            assert_eq!(header(&whole, TRUNCATED), None);
        }
        let dropped = coordinates_only(
            &dead(small.clone(), "HTTP 400"),
            Some("opps/0/7"),
            "too large",
        );
        assert!(dropped.value.is_empty());
        assert_eq!(header(&dropped, ORIGINAL_SIZES), Some("payload=24"));
        let read = read(&OwnedMessage::new(
            None,
            Some(dropped.key.clone().into_bytes()),
            "opportunities.dead-letter".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(dropped.owned_headers()),
        ))
        .unwrap();
        assert_eq!(read.source.as_deref(), Some("opps/0/7"));
        assert!(read.cut.unwrap().ends_with("too large"));
    }

    #[test]
    fn a_record_without_radar_headers_is_refused_with_the_reason() {
        let headers = OwnedHeaders::new().insert(Header {
            key: DESTINATION,
            value: Some("crm"),
        });
        assert_eq!(
            read(&message(headers)).unwrap_err().to_string(),
            "no radar.attempts header"
        );
        let headers = retry_headers(&Delivery {
            destination: "crm".into(),
            seq: 1,
            due_ms: 1,
            attempts: 1,
            created_ms: 1,
            last_error: None,
            opportunity: Vec::new(),
        })
        .insert(Header {
            key: ATTEMPTS,
            value: Some("many"),
        });
        // The first header of a name is the one read.
        assert!(read(&message(headers)).is_ok());
    }
}
