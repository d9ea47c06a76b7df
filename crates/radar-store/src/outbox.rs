//! The outbox: opportunities made durable before the offsets that produced them are
//! committed, in the order they were made, for delivery to read and remove.
//!
//! Appends are visible to delivery at once but reach the disk with the store's next
//! durable commit: a checkpoint (which is what allows an offset to be committed), or the
//! periodic [`Store::sync`]. A crash before that loses only entries that the restart
//! makes again, since they come from events after the last checkpoint.
//!
//! Entries are opaque bytes (the opportunity's JSON) under increasing sequence numbers.
//! An opportunity may be appended twice after a crash (the events after the last
//! checkpoint are processed again); its `opportunity_id` is the idempotency key that
//! lets delivery and the CRM see it as one.

use redb::{Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::{Store, StoreError, storage};

pub(crate) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
/// The next sequence number, kept apart: the table may be emptied by delivery, and
/// numbers must never be reused.
const OUTBOX_NEXT: TableDefinition<&str, u64> = TableDefinition::new("outbox_next");

impl Store {
    /// Appends entries in one transaction, durable with the next durable commit (see the
    /// module's note); returns the sequence of the first.
    pub fn append_outbox<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<u64, StoreError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::None).map_err(storage)?;
        let first;
        {
            let mut next = txn.open_table(OUTBOX_NEXT).map_err(storage)?;
            first = next.get("next").map_err(storage)?.map_or(0, |n| n.value());
            let mut table = txn.open_table(OUTBOX).map_err(storage)?;
            let mut sequence = first;
            for entry in entries {
                table.insert(sequence, entry).map_err(storage)?;
                sequence += 1;
            }
            next.insert("next", sequence).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(first)
    }

    /// Up to `limit` entries after sequence `after` (from the start with `None`), in order.
    pub fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(OUTBOX) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage(e)),
        };
        let start = after.map_or(0, |a| a.saturating_add(1));
        table
            .range(start..)
            .map_err(storage)?
            .take(limit)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                Ok((key.value(), value.value().to_vec()))
            })
            .collect()
    }

    /// How many entries wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        let txn = self.db.begin_read().map_err(storage)?;
        match txn.open_table(OUTBOX) {
            Ok(table) => table.len().map_err(storage),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(e) => Err(storage(e)),
        }
    }

    /// Removes every entry up to and including `through` (delivered, or dead-lettered).
    pub fn remove_outbox_through(&self, through: u64) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(OUTBOX).map_err(storage)?;
            table.retain_in(..=through, |_, _| false).map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_back_in_order_across_reopening_and_can_be_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.outbox_after(None, 10).unwrap(), vec![]);
            assert_eq!(store.append_outbox([&b"a"[..], b"b"]).unwrap(), 0);
            assert_eq!(store.append_outbox([&b"c"[..]]).unwrap(), 2);
        }
        let store = Store::open(&path).unwrap();
        let all = store.outbox_after(None, 10).unwrap();
        assert_eq!(
            all,
            vec![(0, b"a".to_vec()), (1, b"b".to_vec()), (2, b"c".to_vec())]
        );
        assert_eq!(
            store.outbox_after(Some(0), 1).unwrap(),
            vec![(1, b"b".to_vec())]
        );

        assert_eq!(store.outbox_len().unwrap(), 3);
        store.remove_outbox_through(1).unwrap();
        assert_eq!(
            store.outbox_after(None, 10).unwrap(),
            vec![(2, b"c".to_vec())]
        );
        // Sequences keep increasing after removals, even when the outbox was emptied.
        store.remove_outbox_through(2).unwrap();
        assert_eq!(store.outbox_after(None, 10).unwrap(), vec![]);
        assert_eq!(store.append_outbox([&b"d"[..]]).unwrap(), 3);
    }
}
