//! The store file, and checkpoints: for each Kafka partition, the offset to resume from
//! and the engine snapshot that goes with it, written in one transaction.
//!
//! Each checkpoint is a new *generation*; the two newest are kept. Every value carries a
//! checksum of its content, so a damaged checkpoint is detected on load and the previous
//! generation is used instead. A store file that cannot be opened at all is moved aside
//! (`<file>.corrupt-<n>`) and a fresh one started: the partition is then rebuilt from
//! Kafka rather than the process failing at every start.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use xxhash_rust::xxh3::xxh3_64;

/// (topic, partition, generation) → header ‖ snapshot.
const CHECKPOINTS: TableDefinition<(&str, i32, u64), &[u8]> = TableDefinition::new("checkpoints");

/// Generations kept per partition: the newest, and one intact one to fall back on.
#[cfg(test)]
const KEEP: u64 = 2;

/// Value layout version, offset (i64 LE), checksum (u64 LE) of version ‖ offset ‖ snapshot.
const HEADER: usize = 1 + 8 + 8;
const VERSION: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state store {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error("state store {path}: moving the unreadable file aside: {source}")]
    MoveAside {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state store: {0}")]
    Storage(Box<redb::Error>),
    #[error("state store: undecodable entry: {0}")]
    Corrupt(String),
}

/// Any redb failure past opening, boxed: redb's errors are large and rare.
pub(crate) fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(Box::new(e.into()))
}

/// The state to resume a partition from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The next offset to consume.
    pub offset: i64,
    pub snapshot: Vec<u8>,
}

/// What loading found: the newest good checkpoint, if any, and how many newer ones were
/// damaged and skipped (each worth a log line and a metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub checkpoint: Option<Checkpoint>,
    pub skipped: u32,
}

#[derive(Debug)]
pub struct Store {
    pub(crate) db: Database,
    /// Set when the file found at open was unreadable and was moved here.
    moved_aside: Option<PathBuf>,
}

impl Store {
    /// Opens (or creates) the store at `path`. An unreadable file is moved aside and a
    /// new store created; [`Store::moved_aside`] says where it went.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        match Database::create(path) {
            Ok(db) => Ok(Store {
                db,
                moved_aside: None,
            }),
            // Only a file that is not a readable database is moved aside; an I/O error or
            // a file from a newer redb is reported, never thrown away.
            Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(_))) => {
                Self::start_afresh(path)
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(_)))
                if not_a_database(path) =>
            {
                Self::start_afresh(path)
            }
            Err(e) => Err(open_error(path, e)),
        }
    }

    /// Moves an unusable store file aside and creates a new one in its place.
    fn start_afresh(path: &Path) -> Result<Store, StoreError> {
        let aside = free_aside_path(path);
        std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
            path: path.to_owned(),
            source,
        })?;
        let db = Database::create(path).map_err(|e| open_error(path, e))?;
        Ok(Store {
            db,
            moved_aside: Some(aside),
        })
    }

    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_deref()
    }

    /// Writes a new checkpoint generation for the partition, durably, and drops the ones
    /// older than the previous.
    pub fn save_checkpoint(
        &self,
        topic: &str,
        partition: i32,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(CHECKPOINTS).map_err(storage)?;
            // (generation, intact) of what is there now.
            let generations: Vec<(u64, bool)> = table
                .range((topic, partition, 0)..=(topic, partition, u64::MAX))
                .map_err(storage)?
                .map(|entry| {
                    entry.map(|(key, value)| (key.value().2, decode(value.value()).is_some()))
                })
                .collect::<Result<_, _>>()
                .map_err(storage)?;
            let next = generations.last().map_or(0, |(g, _)| g + 1);
            table
                .insert((topic, partition, next), encode(checkpoint).as_slice())
                .map_err(storage)?;
            // Keep the newest intact generation as the fallback, drop the rest (a damaged
            // one must never push out the last good one).
            let fallback = generations
                .iter()
                .rev()
                .find(|(_, intact)| *intact)
                .map(|(g, _)| *g);
            for (old, _) in generations.iter().filter(|(g, _)| Some(*g) != fallback) {
                table.remove((topic, partition, *old)).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// The newest checkpoint of the partition whose checksum holds.
    pub fn load_checkpoint(&self, topic: &str, partition: i32) -> Result<Loaded, StoreError> {
        let (found, skipped) =
            self.load_checkpoint_accepted(topic, partition, |c| Some(c.clone()))?;
        Ok(Loaded {
            checkpoint: found,
            skipped,
        })
    }

    /// The newest checkpoint of the partition whose checksum holds and that `accept`
    /// turns into a value (e.g. a snapshot that decodes), with the number of newer ones
    /// skipped on the way.
    pub fn load_checkpoint_accepted<T>(
        &self,
        topic: &str,
        partition: i32,
        mut accept: impl FnMut(&Checkpoint) -> Option<T>,
    ) -> Result<(Option<T>, u32), StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((None, 0)),
            Err(e) => return Err(storage(e)),
        };
        let mut skipped = 0;
        let newest_first = table
            .range((topic, partition, 0)..=(topic, partition, u64::MAX))
            .map_err(storage)?
            .rev();
        for entry in newest_first {
            let (_, value) = entry.map_err(storage)?;
            match decode(value.value()).and_then(|c| accept(&c)) {
                Some(accepted) => return Ok((Some(accepted), skipped)),
                None => skipped += 1,
            }
        }
        Ok((None, skipped))
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    StoreError::Open {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Whether the file at `path` is no redb database at all (as opposed to one that could
/// not be read right now): its first bytes are not redb's magic number.
fn not_a_database(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => &head != b"redb\x1A\x0A\xA9\x0D\x0A",
        Err(e) => e.kind() == std::io::ErrorKind::UnexpectedEof,
    }
}

fn free_aside_path(path: &Path) -> PathBuf {
    (1..)
        .map(|n| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".corrupt-{n}"));
            PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_extension("corrupt"))
}

