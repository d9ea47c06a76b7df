//! The store file, and checkpoints: for each Kafka partition, the offset to resume from
//! and the engine state that goes with it, written in one transaction.
//!
//! Each checkpoint is a new *generation*, holding either a snapshot of the whole state or
//! the changes since the generation before it: a checkpoint costs what changed, not what
//! is tracked. A partition's state is its newest usable snapshot with the changes after
//! it applied in order. Every value carries a checksum of its content, so damage is
//! detected on load: a damaged snapshot falls back to the snapshot before it (kept, with
//! its changes, until a newer snapshot is written), and a damaged change ends the chain
//! there. A store file that cannot be opened at all is moved aside (`<file>.corrupt-<n>`)
//! and a fresh one started: the partition is then rebuilt from Kafka rather than the
//! process failing at every start.

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use xxhash_rust::xxh3::xxh3_64;

/// (topic, partition, generation) → header ‖ state.
const CHECKPOINTS: TableDefinition<(&str, i32, u64), &[u8]> = TableDefinition::new("checkpoints");
/// (topic, partition, generation) → the changelog position (the changelog offset after
/// the checkpoint's completion record) the generation's state corresponds to, when the
/// partition's state lives in a changelog topic and this file is its cache.
const CHANGELOG_POSITIONS: TableDefinition<(&str, i32, u64), i64> =
    TableDefinition::new("changelog_positions");

/// Layout: content tag, offset (i64 LE), checksum (u64 LE) of tag ‖ offset ‖ state.
const HEADER: usize = 1 + 8 + 8;
/// The tags, which also version the layout.
const SNAPSHOT: u8 = 1;
const CHANGES: u8 = 2;

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

impl StoreError {
    /// Whether the file could not be opened because another process holds it.
    pub fn held_elsewhere(&self) -> bool {
        matches!(self, StoreError::Open { source, .. }
            if matches!(**source, redb::DatabaseError::DatabaseAlreadyOpen))
    }
}

/// Any redb failure past opening, boxed: redb's errors are large and rare.
pub(crate) fn storage(e: impl Into<redb::Error>) -> StoreError {
    StoreError::Storage(Box::new(e.into()))
}

/// What a checkpoint holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The whole state of the partition.
    Snapshot,
    /// What changed since the partition's previous checkpoint.
    Changes,
}

/// A partition's state, or its changes, as of an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The next offset to consume.
    pub offset: i64,
    pub content: Content,
    pub state: Vec<u8>,
}

/// What [`Store::load_state`] rebuilt, and where to resume.
#[derive(Debug)]
pub struct LoadedState<T> {
    pub state: T,
    /// The next offset to consume: that of the last checkpoint applied.
    pub offset: i64,
    /// Checkpoints applied: the snapshot and the changes after it.
    pub applied: u32,
    /// The changelog position of the last checkpoint applied, if it was saved with one
    /// ([`Store::save_checkpoint_at`]).
    pub changelog: Option<i64>,
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
    /// Set when the file found at open was unusable: where it was moved, and why.
    moved_aside: Option<(PathBuf, String)>,
    /// Whether the file found at open failed redb's integrity check and was repaired
    /// (back to its last intact commit).
    repaired: bool,
}

