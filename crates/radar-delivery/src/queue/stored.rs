//! Delivery's records in the store: [`DeliveryStore`] reads and writes [`Delivery`],
//! [`Settlement`] and [`FailedDelivery`] through `radar-store`'s delivery tables, which
//! keep only keys and opaque bytes. The encoding lives here, beside the types, so the
//! store needs nothing of delivery (`radar-delivery` → `radar-store`, never back).
//!
//! A queued record is postcard of (attempts, created time, last error, opportunity),
//! under the key (destination, due time, sequence); a failed delivery is postcard of
//! [`FailedDelivery`], under (destination, sequence). Both are the formats earlier
//! versions wrote, so a store written by one is read by the next.

use radar_store::{QueueWrite, Store, StoreError};
use serde::{Deserialize, Serialize};

use super::types::{Delivery, FailedDelivery, QueueKey, QueueSummary, Recent, Settlement};

/// Reading or writing delivery's records in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a delivery record in the store does not decode: {0}")]
    Corrupt(#[from] postcard::Error),
}

/// The value of a queued delivery; its key holds the rest.
#[derive(Serialize, Deserialize)]
struct QueuedRecord {
    attempts: u32,
    created_ms: u64,
    last_error: Option<String>,
    opportunity: Vec<u8>,
}

fn encode(delivery: &Delivery) -> Result<QueueWrite, StoredError> {
    let value = postcard::to_allocvec(&QueuedRecord {
        attempts: delivery.attempts,
        created_ms: delivery.created_ms,
        last_error: delivery.last_error.clone(),
        opportunity: delivery.opportunity.clone(),
    })?;
    Ok(QueueWrite::Enqueue(delivery.key(), value))
}

fn decode((destination, due_ms, seq): QueueKey, value: &[u8]) -> Result<Delivery, StoredError> {
    let record: QueuedRecord = postcard::from_bytes(value)?;
    Ok(Delivery {
        destination,
        seq,
        due_ms,
        attempts: record.attempts,
        created_ms: record.created_ms,
        last_error: record.last_error,
        opportunity: record.opportunity,
    })
}

fn fail(dead: &FailedDelivery) -> Result<QueueWrite, StoredError> {
    Ok(QueueWrite::Fail(
        (dead.destination.clone(), dead.seq),
        postcard::to_allocvec(dead)?,
    ))
}

fn recent_rows(recent: &[Recent]) -> Vec<(&str, u64, &[u8])> {
    recent
        .iter()
        .map(|r| (r.account_id.as_str(), r.seq, r.opportunity.as_slice()))
        .collect()
}

fn enqueued(deliveries: &[Delivery]) -> Result<Vec<QueueWrite>, StoredError> {
    deliveries.iter().map(encode).collect()
}

/// The writes that record `settlements`.
fn settled(settlements: &[Settlement]) -> Result<Vec<QueueWrite>, StoredError> {
    let mut writes = Vec::with_capacity(settlements.len() * 2);
    for settlement in settlements {
        writes.push(QueueWrite::Dequeue(settlement.queue_key()));
        match settlement {
            Settlement::Delivered(_) => {}
            Settlement::Retry { next, .. } => writes.push(encode(next)?),
            Settlement::DeadLettered { dead, .. } => writes.push(fail(dead)?),
        }
    }
    Ok(writes)
}