fn checksum(version: u8, offset: i64, snapshot: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(9 + snapshot.len());
    bytes.push(version);
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(snapshot);
    xxh3_64(&bytes)
}

fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let mut value = Vec::with_capacity(HEADER + checkpoint.snapshot.len());
    value.push(VERSION);
    value.extend_from_slice(&checkpoint.offset.to_le_bytes());
    value.extend_from_slice(
        &checksum(VERSION, checkpoint.offset, &checkpoint.snapshot).to_le_bytes(),
    );
    value.extend_from_slice(&checkpoint.snapshot);
    value
}

/// The checkpoint in `value`, or `None` when it is truncated, of another version, or its
/// checksum does not hold.
fn decode(value: &[u8]) -> Option<Checkpoint> {
    let (header, snapshot) = value.split_at_checked(HEADER)?;
    let version = header[0];
    let offset = i64::from_le_bytes(header[1..9].try_into().ok()?);
    let sum = u64::from_le_bytes(header[9..17].try_into().ok()?);
    (version == VERSION && sum == checksum(version, offset, snapshot)).then(|| Checkpoint {
        offset,
        snapshot: snapshot.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn checkpoint(offset: i64, fill: u8) -> Checkpoint {
        Checkpoint {
            offset,
            snapshot: vec![fill; 100],
        }
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("state.redb")).unwrap();
        (dir, store)
    }

    /// Overwrites a stored generation with raw bytes, as disk damage would.
    fn damage(store: &Store, topic: &str, partition: i32, generation: u64, bytes: &[u8]) {
        let txn = store.db.begin_write().unwrap();
        txn.open_table(CHECKPOINTS)
            .unwrap()
            .insert((topic, partition, generation), bytes)
            .unwrap();
        txn.commit().unwrap();
    }

    #[test]
    fn the_newest_checkpoint_of_each_partition_comes_back() {
        let (_dir, store) = store();
        assert_eq!(store.load_checkpoint("events", 0).unwrap().checkpoint, None);
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap();
        store
            .save_checkpoint("events", 1, &checkpoint(5, 2))
            .unwrap();
        store
            .save_checkpoint("events", 0, &checkpoint(20, 3))
            .unwrap();
        store
            .save_checkpoint("other", 0, &checkpoint(7, 4))
            .unwrap();
        assert_eq!(
            store.load_checkpoint("events", 0).unwrap().checkpoint,
            Some(checkpoint(20, 3))
        );
        assert_eq!(
            store.load_checkpoint("events", 1).unwrap().checkpoint,
            Some(checkpoint(5, 2))
        );
        assert_eq!(
            store.load_checkpoint("other", 0).unwrap().checkpoint,
            Some(checkpoint(7, 4))
        );
        assert_eq!(store.load_checkpoint("events", 2).unwrap().checkpoint, None);
    }

    #[test]
    fn checkpoints_survive_reopening_and_only_two_generations_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = Store::open(&path).unwrap();
            for offset in 1..=5 {
                store
                    .save_checkpoint("events", 3, &checkpoint(offset, offset as u8))
                    .unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.moved_aside(), None);
        assert_eq!(
            store.load_checkpoint("events", 3).unwrap().checkpoint,
            Some(checkpoint(5, 5))
        );
        let txn = store.db.begin_read().unwrap();
        let kept = txn.open_table(CHECKPOINTS).unwrap().len().unwrap();
        assert_eq!(kept, KEEP);
    }

    #[test]
    fn a_damaged_checkpoint_falls_back_to_the_previous_generation() {
        let (_dir, store) = store();
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap();
        store
            .save_checkpoint("events", 0, &checkpoint(20, 2))
            .unwrap();

        let mut flipped = encode(&checkpoint(20, 2));
        flipped[40] ^= 0xff;
        damage(&store, "events", 0, 1, &flipped);
        let loaded = store.load_checkpoint("events", 0).unwrap();
        assert_eq!(loaded.checkpoint, Some(checkpoint(10, 1)));
        assert_eq!(loaded.skipped, 1);

        damage(
            &store,
            "events",
            0,
            1,
            &encode(&checkpoint(20, 2))[..HEADER - 1],
        );
        assert_eq!(
            store.load_checkpoint("events", 0).unwrap().checkpoint,
            Some(checkpoint(10, 1))
        );

        // The next checkpoint keeps the intact generation 0, not the damaged 1.
        store
            .save_checkpoint("events", 0, &checkpoint(30, 3))
            .unwrap();
        damage(&store, "events", 0, 2, b"garbage");
        assert_eq!(
            store.load_checkpoint("events", 0).unwrap().checkpoint,
            Some(checkpoint(10, 1))
        );

        damage(&store, "events", 0, 0, b"");
        let loaded = store.load_checkpoint("events", 0).unwrap();
        assert_eq!(loaded.checkpoint, None);
        assert_eq!(loaded.skipped, 2);
    }

    #[test]
    fn a_checkpoint_the_caller_refuses_falls_back_too() {
        let (_dir, store) = store();
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap();
        store
            .save_checkpoint("events", 0, &checkpoint(20, 2))
            .unwrap();
        let (found, skipped) = store
            .load_checkpoint_accepted("events", 0, |c| (c.snapshot[0] == 1).then_some(c.offset))
            .unwrap();
        assert_eq!((found, skipped), (Some(10), 1));
    }

    #[test]
    fn an_unreadable_file_is_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        std::fs::write(&path, vec![0x5a; 64 * 1024]).unwrap();
        let store = Store::open(&path).unwrap();
        let aside = store.moved_aside().unwrap().to_owned();
        assert!(aside.exists());
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0x5a; 64 * 1024]);
        store
            .save_checkpoint("events", 0, &checkpoint(1, 1))
            .unwrap();
        assert_eq!(
            store.load_checkpoint("events", 0).unwrap().checkpoint,
            Some(checkpoint(1, 1))
        );
    }
}
