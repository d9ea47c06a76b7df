//! Delivery queues and the dead-letter store: what the outbox fans out to, one queue per
//! destination, and what delivery gave up on.
//!
//! A queued delivery is keyed by (destination, due time, outbox sequence), so the due
//! ones of a destination are a range scan in due order, and a retry is "remove, insert
//! with a later due time" in one transaction: long retries wait on disk, never in memory.
//! Dead letters are keyed by (destination, sequence) and wait for `radar dlq replay`.
//! A destination whose receiver answered 410 Gone stays disabled across restarts, until
//! its dead letters are replayed.
//!
//! Delivery's own writes (dispatching the outbox, settling attempts) commit without an
//! fsync: redb makes them durable, in order and all together, with the next durable
//! commit (the source's checkpoints, or [`Store::sync`]). A crash in
//! between rolls them back as a whole — entries return to the outbox or the queue and
//! are sent again under the same id, which at-least-once delivery allows — and the
//! source's fsyncs no longer queue behind delivery's.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::outbox::OUTBOX;
use crate::store::{Store, StoreError, storage};

/// (destination, due_ms, sequence) → postcard [`Queued`].
const QUEUE: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("delivery_queue");
/// (destination, sequence) → postcard [`DeadLetter`].
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// (account id, sequence) → opportunity JSON: each account's latest opportunities, for
/// the admin API.
const RECENT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recent_opportunities");
/// Destination → why it was disabled.
const DISABLED: TableDefinition<&str, &str> = TableDefinition::new("disabled_destinations");
/// Opportunities kept per account in [`RECENT`].
pub const RECENT_PER_ACCOUNT: usize = 10;

/// An opportunity leaving the outbox, remembered under its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    pub account_id: String,
    pub seq: u64,
    pub opportunity: Vec<u8>,
}

/// One opportunity on its way to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub destination: String,
    /// The opportunity's outbox sequence: unique per opportunity, stable across retries.
    pub seq: u64,
    /// Not before this wall-clock time (Unix ms).
    pub due_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the opportunity left the outbox (Unix ms): the start of delivery latency.
    pub created_ms: u64,
    /// Why the last attempt failed, if one did.
    pub last_error: Option<String>,
    /// The opportunity, as JSON.
    pub opportunity: Vec<u8>,
}

impl Delivery {
    /// Where it sits in its destination's queue: (destination, due time, sequence).
    pub fn key(&self) -> (&str, u64, u64) {
        (&self.destination, self.due_ms, self.seq)
    }
}

/// A delivery that was given up on, kept until it is replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub destination: String,
    pub seq: u64,
    pub attempts: u32,
    pub created_ms: u64,
    /// When delivery gave up (Unix ms).
    pub failed_ms: u64,
    pub reason: String,
    pub opportunity: Vec<u8>,
}

/// What became of an attempted delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Delivered: leaves the queue.
    Delivered(Delivery),
    /// To be tried again: `previous_due_ms` is where it sits now, the delivery carries the
    /// new due time and attempt count.
    Retry {
        previous_due_ms: u64,
        next: Delivery,
    },
    /// Given up on: leaves the queue for the dead-letter store.
    DeadLettered {
        previous_due_ms: u64,
        dead: DeadLetter,
    },
}

/// A destination's backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueSummary {
    pub depth: u64,
    /// Creation time of the oldest queued delivery (Unix ms).
    pub oldest_created_ms: Option<u64>,
    /// The earliest due time queued (Unix ms): once past, how long the destination has
    /// left a delivery that is due unsettled (waiting, in flight, or being recorded).
    pub earliest_due_ms: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Queued {
    attempts: u32,
    created_ms: u64,
    last_error: Option<String>,
    opportunity: Vec<u8>,
}

impl Store {
    /// Moves outbox entries up to and including `through` into the destination queues,
    /// atomically: `deliveries` are those entries fanned out to the destinations that
    /// want them (an entry no destination wants simply leaves the outbox), and `recent`
    /// the same entries by account, of which the latest few per account are kept.
    pub fn dispatch_outbox(
        &self,
        through: u64,
        deliveries: &[Delivery],
        recent: &[Recent],
    ) -> Result<(), StoreError> {
        self.enqueue_then(deliveries, recent, |txn| {
            let mut outbox = txn.open_table(OUTBOX).map_err(storage)?;
            outbox.retain_in(..=through, |_, _| false).map_err(storage)
        })
    }

