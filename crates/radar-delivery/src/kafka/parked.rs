//! A delivery parked on a topic: a retry waiting for its due time on the retry topic, or
//! a dead letter on the delivery dead-letter topic. The value is the opportunity's JSON
//! as it was produced (so a record reads like one on the opportunities topic); what
//! delivery knows about it travels in headers.

use radar_store::{DeadLetter, Delivery};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

const DESTINATION: &str = "radar.destination";
const ATTEMPTS: &str = "radar.attempts";
const DUE_MS: &str = "radar.due_ms";
const CREATED_MS: &str = "radar.created_ms";
const REASON: &str = "radar.reason";

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
    pub opportunity: Vec<u8>,
}

/// A retry's record key: destination and opportunity id, so retries of one opportunity
/// stay in order on one partition.
pub fn key(destination: &str, opportunity: &[u8], seq: u64) -> String {
    let id = serde_json::from_slice::<serde_json::Value>(opportunity)
        .ok()
        .and_then(|v| v["opportunity_id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("seq-{seq}"));
    format!("{destination}/{id}")
}

/// A dead letter's record key: its retry key and when it failed, so each letter is its
/// own key of the compacted dead-letter topic: replaying it writes the tombstone of that
/// letter only, never of a newer one for the same opportunity.
pub fn dead_letter_key(dead: &DeadLetter) -> String {
    format!(
        "{}/{}",
        key(&dead.destination, &dead.opportunity, dead.seq),
        dead.failed_ms
    )
}

/// Headers of a retry: `next` is due again at its due time.
pub fn retry_headers(next: &Delivery) -> OwnedHeaders {
    headers(
        &next.destination,
        next.attempts,
        next.due_ms,
        next.created_ms,
        next.last_error.as_deref(),
    )
}

/// Headers of a dead letter.
pub fn dead_letter_headers(dead: &DeadLetter) -> OwnedHeaders {
    headers(
        &dead.destination,
        dead.attempts,
        dead.failed_ms,
        dead.created_ms,
        Some(&dead.reason),
    )
}

fn headers(
    destination: &str,
    attempts: u32,
    due_ms: u64,
    created_ms: u64,
    reason: Option<&str>,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new_with_capacity(5)
        .insert(Header {
            key: DESTINATION,
            value: Some(destination),
        })
        .insert(Header {
            key: ATTEMPTS,
            value: Some(&attempts.to_string()),
        })
        .insert(Header {
            key: DUE_MS,
            value: Some(&due_ms.to_string()),
        })
        .insert(Header {
            key: CREATED_MS,
            value: Some(&created_ms.to_string()),
        });
    if let Some(reason) = reason {
        headers = headers.insert(Header {
            key: REASON,
            value: Some(reason),
        });
    }
    headers
}

/// Reads a parked delivery back; the error says what is missing or malformed.
pub fn read(message: &impl Message) -> Result<Parked, String> {
    let header = |name: &str| -> Option<String> {
        message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    let number = |name: &str| -> Result<u64, String> {
        header(name)
            .ok_or_else(|| format!("no {name} header"))?
            .parse()
            .map_err(|e| format!("header {name}: {e}"))
    };
    Ok(Parked {
        destination: header(DESTINATION).ok_or_else(|| format!("no {DESTINATION} header"))?,
        attempts: u32::try_from(number(ATTEMPTS)?).map_err(|e| format!("{ATTEMPTS}: {e}"))?,
        due_ms: number(DUE_MS)?,
        created_ms: number(CREATED_MS)?,
        reason: header(REASON),
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
                opportunity: next.opportunity.clone(),
            }
        );
        assert_eq!(key("crm", &next.opportunity, 9), "crm/abc");
        assert_eq!(key("crm", b"not json", 9), "crm/seq-9");
    }

    #[test]
    fn a_record_without_radar_headers_is_refused_with_the_reason() {
        let headers = OwnedHeaders::new().insert(Header {
            key: DESTINATION,
            value: Some("crm"),
        });
        assert_eq!(
            read(&message(headers)).unwrap_err(),
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
