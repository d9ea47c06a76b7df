//! Snapshots of an engine's account states, and the changes between two of them, for
//! checkpoints.
//!
//! A snapshot is bytes: a format version, then the accounts in postcard (compact, serde,
//! no schema to ship). Changes have the same form plus the ids of the accounts evicted
//! since: the accounts an event reached replace their earlier state, the evicted ones go.
//! A single account's state has the same form ([`encode_account`]), for a changelog topic
//! keyed by account. The core only turns state into bytes and back; where the bytes go
//! (a checkpoint store, a changelog topic) is the pipeline's business. Restoring a
//! snapshot, applying the changes made after it in order, and carrying on gives exactly
//! the output of an uninterrupted run.

use serde::{Deserialize, Serialize};

use crate::state::AccountState;

/// Bumped whenever the serialized form of the state changes.
pub const FORMAT_VERSION: u8 = 1;

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("empty snapshot")]
    Empty,
    #[error("snapshot format {found} is not the supported {FORMAT_VERSION}")]
    Version { found: u8 },
    #[error("corrupt snapshot: {0}")]
    Corrupt(#[from] postcard::Error),
}

/// One account as stored: its id and state.
#[derive(Deserialize)]
pub(crate) struct Entry<'a> {
    #[serde(borrow)]
    pub account_id: &'a str,
    pub state: AccountState,
}

/// [`Entry`] by reference, to write without copying.
#[derive(Serialize)]
pub(crate) struct EntryRef<'a> {
    pub account_id: &'a str,
    pub state: &'a AccountState,
}

#[derive(Serialize)]
pub(crate) struct SnapshotRef<'a> {
    pub accounts: Vec<EntryRef<'a>>,
}

#[derive(Deserialize)]
pub(crate) struct SnapshotOwned<'a> {
    #[serde(borrow)]
    pub accounts: Vec<Entry<'a>>,
}

#[derive(Serialize)]
pub(crate) struct ChangesRef<'a> {
    pub accounts: Vec<EntryRef<'a>>,
    pub evicted: &'a [compact_str::CompactString],
}

#[derive(Deserialize)]
pub(crate) struct ChangesOwned<'a> {
    #[serde(borrow)]
    pub accounts: Vec<Entry<'a>>,
    #[serde(borrow)]
    pub evicted: Vec<&'a str>,
}

pub(crate) fn encode(accounts: Vec<EntryRef<'_>>) -> Vec<u8> {
    versioned(&SnapshotRef { accounts })
}

pub(crate) fn decode(bytes: &[u8]) -> Result<SnapshotOwned<'_>, SnapshotError> {
    unversioned(bytes)
}

pub(crate) fn encode_changes(changes: &ChangesRef<'_>) -> Vec<u8> {
    versioned(changes)
}

pub(crate) fn decode_changes(bytes: &[u8]) -> Result<ChangesOwned<'_>, SnapshotError> {
    unversioned(bytes)
}

/// One account's state as bytes: the value of its changelog record.
pub fn encode_account(state: &AccountState) -> Vec<u8> {
    versioned(state)
}

/// An account's state from [`encode_account`]'s bytes.
pub fn decode_account(bytes: &[u8]) -> Result<AccountState, SnapshotError> {
    unversioned(bytes)
}

fn versioned(value: &impl Serialize) -> Vec<u8> {
    let mut bytes = vec![FORMAT_VERSION];
    // Serializing plain data into a Vec cannot fail.
    if let Ok(body) = postcard::to_stdvec(value) {
        bytes.extend_from_slice(&body);
    }
    bytes
}

fn unversioned<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, SnapshotError> {
    let (&version, body) = bytes.split_first().ok_or(SnapshotError::Empty)?;
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    Ok(postcard::from_bytes(body)?)
}