/// Delivery's view of the store (see the module doc).
pub trait DeliveryStore {
    /// Moves outbox entries up to and including `through` into the destination queues,
    /// atomically: `deliveries` are those entries fanned out to the destinations that
    /// want them, `recent` the same entries by account.
    fn dispatch_outbox(
        &self,
        through: u64,
        deliveries: &[Delivery],
        recent: &[Recent],
    ) -> Result<(), StoredError>;
    /// Puts `deliveries` in their queues and `recent` under their accounts, in one
    /// transaction (deliveries read from the opportunities topic).
    fn enqueue(&self, deliveries: &[Delivery], recent: &[Recent]) -> Result<(), StoredError>;
    /// Up to `limit` deliveries of `destination` due at `now_ms`, earliest first.
    fn due_deliveries(
        &self,
        destination: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoredError>;
    /// The queued deliveries at `keys`, in that order; those no longer queued are left out.
    fn queued(&self, keys: &[QueueKey]) -> Result<Vec<Delivery>, StoredError>;
    /// Records what became of attempted deliveries, in one transaction (durable with the
    /// next durable commit).
    fn settle(&self, settlements: &[Settlement]) -> Result<(), StoredError>;
    /// Takes queued deliveries out, whatever became of them (with `store = "kafka"` the
    /// queues are a cache, and a partition that moves away takes its deliveries along).
    fn remove_queued(&self, keys: &[QueueKey]) -> Result<(), StoredError>;
    /// How many deliveries `destination` has queued, and since when the oldest waits.
    /// Scans the destination's queue: call it for metrics, not per delivery.
    fn queue_summary(&self, destination: &str) -> Result<QueueSummary, StoredError>;
    /// Every dead letter, by destination then sequence.
    fn dead_letters(&self) -> Result<Vec<FailedDelivery>, StoredError>;
    /// Puts the dead letters that `select` picks back in their destination's queue, due
    /// at `now_ms` with a fresh retry budget, and enables their destinations again if a
    /// receiver had disabled them, durably; returns how many.
    fn replay_dead_letters(
        &self,
        now_ms: u64,
        select: impl FnMut(&FailedDelivery) -> bool,
    ) -> Result<usize, StoredError>;
}

impl DeliveryStore for Store {
    fn dispatch_outbox(
        &self,
        through: u64,
        deliveries: &[Delivery],
        recent: &[Recent],
    ) -> Result<(), StoredError> {
        Ok(self.move_outbox_to_queues(through, &enqueued(deliveries)?, &recent_rows(recent))?)
    }

    fn enqueue(&self, deliveries: &[Delivery], recent: &[Recent]) -> Result<(), StoredError> {
        Ok(self.enqueue_with_recent(&enqueued(deliveries)?, &recent_rows(recent))?)
    }