    /// Puts `deliveries` in their destinations' queues and `recent` under their accounts,
    /// in one transaction, for deliveries that come from elsewhere than the outbox (the
    /// opportunities topic, with `store = "kafka"`).
    pub fn enqueue(&self, deliveries: &[Delivery], recent: &[Recent]) -> Result<(), StoreError> {
        self.enqueue_then(deliveries, recent, |_| Ok(()))
    }

    /// Enqueues, and runs `also` in the same transaction.
    fn enqueue_then(
        &self,
        deliveries: &[Delivery],
        recent: &[Recent],
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut kept = txn.open_table(RECENT).map_err(storage)?;
            for entry in recent {
                kept.insert(
                    (entry.account_id.as_str(), entry.seq),
                    entry.opportunity.as_slice(),
                )
                .map_err(storage)?;
            }
            let mut accounts: Vec<&str> = recent.iter().map(|r| r.account_id.as_str()).collect();
            accounts.sort_unstable();
            accounts.dedup();
            for account in accounts {
                let seqs: Vec<u64> = kept
                    .range((account, 0)..=(account, u64::MAX))
                    .map_err(storage)?
                    .map(|entry| entry.map(|(key, _)| key.value().1))
                    .collect::<Result<_, _>>()
                    .map_err(storage)?;
                for old in seqs
                    .iter()
                    .take(seqs.len().saturating_sub(RECENT_PER_ACCOUNT))
                {
                    kept.remove((account, *old)).map_err(storage)?;
                }
            }
            let mut queue = txn.open_table(QUEUE).map_err(storage)?;
            for delivery in deliveries {
                queue
                    .insert(delivery.key(), encode_queued(delivery)?.as_slice())
                    .map_err(storage)?;
            }
        }
        also(&txn)?;
        txn.commit().map_err(storage)
    }

    /// Takes queued deliveries out by (destination, due time, sequence), whatever became
    /// of them: with `store = "kafka"` the queues are a cache of what this instance
    /// holds of the opportunities and retry topics, and a partition that moves away takes
    /// its deliveries with it.
    pub fn remove_queued(&self, keys: &[(String, u64, u64)]) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(storage)?;
            for (destination, due, seq) in keys {
                queue
                    .remove((destination.as_str(), *due, *seq))
                    .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)
    }

    /// Empties every destination's queue (see [`Store::remove_queued`]: with
    /// `store = "kafka"` a starting instance holds nothing until its partitions are
    /// assigned).
    pub fn clear_queues(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        txn.delete_table(QUEUE).map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Up to `limit` deliveries of `destination` due at `now_ms`, earliest first.
    pub fn due_deliveries(
        &self,
        destination: &str,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut due = Vec::new();
        for entry in queue
            .range((destination, 0, 0)..=(destination, now_ms, u64::MAX))
            .map_err(storage)?
            .take(limit)
        {
            let (key, value) = entry.map_err(storage)?;
            let (destination, due_ms, seq) = key.value();
            let queued: Queued = postcard::from_bytes(value.value()).map_err(corrupt)?;
            due.push(Delivery {
                destination: destination.to_owned(),
                seq,
                due_ms,
                attempts: queued.attempts,
                created_ms: queued.created_ms,
                last_error: queued.last_error,
                opportunity: queued.opportunity,
            });
        }
        Ok(due)
    }

    /// The queued deliveries at `keys` (destination, due time, sequence), in that order;
    /// those no longer queued are left out.
    pub fn queued(&self, keys: &[(String, u64, u64)]) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut found = Vec::with_capacity(keys.len());
        for (destination, due_ms, seq) in keys {
            let Some(value) = queue
                .get((destination.as_str(), *due_ms, *seq))
                .map_err(storage)?
            else {
                continue;
            };
            let queued: Queued = postcard::from_bytes(value.value()).map_err(corrupt)?;
            found.push(Delivery {
                destination: destination.clone(),
                seq: *seq,
                due_ms: *due_ms,
                attempts: queued.attempts,
                created_ms: queued.created_ms,
                last_error: queued.last_error,
                opportunity: queued.opportunity,
            });
        }
        Ok(found)
    }

    /// An account's latest opportunities (JSON), newest first.
    pub fn recent_opportunities(&self, account_id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let kept = match txn.open_table(RECENT) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        kept.range((account_id, 0)..=(account_id, u64::MAX))
            .map_err(storage)?
            .rev()
            .map(|entry| {
                entry
                    .map(|(_, value)| value.value().to_vec())
                    .map_err(storage)
            })
            .collect()
    }

    /// Records what became of attempted deliveries, in one transaction (durable with the
    /// next durable commit, see the module doc).
    pub fn settle(&self, settlements: &[Settlement]) -> Result<(), StoreError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(storage)?;
            let mut dead = txn.open_table(DEAD).map_err(storage)?;
            for settlement in settlements {
                match settlement {
                    Settlement::Delivered(delivery) => {
                        queue.remove(delivery.key()).map_err(storage)?;
                    }
                    Settlement::Retry {
                        previous_due_ms,
                        next,
                    } => {
                        queue
                            .remove((next.destination.as_str(), *previous_due_ms, next.seq))
                            .map_err(storage)?;
                        queue
                            .insert(next.key(), encode_queued(next)?.as_slice())
                            .map_err(storage)?;
                    }
                    Settlement::DeadLettered {
                        previous_due_ms,
                        dead: letter,
                    } => {
                        queue
                            .remove((letter.destination.as_str(), *previous_due_ms, letter.seq))
                            .map_err(storage)?;
                        let bytes = postcard::to_allocvec(letter).map_err(corrupt)?;
                        dead.insert((letter.destination.as_str(), letter.seq), bytes.as_slice())
                            .map_err(storage)?;
                    }
                }
            }
        }
        txn.commit().map_err(storage)
    }

    /// The destinations that have deliveries queued (to warn about those no longer
    /// configured).
    pub fn queued_destinations(&self) -> Result<Vec<String>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut names: Vec<String> = Vec::new();
        let mut next: Option<String> = Some(String::new());
        // One lookup per destination: jump past each name's entries.
        while let Some(from) = next.take() {
            if let Some(entry) = queue
                .range((from.as_str(), 0, 0)..)
                .map_err(storage)?
                .next()
            {
                let (key, _) = entry.map_err(storage)?;
                let name = key.value().0.to_owned();
                next = Some(format!("{name}\0"));
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Makes every earlier commit durable (delivery calls it when it stops).
    pub fn sync(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// How many deliveries `destination` has queued, and since when the oldest waits.
    /// Scans the destination's queue: call it for metrics, not per delivery.
    pub fn queue_summary(&self, destination: &str) -> Result<QueueSummary, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(QueueSummary::default()),
            Err(e) => return Err(storage(e)),
        };
        let mut summary = QueueSummary::default();
        for entry in queue
            .range((destination, 0, 0)..=(destination, u64::MAX, u64::MAX))
            .map_err(storage)?
        {
            let (key, value) = entry.map_err(storage)?;
            let queued: Queued = postcard::from_bytes(value.value()).map_err(corrupt)?;
            // Keys are in due order: the first is the earliest.
            summary.earliest_due_ms.get_or_insert(key.value().1);
            summary.depth += 1;
            summary.oldest_created_ms = Some(
                summary
                    .oldest_created_ms
                    .map_or(queued.created_ms, |o| o.min(queued.created_ms)),
            );
        }
        Ok(summary)
    }

    /// Every dead letter, by destination then sequence.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let dead = match txn.open_table(DEAD) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        dead.iter()
            .map_err(storage)?
            .map(|entry| {
                let (_, value) = entry.map_err(storage)?;
                postcard::from_bytes(value.value()).map_err(corrupt)
            })
            .collect()
    }

    /// Marks a destination disabled (its receiver asked to stop), until its dead letters
    /// are replayed. Durable with the next durable commit, like delivery's other writes.
    pub fn disable_destination(&self, destination: &str, reason: &str) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        txn.open_table(DISABLED)
            .map_err(storage)?
            .insert(destination, reason)
            .map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Why the destination is disabled, if it is.
    pub fn disabled_reason(&self, destination: &str) -> Result<Option<String>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(DISABLED) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(storage(e)),
        };
        Ok(table
            .get(destination)
            .map_err(storage)?
            .map(|reason| reason.value().to_owned()))
    }

    /// Puts the dead letters that `select` picks back in their destination's queue, due
    /// at `now_ms` with a fresh retry budget, and enables their destinations again if a
    /// receiver had disabled them; returns how many.
    pub fn replay_dead_letters(
        &self,
        now_ms: u64,
        mut select: impl FnMut(&DeadLetter) -> bool,
    ) -> Result<usize, StoreError> {
        let picked: Vec<DeadLetter> = self
            .dead_letters()?
            .into_iter()
            .filter(|d| select(d))
            .collect();
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut queue = txn.open_table(QUEUE).map_err(storage)?;
            let mut dead = txn.open_table(DEAD).map_err(storage)?;
            let mut disabled = txn.open_table(DISABLED).map_err(storage)?;
            for letter in &picked {
                dead.remove((letter.destination.as_str(), letter.seq))
                    .map_err(storage)?;
                disabled
                    .remove(letter.destination.as_str())
                    .map_err(storage)?;
                let delivery = Delivery {
                    destination: letter.destination.clone(),
                    seq: letter.seq,
                    due_ms: now_ms,
                    attempts: 0,
                    created_ms: letter.created_ms,
                    last_error: Some(letter.reason.clone()),
                    opportunity: letter.opportunity.clone(),
                };
                queue
                    .insert(delivery.key(), encode_queued(&delivery)?.as_slice())
                    .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(picked.len())
    }
}

