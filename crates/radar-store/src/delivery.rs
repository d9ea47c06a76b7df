//! The tables behind delivery's queues and its failed-delivery store: what the outbox
//! fans out to, one queue per destination, and what delivery gave up on.
//!
//! The layers point one way: `radar-delivery` depends on this crate, never the reverse.
//! So this module knows only keys and opaque values — the queued record and the failed
//! delivery are defined, and (de)serialised, by `radar-delivery` (its `queue::stored`
//! module). What the store needs to order and find entries is in the keys.
//!
//! A queued delivery is keyed by (destination, due time, outbox sequence), so the due
//! ones of a destination are a range scan in due order, and a retry is "remove, insert
//! with a later due time" in one transaction: long retries wait on disk, never in memory.
//! Failed deliveries are keyed by (destination, sequence) and wait for `radar dlq
//! replay`. A destination whose receiver answered 410 Gone stays disabled across
//! restarts, until its failed deliveries are replayed.
//!
//! Delivery's own writes (dispatching the outbox, settling attempts) commit without an
//! fsync: redb makes them durable, in order and all together, with the next durable
//! commit (the source's checkpoints, or [`Store::sync`]). A crash in
//! between rolls them back as a whole — entries return to the outbox or the queue and
//! are sent again under the same id, which at-least-once delivery allows — and the
//! source's fsyncs no longer queue behind delivery's.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::outbox::OUTBOX;
use crate::store::{Store, StoreError, storage};

/// (destination, due_ms, sequence) → a queued record, as `radar-delivery` encodes it.
const QUEUE: TableDefinition<(&str, u64, u64), &[u8]> = TableDefinition::new("delivery_queue");
/// (destination, sequence) → a failed delivery, as `radar-delivery` encodes it.
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters");
/// (account id, sequence) → opportunity JSON: each account's latest opportunities, for
/// the admin API.
const RECENT: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("recent_opportunities");
/// Destination → why it was disabled.
const DISABLED: TableDefinition<&str, &str> = TableDefinition::new("disabled_destinations");
/// Opportunities kept per account in [`RECENT`].
pub const RECENT_PER_ACCOUNT: usize = 10;

/// Where a queued entry sits: (destination, due time in Unix ms, outbox sequence).
pub type QueueKey = (String, u64, u64);
/// Where a failed delivery sits: (destination, outbox sequence).
pub type FailedKey = (String, u64);

/// One change to the delivery tables; a batch of them commits as one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueWrite {
    /// Puts an entry in a destination's queue.
    Enqueue(QueueKey, Vec<u8>),
    /// Takes an entry out of a destination's queue (nothing if it is not there).
    Dequeue(QueueKey),
    /// Keeps a failed delivery until it is replayed.
    Fail(FailedKey, Vec<u8>),
    /// Forgets a failed delivery (it is being replayed).
    Unfail(FailedKey),
    /// Enables a destination that a receiver had disabled.
    Enable(String),
}

impl Store {
    /// Moves outbox entries up to and including `through` into the destination queues,
    /// atomically: `writes` enqueue those entries fanned out to the destinations that
    /// want them (an entry no destination wants simply leaves the outbox), and `recent`
    /// (account, sequence, opportunity JSON) are the same entries by account, of which
    /// the latest few per account are kept.
    pub fn move_outbox_to_queues(
        &self,
        through: u64,
        writes: &[QueueWrite],
        recent: &[(&str, u64, &[u8])],
    ) -> Result<(), StoreError> {
        self.enqueue_then(writes, recent, |txn| {
            let mut outbox = txn.open_table(OUTBOX).map_err(storage)?;
            outbox.retain_in(..=through, |_, _| false).map_err(storage)
        })
    }

    /// Applies `writes` and keeps `recent` under their accounts, in one transaction, for
    /// deliveries that come from elsewhere than the outbox (the opportunities topic, with
    /// `store = "kafka"`).
    pub fn enqueue_with_recent(
        &self,
        writes: &[QueueWrite],
        recent: &[(&str, u64, &[u8])],
    ) -> Result<(), StoreError> {
        self.enqueue_then(writes, recent, |_| Ok(()))
    }

