//! Opening the store file: redb's integrity check inside a panic boundary, and a file
//! that cannot be used told apart from one that cannot be read right now (only the first
//! is moved aside).

use std::path::{Path, PathBuf};

use redb::Database;

use super::StoreError;

/// Why a store file cannot be used.
pub(super) enum Unusable {
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
pub(super) fn open_checked(path: &Path) -> Result<(Database, bool), Unusable> {
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

pub(super) fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
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

pub(super) fn free_aside_path(path: &Path) -> PathBuf {
    (1..)
        .map(|n| {
            let mut name = path.as_os_str().to_owned();
            name.push(format!(".corrupt-{n}"));
            PathBuf::from(name)
        })
        .find(|candidate| !candidate.exists())
        .unwrap_or_else(|| path.with_extension("corrupt"))
}