impl Store {
    /// Opens (or creates) the store at `path`, checking the whole file: a damaged one is
    /// moved aside and a new store created; [`Store::moved_aside`] says where it went and
    /// [`Store::moved_aside_because`] why. The partitions are then rebuilt from what Kafka
    /// still holds, rather than radar failing (or panicking) at every start.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        match open_checked(path) {
            Ok((db, repaired)) => Ok(Store {
                db,
                moved_aside: None,
                repaired,
            }),
            Err(Unusable::Damaged(why)) => Self::start_afresh(path, why),
            Err(Unusable::Other(e)) => Err(open_error(path, e)),
        }
    }

    /// Moves an unusable store file aside and creates a new one in its place.
    fn start_afresh(path: &Path, why: String) -> Result<Store, StoreError> {
        let aside = free_aside_path(path);
        std::fs::rename(path, &aside).map_err(|source| StoreError::MoveAside {
            path: path.to_owned(),
            source,
        })?;
        let db = Database::create(path).map_err(|e| open_error(path, e))?;
        Ok(Store {
            db,
            moved_aside: Some((aside, why)),
            repaired: false,
        })
    }

    /// Where an unusable store file found at open was moved.
    pub fn moved_aside(&self) -> Option<&Path> {
        self.moved_aside.as_ref().map(|(path, _)| path.as_path())
    }

    /// Whether the store file found at open was damaged and repaired by redb.
    pub fn repaired(&self) -> bool {
        self.repaired
    }

    /// Why the store file found at open was moved aside.
    pub fn moved_aside_because(&self) -> Option<&str> {
        self.moved_aside.as_ref().map(|(_, why)| why.as_str())
    }

    /// Writes a new checkpoint generation for the partition, durably. A snapshot also
    /// retires what it makes unneeded: everything older than the newest intact snapshot
    /// before it, which stays (with its changes) as the fallback should the new one be
    /// damaged.
    pub fn save_checkpoint(
        &self,
        topic: &str,
        partition: i32,
        checkpoint: &Checkpoint,
    ) -> Result<(), StoreError> {
        self.save(topic, partition, checkpoint, None)
    }

    /// [`Store::save_checkpoint`] of a state that a changelog topic holds up to
    /// `changelog` (its offset after the checkpoint's completion record): the file is
    /// then a cache, good as long as the changelog has nothing after that position.
    pub fn save_checkpoint_at(
        &self,
        topic: &str,
        partition: i32,
        checkpoint: &Checkpoint,
        changelog: i64,
    ) -> Result<(), StoreError> {
        self.save(topic, partition, checkpoint, Some(changelog))
    }

    fn save(
        &self,
        topic: &str,
        partition: i32,
        checkpoint: &Checkpoint,
        changelog: Option<i64>,
    ) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(storage)?;
        {
            let mut table = txn.open_table(CHECKPOINTS).map_err(storage)?;
            let mut positions = txn.open_table(CHANGELOG_POSITIONS).map_err(storage)?;
            let all = (topic, partition, 0)..=(topic, partition, u64::MAX);
            let next = match table.range(all.clone()).map_err(storage)?.next_back() {
                Some(entry) => entry.map_err(storage)?.0.value().2 + 1,
                None => 0,
            };
            if checkpoint.content == Content::Snapshot {
                // (generation, intact snapshot) of what is there now, newest first.
                let mut fallback = None;
                for entry in table.range(all).map_err(storage)?.rev() {
                    let (key, value) = entry.map_err(storage)?;
                    if matches!(verify(value.value()), Some((Content::Snapshot, _, _))) {
                        fallback = Some(key.value().2);
                        break;
                    }
                }
                let keep_from = fallback.unwrap_or(next);
                let retired = (topic, partition, 0)..(topic, partition, keep_from);
                table
                    .retain_in(retired.clone(), |_, _| false)
                    .map_err(storage)?;
                positions
                    .retain_in(retired, |_, _| false)
                    .map_err(storage)?;
            }
            table
                .insert((topic, partition, next), encode(checkpoint).as_slice())
                .map_err(storage)?;
            match changelog {
                Some(position) => positions.insert((topic, partition, next), position),
                None => positions.remove((topic, partition, next)),
            }
            .map_err(storage)?;
        }
        txn.commit().map_err(storage)?;
        Ok(())
    }

    /// Rebuilds the partition's state from its checkpoints: the newest intact snapshot
    /// that `restore` accepts (older ones are tried when it refuses), then each intact
    /// change after it, in order, that `apply` accepts, up to the first that is damaged or
    /// refused. Returns what was rebuilt (`None`: no usable snapshot) and how many newer
    /// checkpoints were left out, each worth a log line and a metric.
    pub fn load_state<T>(
        &self,
        topic: &str,
        partition: i32,
        mut restore: impl FnMut(&[u8]) -> Option<T>,
        mut apply: impl FnMut(&mut T, &[u8]) -> bool,
    ) -> Result<(Option<LoadedState<T>>, u32), StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((None, 0)),
            Err(e) => return Err(storage(e)),
        };
        let generations: Vec<u64> = table
            .range((topic, partition, 0)..=(topic, partition, u64::MAX))
            .map_err(storage)?
            .map(|entry| entry.map(|(key, _)| key.value().2))
            .collect::<Result<_, _>>()
            .map_err(storage)?;
        let value = |generation: u64| table.get((topic, partition, generation)).map_err(storage);
        for (at, &base) in generations.iter().enumerate().rev() {
            let Some(guard) = value(base)? else { continue };
            let Some((Content::Snapshot, offset, bytes)) = verify(guard.value()) else {
                continue;
            };
            let Some(state) = restore(bytes) else {
                continue;
            };
            let mut loaded = LoadedState {
                state,
                offset,
                applied: 1,
                changelog: None,
            };
            let mut last = base;
            for &generation in &generations[at + 1..] {
                let Some(guard) = value(generation)? else {
                    break;
                };
                match verify(guard.value()) {
                    Some((Content::Changes, offset, bytes)) if apply(&mut loaded.state, bytes) => {
                        loaded.offset = offset;
                        loaded.applied += 1;
                        last = generation;
                    }
                    _ => break,
                }
            }
            loaded.changelog = match txn.open_table(CHANGELOG_POSITIONS) {
                Ok(positions) => positions
                    .get((topic, partition, last))
                    .map_err(storage)?
                    .map(|position| position.value()),
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(storage(e)),
            };
            let left_out = generations.len() - at - loaded.applied as usize;
            return Ok((Some(loaded), left_out as u32));
        }
        Ok((None, generations.len() as u32))
    }

    /// The newest checkpoint of the partition whose checksum holds, whatever it holds
    /// (its offset is where the partition resumes when its chain is whole).
    pub fn load_checkpoint(&self, topic: &str, partition: i32) -> Result<Loaded, StoreError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = match txn.open_table(CHECKPOINTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return Ok(Loaded {
                    checkpoint: None,
                    skipped: 0,
                });
            }
            Err(e) => return Err(storage(e)),
        };
        let mut skipped = 0;
        let newest_first = table
            .range((topic, partition, 0)..=(topic, partition, u64::MAX))
            .map_err(storage)?
            .rev();
        for entry in newest_first {
            let (_, value) = entry.map_err(storage)?;
            match decode(value.value()) {
                Some(checkpoint) => {
                    return Ok(Loaded {
                        checkpoint: Some(checkpoint),
                        skipped,
                    });
                }
                None => skipped += 1,
            }
        }
        Ok(Loaded {
            checkpoint: None,
            skipped,
        })
    }
}