    /// Enqueues, and runs `also` in the same transaction.
    fn enqueue_then(
        &self,
        writes: &[QueueWrite],
        recent: &[(&str, u64, &[u8])],
        also: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        {
            let mut kept = txn.open_table(RECENT).map_err(storage)?;
            for (account, seq, opportunity) in recent {
                kept.insert((*account, *seq), *opportunity)
                    .map_err(storage)?;
            }
            let mut accounts: Vec<&str> = recent.iter().map(|(account, _, _)| *account).collect();
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
        }
        apply(&txn, writes)?;
        also(&txn)?;
        txn.commit().map_err(storage)
    }

    /// Applies `writes` in one transaction; `durable` commits with an fsync (a command
    /// such as `radar dlq replay`), otherwise it is durable with the next durable commit
    /// (delivery's own writes, see the module doc).
    pub fn write_queues(&self, writes: &[QueueWrite], durable: bool) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(storage)?;
        if !durable {
            txn.set_durability(Durability::None).map_err(storage)?;
        }
        apply(&txn, writes)?;
        txn.commit().map_err(storage)
    }

    /// Empties every destination's queue (with `store = "kafka"` the queues are a cache
    /// of what this instance holds of the topics, and a starting instance holds nothing
    /// until its partitions are assigned).
    pub fn clear_queues(&self) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        txn.delete_table(QUEUE).map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Up to `limit` entries of `destination`'s queue due at or before `through_ms`, in
    /// due order (`u64::MAX`: all of them).
    pub fn queue_entries(
        &self,
        destination: &str,
        through_ms: u64,
        limit: usize,
    ) -> Result<Vec<(QueueKey, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        queue
            .range((destination, 0, 0)..=(destination, through_ms, u64::MAX))
            .map_err(storage)?
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                let (destination, due_ms, seq) = key.value();
                Ok((
                    (destination.to_owned(), due_ms, seq),
                    value.value().to_vec(),
                ))
            })
            .collect()
    }

    /// The queued entries at `keys`, in that order; those no longer queued are left out.
    pub fn queued_at(&self, keys: &[QueueKey]) -> Result<Vec<(QueueKey, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let queue = match txn.open_table(QUEUE) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let (destination, due_ms, seq) = key;
            if let Some(value) = queue
                .get((destination.as_str(), *due_ms, *seq))
                .map_err(storage)?
            {
                found.push((key.clone(), value.value().to_vec()));
            }
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

    /// Makes every earlier commit durable: the source before it writes the changelog,
    /// delivery periodically and when it stops.
    pub fn sync(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        txn.commit().map_err(storage)
    }

    /// Every failed delivery, by destination then sequence.
    pub fn failed_entries(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let dead = match txn.open_table(DEAD) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        dead.iter()
            .map_err(storage)?
            .map(|entry| {
                entry
                    .map(|(_, value)| value.value().to_vec())
                    .map_err(storage)
            })
            .collect()
    }

    /// Marks a destination disabled (its receiver asked to stop), until its failed
    /// deliveries are replayed. Durable with the next durable commit, like delivery's
    /// other writes.
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
}

