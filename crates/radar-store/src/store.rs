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

mod open;
mod value;

use open::{Unusable, free_aside_path, open_checked, open_error};
use value::{decode, encode, verify};

/// (topic, partition, generation) → header ‖ state.
const CHECKPOINTS: TableDefinition<(&str, i32, u64), &[u8]> = TableDefinition::new("checkpoints");
/// (topic, partition, generation) → the changelog position (the changelog offset after
/// the checkpoint's completion record) the generation's state corresponds to, when the
/// partition's state lives in a changelog topic and this file is its cache.
const CHANGELOG_POSITIONS: TableDefinition<(&str, i32, u64), i64> =
    TableDefinition::new("changelog_positions");

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

#[cfg(test)]
mod tests;