    fn due_deliveries(
        &self,
        destination: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoredError> {
        self.queue_entries(destination, now_ms, limit)?
            .into_iter()
            .map(|(key, value)| decode(key, &value))
            .collect()
    }

    fn queued(&self, keys: &[QueueKey]) -> Result<Vec<Delivery>, StoredError> {
        self.queued_at(keys)?
            .into_iter()
            .map(|(key, value)| decode(key, &value))
            .collect()
    }

    fn settle(&self, settlements: &[Settlement]) -> Result<(), StoredError> {
        Ok(self.write_queues(&settled(settlements)?, false)?)
    }

    fn remove_queued(&self, keys: &[QueueKey]) -> Result<(), StoredError> {
        let writes: Vec<QueueWrite> = keys.iter().cloned().map(QueueWrite::Dequeue).collect();
        Ok(self.write_queues(&writes, false)?)
    }

    fn queue_summary(&self, destination: &str) -> Result<QueueSummary, StoredError> {
        let mut summary = QueueSummary::default();
        for ((_, due_ms, _), value) in self.queue_entries(destination, u64::MAX, usize::MAX)? {
            let record: QueuedRecord = postcard::from_bytes(&value)?;
            // Entries are in due order: the first is the earliest.
            summary.earliest_due_ms.get_or_insert(due_ms);
            summary.depth += 1;
            summary.oldest_created_ms = Some(
                summary
                    .oldest_created_ms
                    .map_or(record.created_ms, |o| o.min(record.created_ms)),
            );
        }
        Ok(summary)
    }

    fn dead_letters(&self) -> Result<Vec<FailedDelivery>, StoredError> {
        self.failed_entries()?
            .iter()
            .map(|value| Ok(postcard::from_bytes(value)?))
            .collect()
    }

    fn replay_dead_letters(
        &self,
        now_ms: u64,
        mut select: impl FnMut(&FailedDelivery) -> bool,
    ) -> Result<usize, StoredError> {
        let mut writes = Vec::new();
        let mut picked = 0;
        for letter in self.dead_letters()? {
            if !select(&letter) {
                continue;
            }
            picked += 1;
            writes.push(QueueWrite::Unfail((letter.destination.clone(), letter.seq)));
            writes.push(QueueWrite::Enable(letter.destination.clone()));
            writes.push(encode(&Delivery {
                destination: letter.destination,
                seq: letter.seq,
                due_ms: now_ms,
                attempts: 0,
                created_ms: letter.created_ms,
                last_error: Some(letter.reason),
                opportunity: letter.opportunity,
            })?);
        }
        self.write_queues(&writes, true)?;
        Ok(picked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(destination: &str, seq: u64, due_ms: u64) -> Delivery {
        Delivery {
            destination: destination.to_owned(),
            seq,
            due_ms,
            attempts: 0,
            created_ms: 1_000 + seq,
            last_error: None,
            opportunity: format!("{{\"seq\":{seq}}}").into_bytes(),
        }
    }

    #[test]
    fn settlements_retry_deliver_and_dead_letter_then_replay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let (a, b, c) = (
            delivery("d", 0, 5),
            delivery("d", 1, 5),
            delivery("d", 2, 7),
        );
        store.append_outbox([&b"a"[..]]).unwrap();
        store
            .dispatch_outbox(0, &[a.clone(), b.clone(), c.clone()], &[])
            .unwrap();
        assert_eq!(store.outbox_len().unwrap(), 0);
        assert_eq!(
            store.queue_summary("d").unwrap(),
            QueueSummary {
                depth: 3,
                oldest_created_ms: Some(1_000),
                earliest_due_ms: Some(5),
            }
        );
        let keys = [
            ("d".to_owned(), 7, 2),
            ("d".to_owned(), 6, 2),
            ("d".to_owned(), 5, 0),
        ];
        assert_eq!(store.queued(&keys).unwrap(), vec![c.clone(), a.clone()]);
        let mut later = b.clone();
        later.due_ms = 50;
        later.attempts = 1;
        later.last_error = Some("HTTP 500".into());
        let dead = FailedDelivery {
            destination: "d".into(),
            seq: 2,
            attempts: 1,
            created_ms: c.created_ms,
            failed_ms: 8,
            reason: "HTTP 400".into(),
            opportunity: c.opportunity.clone(),
        };
        store
            .settle(&[
                Settlement::Delivered(a),
                Settlement::Retry {
                    previous_due_ms: 5,
                    next: later.clone(),
                },
                Settlement::DeadLettered {
                    previous_due_ms: 7,
                    dead: dead.clone(),
                },
            ])
            .unwrap();
        assert_eq!(store.due_deliveries("d", 49, 10).unwrap(), vec![]);
        assert_eq!(store.due_deliveries("d", 50, 10).unwrap(), vec![later]);
        assert_eq!(store.dead_letters().unwrap(), vec![dead]);

        assert_eq!(store.replay_dead_letters(60, |d| d.seq == 99).unwrap(), 0);
        assert_eq!(store.replay_dead_letters(60, |d| d.seq == 2).unwrap(), 1);
        assert_eq!(store.dead_letters().unwrap(), vec![]);
        let replayed = store.due_deliveries("d", 60, 10).unwrap();
        assert_eq!(replayed.len(), 2);
        assert_eq!((replayed[1].seq, replayed[1].attempts), (2, 0));
    }

    #[test]
    fn records_keep_the_format_earlier_versions_wrote() {
        // postcard of (attempts, created_ms, last_error, opportunity), as radar-store
        // wrote it before delivery owned its records.
        let record = postcard::to_allocvec(&(1u32, 2u64, Some("e".to_owned()), vec![7u8])).unwrap();
        let delivery = decode(("d".into(), 3, 4), &record).unwrap();
        assert_eq!(
            (
                delivery.attempts,
                delivery.created_ms,
                delivery.last_error.as_deref()
            ),
            (1, 2, Some("e"))
        );
        let QueueWrite::Enqueue(_, again) = encode(&delivery).unwrap() else {
            unreachable!()
        };
        assert_eq!(again, record);
    }
}