/// Applies `writes` within `txn`.
fn apply(txn: &redb::WriteTransaction, writes: &[QueueWrite]) -> Result<(), StoreError> {
    let mut queue = txn.open_table(QUEUE).map_err(storage)?;
    let mut dead = txn.open_table(DEAD).map_err(storage)?;
    let mut disabled = txn.open_table(DISABLED).map_err(storage)?;
    for write in writes {
        match write {
            QueueWrite::Enqueue((destination, due, seq), value) => {
                queue
                    .insert((destination.as_str(), *due, *seq), value.as_slice())
                    .map_err(storage)?;
            }
            QueueWrite::Dequeue((destination, due, seq)) => {
                queue
                    .remove((destination.as_str(), *due, *seq))
                    .map_err(storage)?;
            }
            QueueWrite::Fail((destination, seq), value) => {
                dead.insert((destination.as_str(), *seq), value.as_slice())
                    .map_err(storage)?;
            }
            QueueWrite::Unfail((destination, seq)) => {
                dead.remove((destination.as_str(), *seq)).map_err(storage)?;
            }
            QueueWrite::Enable(destination) => {
                disabled.remove(destination.as_str()).map_err(storage)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(destination: &str, due: u64, seq: u64) -> QueueKey {
        (destination.to_owned(), due, seq)
    }

    fn enqueue(destination: &str, due: u64, seq: u64) -> QueueWrite {
        QueueWrite::Enqueue(key(destination, due, seq), seq.to_string().into_bytes())
    }

    #[test]
    fn delivery_writes_are_durable_once_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let store = Store::open(&path).unwrap();
            store.append_outbox([&b"a"[..]]).unwrap();
            store
                .move_outbox_to_queues(0, &[enqueue("crm", 5, 0)], &[("acme", 0, b"0")])
                .unwrap();
            store
                .write_queues(&[QueueWrite::Dequeue(key("crm", 5, 0))], false)
                .unwrap();
            store.sync().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.outbox_len().unwrap(), 0);
        assert!(store.queue_entries("crm", u64::MAX, 10).unwrap().is_empty());
        assert_eq!(store.recent_opportunities("acme").unwrap().len(), 1);
    }

    #[test]
    fn only_the_latest_opportunities_of_each_account_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        for seq in 0..25u64 {
            let json = seq.to_string();
            store
                .move_outbox_to_queues(seq, &[], &[("acme", seq, json.as_bytes())])
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
            .move_outbox_to_queues(
                1,
                &[enqueue("crm", 10, 0), enqueue("slack", 10, 1)],
                &[("acme", 0, b"0"), ("acme", 1, b"1")],
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
            store.queue_entries("crm", 10, 10).unwrap(),
            vec![(key("crm", 10, 0), b"0".to_vec())]
        );
        assert_eq!(store.queue_entries("crm", 9, 10).unwrap(), vec![]);
        assert_eq!(store.queue_entries("slack", 99, 10).unwrap().len(), 1);
        assert_eq!(store.queued_destinations().unwrap(), vec!["crm", "slack"]);
    }

    #[test]
    fn writes_move_entries_between_queue_and_failed_store_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store
            .enqueue_with_recent(
                &[enqueue("d", 5, 0), enqueue("d", 5, 1), enqueue("d", 7, 2)],
                &[],
            )
            .unwrap();
        assert_eq!(
            store
                .queued_at(&[key("d", 7, 2), key("d", 6, 2), key("d", 5, 0)])
                .unwrap(),
            vec![
                (key("d", 7, 2), b"2".to_vec()),
                (key("d", 5, 0), b"0".to_vec())
            ]
        );
        store.disable_destination("d", "410").unwrap();
        store
            .write_queues(
                &[
                    QueueWrite::Dequeue(key("d", 5, 0)),
                    QueueWrite::Dequeue(key("d", 5, 1)),
                    QueueWrite::Enqueue(key("d", 50, 1), b"1 again".to_vec()),
                    QueueWrite::Dequeue(key("d", 7, 2)),
                    QueueWrite::Fail(("d".into(), 2), b"failed".to_vec()),
                ],
                false,
            )
            .unwrap();
        assert_eq!(store.queue_entries("d", 49, 10).unwrap(), vec![]);
        assert_eq!(
            store.queue_entries("d", 50, 10).unwrap(),
            vec![(key("d", 50, 1), b"1 again".to_vec())]
        );
        assert_eq!(store.failed_entries().unwrap(), vec![b"failed".to_vec()]);
        store
            .write_queues(
                &[
                    QueueWrite::Unfail(("d".into(), 2)),
                    QueueWrite::Enable("d".into()),
                    enqueue("d", 60, 2),
                ],
                true,
            )
            .unwrap();
        assert!(store.failed_entries().unwrap().is_empty());
        assert_eq!(store.disabled_reason("d").unwrap(), None);
        assert_eq!(store.queue_entries("d", u64::MAX, 10).unwrap().len(), 2);
    }
}