fn encode_queued(delivery: &Delivery) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(&Queued {
        attempts: delivery.attempts,
        created_ms: delivery.created_ms,
        last_error: delivery.last_error.clone(),
        opportunity: delivery.opportunity.clone(),
    })
    .map_err(corrupt)
}

fn corrupt(e: postcard::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
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

    fn recent(account: &str, seq: u64) -> Recent {
        Recent {
            account_id: account.to_owned(),
            seq,
            opportunity: seq.to_string().into_bytes(),
        }
    }

    #[test]
    fn delivery_writes_are_durable_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            store.append_outbox([&b"a"[..]]).unwrap();
            store
                .dispatch_outbox(0, &[delivery("crm", 0, 5)], &[recent("acme", 0)])
                .unwrap();
            store
                .settle(&[Settlement::Delivered(delivery("crm", 0, 5))])
                .unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.outbox_len().unwrap(), 0);
        assert_eq!(store.queue_summary("crm").unwrap().depth, 0);
        assert_eq!(store.recent_opportunities("acme").unwrap().len(), 1);
    }

    #[test]
    fn only_the_latest_opportunities_of_each_account_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        for seq in 0..25u64 {
            store
                .dispatch_outbox(seq, &[], &[recent("acme", seq)])
                .unwrap();
        }
        let kept = store.recent_opportunities("acme").unwrap();
        assert_eq!(kept.len(), RECENT_PER_ACCOUNT);
        assert_eq!(kept[0], b"24".to_vec());
        assert_eq!(kept[9], b"15".to_vec());
    }

    #[test]
    fn dispatch_moves_outbox_entries_into_queues_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store.append_outbox([&b"a"[..], b"b", b"c"]).unwrap();
        store
            .dispatch_outbox(
                1,
                &[delivery("crm", 0, 10), delivery("slack", 1, 10)],
                &[recent("acme", 0), recent("acme", 1)],
            )
            .unwrap();
        assert_eq!(
            store.recent_opportunities("acme").unwrap(),
            vec![b"1".to_vec(), b"0".to_vec()],
            "newest first"
        );
        assert!(store.recent_opportunities("other").unwrap().is_empty());
        assert_eq!(
            store.outbox_after(None, 10).unwrap(),
            vec![(2, b"c".to_vec())]
        );
        assert_eq!(
            store.due_deliveries("crm", 10, 10).unwrap(),
            vec![delivery("crm", 0, 10)]
        );
        assert_eq!(store.due_deliveries("crm", 9, 10).unwrap(), vec![]);
        assert_eq!(
            store.due_deliveries("slack", 99, 10).unwrap(),
            vec![delivery("slack", 1, 10)]
        );
        assert_eq!(store.queued_destinations().unwrap(), vec!["crm", "slack"]);
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
        store
            .dispatch_outbox(0, &[a.clone(), b.clone(), c.clone()], &[])
            .unwrap();
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
        let dead = DeadLetter {
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
}