/// Why a store file cannot be used.
enum Unusable {
    /// Damaged, or no store at all: moved aside.
    Damaged(String),
    /// Not the file's fault (I/O, a lock held by another radar, a newer redb's format):
    /// reported, the file never thrown away.
    Other(redb::DatabaseError),
}

/// Opens the database and checks every page of it (redb's integrity check, which also
/// repairs what its design can: the database and whether it was repaired). redb answers some damage with a panic
/// rather than an error (a file with its second half zeroed: `unreachable`), so opening
/// and checking run inside a panic boundary: a panic there is damage too.
fn open_checked(path: &Path) -> Result<(Database, bool), Unusable> {
    let opened = std::panic::catch_unwind(|| {
        let mut db = Database::create(path)?;
        let intact = db.check_integrity()?;
        Ok::<_, redb::DatabaseError>((db, !intact))
    });
    match opened {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(why)))) => {
            Err(Unusable::Damaged(format!("damaged: {why}")))
        }
        Ok(Err(e @ redb::DatabaseError::Storage(redb::StorageError::Io(_))))
            if not_a_database(path) =>
        {
            Err(Unusable::Damaged(format!("not a radar store: {e}")))
        }
        // Shorter than its own layout says: cut off.
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Err(Unusable::Damaged(format!("damaged: {e}")))
        }
        Ok(Err(e)) => Err(Unusable::Other(e)),
        Err(panic) => {
            let said = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Unusable::Damaged(format!(
                "damaged: reading it failed inside redb ({said})"
            )))
        }
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

fn checksum(tag: u8, offset: i64, state: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(9 + state.len());
    bytes.push(tag);
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(state);
    xxh3_64(&bytes)
}

fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
    let tag = match checkpoint.content {
        Content::Snapshot => SNAPSHOT,
        Content::Changes => CHANGES,
    };
    let mut value = Vec::with_capacity(HEADER + checkpoint.state.len());
    value.push(tag);
    value.extend_from_slice(&checkpoint.offset.to_le_bytes());
    value.extend_from_slice(&checksum(tag, checkpoint.offset, &checkpoint.state).to_le_bytes());
    value.extend_from_slice(&checkpoint.state);
    value
}

/// What `value` holds, its offset and its state bytes, or `None` when it is truncated, of
/// an unknown layout, or its checksum does not hold.
fn verify(value: &[u8]) -> Option<(Content, i64, &[u8])> {
    let (header, state) = value.split_at_checked(HEADER)?;
    let content = match header[0] {
        SNAPSHOT => Content::Snapshot,
        CHANGES => Content::Changes,
        _ => return None,
    };
    let offset = i64::from_le_bytes(header[1..9].try_into().ok()?);
    let sum = u64::from_le_bytes(header[9..17].try_into().ok()?);
    (sum == checksum(header[0], offset, state)).then_some((content, offset, state))
}

