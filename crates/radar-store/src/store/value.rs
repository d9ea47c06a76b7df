//! A checkpoint's value as stored: a header (content tag, offset, checksum) before the
//! state bytes, so damage is detected on load rather than restored.

use xxhash_rust::xxh3::xxh3_64;

use super::{Checkpoint, Content};

/// Layout: content tag, offset (i64 LE), checksum (u64 LE) of tag ‖ offset ‖ state.
pub(super) const HEADER: usize = 1 + 8 + 8;
/// The tags, which also version the layout.
const SNAPSHOT: u8 = 1;
const CHANGES: u8 = 2;

fn checksum(tag: u8, offset: i64, state: &[u8]) -> u64 {
    let mut bytes = Vec::with_capacity(9 + state.len());
    bytes.push(tag);
    bytes.extend_from_slice(&offset.to_le_bytes());
    bytes.extend_from_slice(state);
    xxh3_64(&bytes)
}

pub(super) fn encode(checkpoint: &Checkpoint) -> Vec<u8> {
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
pub(super) fn verify(value: &[u8]) -> Option<(Content, i64, &[u8])> {
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

pub(super) fn decode(value: &[u8]) -> Option<Checkpoint> {
    verify(value).map(|(content, offset, state)| Checkpoint {
        offset,
        content,
        state: state.to_vec(),
    })
}