fn decode(value: &[u8]) -> Option<Checkpoint> {
    verify(value).map(|(content, offset, state)| Checkpoint {
        offset,
        content,
        state: state.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableTableMetadata;

    fn checkpoint(offset: i64, fill: u8) -> Checkpoint {
        Checkpoint {
            offset,
            content: Content::Snapshot,
            state: vec![fill; 100],
        }
    }

    fn changes(offset: i64, fill: u8) -> Checkpoint {
        Checkpoint {
            offset,
            content: Content::Changes,
            state: vec![fill; 10],
        }
    }

    /// The chain `load_state` rebuilds, as the fills of its snapshot and changes.
    fn chain(store: &Store, partition: i32) -> (Option<(Vec<u8>, i64, u32)>, u32) {
        let (loaded, left_out) = store
            .load_state(
                "events",
                partition,
                |bytes| Some(vec![bytes[0]]),
                |fills, bytes| {
                    fills.push(bytes[0]);
                    true
                },
            )
            .unwrap();
        (loaded.map(|l| (l.state, l.offset, l.applied)), left_out)
    }

    fn generations(store: &Store) -> u64 {
        let txn = store.db.begin_read().unwrap();
        txn.open_table(CHECKPOINTS).unwrap().len().unwrap()
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
        assert_eq!(
            generations(&store),
            2,
            "the newest snapshot and one to fall back on"
        );
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

        // All three generations kept (0, the damaged 1, the new 2) are now damaged.
        damage(&store, "events", 0, 0, b"");
        let loaded = store.load_checkpoint("events", 0).unwrap();
        assert_eq!(loaded.checkpoint, None);
        assert_eq!(loaded.skipped, 3);
    }

    #[test]
    fn a_snapshot_the_caller_refuses_falls_back_too() {
        let (_dir, store) = store();
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap();
        store
            .save_checkpoint("events", 0, &checkpoint(20, 2))
            .unwrap();
        let (loaded, left_out) = store
            .load_state(
                "events",
                0,
                |bytes| (bytes[0] == 1).then_some(()),
                |_, _| true,
            )
            .unwrap();
        assert_eq!((loaded.map(|l| l.offset), left_out), (Some(10), 1));
    }

    #[test]
    fn state_is_the_newest_snapshot_with_the_changes_after_it() {
        let (_dir, store) = store();
        assert_eq!(chain(&store, 0), (None, 0));
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap();
        store.save_checkpoint("events", 0, &changes(20, 2)).unwrap();
        store.save_checkpoint("events", 0, &changes(30, 3)).unwrap();
        assert_eq!(chain(&store, 0), (Some((vec![1, 2, 3], 30, 3)), 0));
        assert_eq!(
            store.load_checkpoint("events", 0).unwrap().checkpoint,
            Some(changes(30, 3)),
            "the newest checkpoint is the changes"
        );

        // A new snapshot keeps the previous one and its changes as the fallback.
        store
            .save_checkpoint("events", 0, &checkpoint(40, 4))
            .unwrap();
        store.save_checkpoint("events", 0, &changes(50, 5)).unwrap();
        assert_eq!(chain(&store, 0), (Some((vec![4, 5], 50, 2)), 0));
        assert_eq!(generations(&store), 5);
        // The next snapshot retires the first one and its changes.
        store
            .save_checkpoint("events", 0, &checkpoint(60, 6))
            .unwrap();
        assert_eq!(generations(&store), 3);
        assert_eq!(chain(&store, 0), (Some((vec![6], 60, 1)), 0));
    }

    #[test]
    fn damage_ends_the_chain_or_falls_back_to_the_previous_snapshot() {
        let (_dir, store) = store();
        store
            .save_checkpoint("events", 0, &checkpoint(10, 1))
            .unwrap(); // generation 0
        store.save_checkpoint("events", 0, &changes(20, 2)).unwrap(); // 1
        store
            .save_checkpoint("events", 0, &checkpoint(30, 3))
            .unwrap(); // 2
        store.save_checkpoint("events", 0, &changes(40, 4)).unwrap(); // 3
        store.save_checkpoint("events", 0, &changes(50, 5)).unwrap(); // 4

        // A damaged change: the chain stops before it, and what follows is left out.
        let mut flipped = encode(&changes(40, 4));
        flipped[HEADER] ^= 0xff;
        damage(&store, "events", 0, 3, &flipped);
        assert_eq!(chain(&store, 0), (Some((vec![3], 30, 1)), 2));

        // A damaged snapshot: the previous snapshot and its changes, up to where the
        // damaged one began (its own changes follow a state nobody has).
        damage(&store, "events", 0, 2, b"garbage");
        assert_eq!(chain(&store, 0), (Some((vec![1, 2], 20, 2)), 3));

        // Changes with no snapshot before them are no state at all.
        damage(&store, "events", 0, 0, b"");
        assert_eq!(chain(&store, 0), (None, 5));

        // A damaged snapshot is never the fallback a new one keeps.
        store
            .save_checkpoint("events", 0, &checkpoint(60, 6))
            .unwrap();
        assert_eq!(generations(&store), 1);
        assert_eq!(chain(&store, 0), (Some((vec![6], 60, 1)), 0));
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

    /// A cache of a changelog says up to where: the position of the last checkpoint it
    /// could apply, none for a checkpoint saved without one.
    #[test]
    fn each_checkpoint_keeps_its_changelog_position() {
        let (_dir, store) = store();
        let position = |store: &Store| {
            store
                .load_state("events", 0, |b| Some(b[0]), |_, _| true)
                .unwrap()
                .0
                .and_then(|loaded| loaded.changelog)
        };
        store
            .save_checkpoint_at("events", 0, &checkpoint(10, 1), 100)
            .unwrap();
        assert_eq!(position(&store), Some(100));
        store
            .save_checkpoint_at("events", 0, &changes(20, 2), 140)
            .unwrap();
        assert_eq!(position(&store), Some(140));
        // A damaged newest change: the state, and its position, of the one before.
        store
            .save_checkpoint_at("events", 0, &changes(30, 3), 170)
            .unwrap();
        damage(&store, "events", 0, 2, b"garbage");
        assert_eq!(position(&store), Some(140));
        // A new snapshot saved without a position has none.
        store
            .save_checkpoint("events", 0, &checkpoint(40, 4))
            .unwrap();
        assert_eq!(position(&store), None);
    }

    /// A store file as radar leaves it: checkpoints of several partitions and an outbox.
    fn written_store(path: &Path) -> u64 {
        let store = Store::open(path).unwrap();
        for round in 0..20u8 {
            for partition in 0..8 {
                let state = Checkpoint {
                    offset: i64::from(round) * 100,
                    content: Content::Snapshot,
                    state: (0..40_000u32).map(|i| (i as u8) ^ round).collect(),
                };
                store.save_checkpoint("events", partition, &state).unwrap();
            }
            let opportunity = vec![round; 2_000];
            store
                .append_outbox(std::iter::repeat_n(opportunity.as_slice(), 20))
                .unwrap();
        }
        drop(store);
        std::fs::metadata(path).unwrap().len()
    }

    /// Damage that redb reports as a panic (`unreachable`) rather than an error still
    /// moves the file aside: never a panic at every start.
    #[test]
    fn a_damaged_file_is_moved_aside_whatever_redb_makes_of_it() {
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 3] = [
            ("second half zeroed", |bytes| {
                let half = bytes.len() / 2;
                bytes[half..].fill(0);
            }),
            ("64 KiB of garbage in the middle", |bytes| {
                let middle = bytes.len() / 2;
                for (i, byte) in bytes[middle..middle + 65_536].iter_mut().enumerate() {
                    *byte = (i as u8).wrapping_mul(31).wrapping_add(7);
                }
            }),
            ("cut in half", |bytes| bytes.truncate(bytes.len() / 2)),
        ];
        for (what, damage) in damages {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("state.redb");
            assert!(written_store(&path) > 1 << 20);
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, &bytes).unwrap();

            let store = Store::open(&path).unwrap_or_else(|e| panic!("{what}: {e}"));
            let aside = store
                .moved_aside()
                .unwrap_or_else(|| panic!("{what}: kept"));
            assert_eq!(std::fs::read(aside).unwrap(), bytes, "{what}");
            assert!(!store.moved_aside_because().unwrap().is_empty());
            assert_eq!(store.outbox_len().unwrap(), 0, "{what}");
            store
                .save_checkpoint("events", 0, &checkpoint(1, 1))
                .unwrap();
            assert_eq!(
                store.load_checkpoint("events", 0).unwrap().checkpoint,
                Some(checkpoint(1, 1)),
                "{what}"
            );
        }
    }
}
