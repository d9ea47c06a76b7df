//! Dotted paths, compiled once into a trie, and the values a decoder captures at them.
//!
//! A mapping names the values it reads by dotted paths (`context.groupId`,
//! `props.seats`). Every decoder walks its input once against the same [`PathTrie`]:
//! a member whose name is not a child of the node it is in is skipped whole, and a
//! member that ends a path is captured into that path's [`Slot`]. Paths are resolved here,
//! at start, never per record.

use std::borrow::Cow;

use smallvec::SmallVec;

/// The index of a captured value: one per distinct path.
pub type Slot = u16;

/// The index of a node of a [`PathTrie`]; [`PathTrie::ROOT`] is the whole record.
pub type NodeId = u32;

/// A value found at a path. Objects, arrays, records and bytes are not values a mapping
/// reads: they are [`Captured::Other`].
#[derive(Clone, Debug, PartialEq)]
pub enum Captured<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Cow<'a, str>),
    /// An instant the input typed as one (Avro `timestamp-millis`/`-micros`, Protobuf
    /// `google.protobuf.Timestamp`), in milliseconds since the epoch.
    Millis(i64),
    Other,
}

#[derive(Clone, Debug, Default)]
struct Node {
    /// Member names below this node, with their nodes.
    children: Vec<(Box<str>, NodeId)>,
    slot: Option<Slot>,
    /// `children` by [`Words`], open addressing: one more than a child's index, 0 for
    /// none; a power of two long, at least twice the children. A linear `find` with a
    /// `memcmp` per same-length name measured ~35 instructions a member on a Segment
    /// call's fifteen properties; this is one hash and one comparison of two words.
    table: Box<[u16]>,
    words: Vec<Words>,
    /// The children as the bytes a compact record writes after a key's opening quote
    /// (the name, then its closing quote), by [`bucket`] of their first two bytes: a
    /// member is known at its quote, without scanning its key for the end or hashing it.
    /// Empty when a name has a quote, a backslash or a control character.
    patterns: Vec<Pattern>,
    /// Per bucket, the range of `patterns` in it (empty for a node with no children).
    buckets: Box<[(u16, u16)]>,
}

/// A child's name and closing quote: the first sixteen bytes as masked words, the rest
/// as bytes.
#[derive(Clone, Debug)]
struct Pattern {
    first: u64,
    first_mask: u64,
    second: u64,
    second_mask: u64,
    rest: Box<[u8]>,
    /// The name's length, and its node.
    len: usize,
    child: NodeId,
}

/// What [`PathTrie::recognise`] knows of the key at a quote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recognised {
    /// The key is this child's name; the index after its closing quote.
    Child(NodeId, usize),
    /// If the key is a string without escapes, it is no child's name.
    NoChild,
    /// Not known here: the key is to be scanned and looked up by [`PathTrie::child_in`].
    Unsure,
}

const BUCKETS: usize = 256;

/// The bucket of a name by its first two bytes after the opening quote.
#[inline(always)]
fn bucket(first: u64) -> usize {
    ((first & 0xff) as usize ^ ((first >> 5) & 0x7f8) as usize) & (BUCKETS - 1)
}

/// Up to eight bytes of `bytes` from `from` as a little-endian word and its mask.
fn word_of(bytes: &[u8], from: usize) -> (u64, u64) {
    let mut word = [0u8; 8];
    let mut mask = [0u8; 8];
    for i in 0..8 {
        if let Some(&c) = bytes.get(from + i) {
            word[i] = c;
            mask[i] = 0xff;
        }
    }
    (u64::from_le_bytes(word), u64::from_le_bytes(mask))
}

/// A member name as its length and first sixteen bytes (zero past its end), which
/// settle most comparisons without a `memcmp`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Words {
    len: usize,
    first: u64,
    second: u64,
}

impl Words {
    /// The words of the `len` bytes of `b` from `start` (which the caller has checked
    /// are in `b`).
    #[inline(always)]
    fn of(b: &[u8], start: usize, len: usize) -> Words {
        let word = |from: usize| -> u64 {
            let n = len.saturating_sub(from).min(8);
            if n == 0 {
                return 0;
            }
            // Eight bytes loaded whole where the text has them (a key is always followed
            // by more of its object), then masked to the name's.
            let at = start + from;
            let raw = match b.get(at..at + 8).and_then(|s| s.first_chunk::<8>()) {
                Some(chunk) => u64::from_le_bytes(*chunk),
                None => {
                    let mut chunk = [0u8; 8];
                    let have = b.get(at..).unwrap_or_default();
                    let n = have.len().min(8);
                    chunk[..n].copy_from_slice(&have[..n]);
                    u64::from_le_bytes(chunk)
                }
            };
            if n == 8 {
                raw
            } else {
                raw & ((1u64 << (8 * n)) - 1)
            }
        };
        Words {
            len,
            first: word(0),
            second: word(8),
        }
    }

    #[inline(always)]
    fn hash(&self, mask: usize) -> usize {
        let mixed = (self.first ^ self.second.rotate_left(29) ^ self.len as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> 40) as usize & mask
    }
}

/// Paths as a trie: each node is a member name under its parent's.
#[derive(Clone, Debug)]
pub struct PathTrie {
    nodes: Vec<Node>,
    paths: Vec<Box<str>>,
}

impl Default for PathTrie {
    fn default() -> Self {
        PathTrie {
            nodes: vec![Node::default()],
            paths: Vec::new(),
        }
    }
}

impl Node {
    /// Rebuilds `table` and `words` after a child is added (at start only).
    fn index(&mut self) {
        self.words = self
            .children
            .iter()
            .map(|(name, _)| Words::of(name.as_bytes(), 0, name.len()))
            .collect();
        let size = (self.children.len() * 2).next_power_of_two().max(4);
        let mut table = vec![0u16; size];
        for (i, words) in self.words.iter().enumerate() {
            let mut at = words.hash(size - 1);
            while table[at] != 0 {
                at = (at + 1) & (size - 1);
            }
            // Fewer than `u16::MAX / 4` children (checked by `insert`).
            table[at] = (i + 1) as u16;
        }
        self.table = table.into_boxed_slice();
        let plain = self
            .children
            .iter()
            .all(|(name, _)| name.bytes().all(|c| c >= 0x20 && c != b'"' && c != b'\\'));
        let mut patterns: Vec<(usize, Pattern)> = Vec::new();
        if plain {
            for (name, child) in &self.children {
                let mut bytes = name.as_bytes().to_vec();
                bytes.push(b'"');
                let (first, first_mask) = word_of(&bytes, 0);
                let (second, second_mask) = word_of(&bytes, 8);
                let pattern = Pattern {
                    first,
                    first_mask,
                    second,
                    second_mask,
                    rest: bytes.get(16..).unwrap_or_default().into(),
                    len: name.len(),
                    child: *child,
                };
                patterns.push((bucket(first), pattern));
            }
        }
        patterns.sort_by_key(|(bucket, _)| *bucket);
        let mut buckets = vec![(0u16, 0u16); BUCKETS];
        for (i, (bucket, _)) in patterns.iter().enumerate() {
            let range = &mut buckets[*bucket];
            if range.0 == range.1 {
                range.0 = i as u16;
            }
            range.1 = i as u16 + 1;
        }
        self.buckets = if plain {
            buckets.into_boxed_slice()
        } else {
            Box::default()
        };
        self.patterns = patterns.into_iter().map(|(_, p)| p).collect();
    }
}

impl PathTrie {
    pub const ROOT: NodeId = 0;

    /// The slot of `path` (dotted, non-empty segments), added if new. `None` for an empty
    /// segment or past `Slot::MAX` paths.
    pub fn insert(&mut self, path: &str) -> Option<Slot> {
        let mut node = Self::ROOT;
        for segment in path.split('.') {
            if segment.is_empty() {
                return None;
            }
            node = match self.child(node, segment) {
                Some(child) => child,
                None => {
                    let child = NodeId::try_from(self.nodes.len()).ok()?;
                    if self.nodes[node as usize].children.len() >= usize::from(u16::MAX / 4) {
                        return None;
                    }
                    self.nodes.push(Node::default());
                    let parent = &mut self.nodes[node as usize];
                    parent.children.push((segment.into(), child));
                    parent.index();
                    child
                }
            };
        }
        if let Some(slot) = self.nodes[node as usize].slot {
            return Some(slot);
        }
        let slot = Slot::try_from(self.paths.len()).ok()?;
        self.nodes[node as usize].slot = Some(slot);
        self.paths.push(path.into());
        Some(slot)
    }

    /// The node for member `name` below `node`, if any path goes through it.
    #[inline]
    pub fn child(&self, node: NodeId, name: &str) -> Option<NodeId> {
        self.child_in(node, name.as_bytes(), 0, name.len())
    }

    /// [`Self::child`] for the name that is the `len` bytes of `b` from `start`.
    #[inline(always)]
    pub(crate) fn child_in(
        &self,
        node: NodeId,
        b: &[u8],
        start: usize,
        len: usize,
    ) -> Option<NodeId> {
        let node = &self.nodes[node as usize];
        let mask = node.table.len().checked_sub(1)?;
        let words = Words::of(b, start, len);
        let mut at = words.hash(mask);
        loop {
            let entry = usize::from(*node.table.get(at)?).checked_sub(1)?;
            if node.words.get(entry) == Some(&words)
                && (len <= 16
                    || node
                        .children
                        .get(entry)
                        .map(|(name, _)| name.as_bytes().get(16..))
                        == Some(b.get(start + 16..start + len)))
            {
                return node.children.get(entry).map(|(_, id)| *id);
            }
            at = (at + 1) & mask;
        }
    }

    /// The key whose opening quote is at `at` in `b`, recognised by its bytes.
    #[inline(always)]
    pub(crate) fn recognise(&self, node: NodeId, b: &[u8], at: usize) -> Recognised {
        let node = &self.nodes[node as usize];
        let Some(words) = b.get(at + 1..at + 17) else {
            return Recognised::Unsure;
        };
        let (Some(first), Some(second)) = (words.first_chunk::<8>(), words.last_chunk::<8>())
        else {
            return Recognised::Unsure;
        };
        let (first, second) = (u64::from_le_bytes(*first), u64::from_le_bytes(*second));
        let Some(&(start, end)) = node.buckets.get(bucket(first)) else {
            return Recognised::Unsure;
        };
        for pattern in node
            .patterns
            .get(usize::from(start)..usize::from(end))
            .unwrap_or_default()
        {
            if first & pattern.first_mask == pattern.first
                && second & pattern.second_mask == pattern.second
                && (pattern.rest.is_empty()
                    || b.get(at + 17..at + 17 + pattern.rest.len()) == Some(&*pattern.rest))
            {
                return Recognised::Child(pattern.child, at + pattern.len + 2);
            }
        }
        Recognised::NoChild
    }

    /// The names below `node` with their nodes.
    pub fn children(&self, node: NodeId) -> impl Iterator<Item = (&str, NodeId)> {
        self.nodes[node as usize]
            .children
            .iter()
            .map(|(name, id)| (&**name, *id))
    }

    /// Whether some path goes below `node`.
    #[inline]
    pub fn has_children(&self, node: NodeId) -> bool {
        !self.nodes[node as usize].children.is_empty()
    }

    /// The slot of the path that ends at `node`, if one does.
    #[inline]
    pub fn slot(&self, node: NodeId) -> Option<Slot> {
        self.nodes[node as usize].slot
    }

    /// How many distinct paths (and so slots) there are.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The path of `slot`, for messages and `radar map`'s report.
    pub fn path(&self, slot: Slot) -> &str {
        &self.paths[usize::from(slot)]
    }
}

/// One record's captured values, by slot. Sparse: a mapping has many paths (a preset
/// names each property under two objects) of which a record holds a few, so only those
/// are written and dropped; on the stack for the usual mapping.
#[derive(Debug)]
pub struct Captures<'a> {
    /// Per slot below [`NEAR`], one more than the index of its value in `values`; 0
    /// when none. An array rather than a `SmallVec` sized per record: zeroed by a few
    /// stores, and indexed without asking where it lives.
    near: [u16; NEAR],
    /// The same for the slots from [`NEAR`] on (allocated only for such a mapping).
    far: Vec<u16>,
    values: SmallVec<[Captured<'a>; 16]>,
    /// A bit per slot below 128 that has a value: a reader of several paths, none
    /// captured (most of a preset's thirty property paths), is passed over by one test
    /// ([`Captures::any`]) instead of a lookup per path.
    present: u128,
    slots: usize,
}

/// The slots [`Captures`] indexes in line.
const NEAR: usize = 64;

impl<'a> Captures<'a> {
    #[inline]
    pub fn new(slots: usize) -> Self {
        Captures {
            near: [0; NEAR],
            far: vec![0; slots.saturating_sub(NEAR)],
            values: SmallVec::new(),
            present: 0,
            slots,
        }
    }

    /// The bits [`Captures::any`] tests for `slots`, and whether some slot is past them.
    pub(crate) fn mask(slots: &[Slot]) -> (u128, bool) {
        slots.iter().fold((0, false), |(mask, beyond), slot| {
            match 1u128.checked_shl(u32::from(*slot)) {
                Some(bit) => (mask | bit, beyond),
                None => (mask, true),
            }
        })
    }

    /// Whether some slot of `mask` (from [`Captures::mask`]) may have a value.
    #[inline(always)]
    pub(crate) fn any(&self, (mask, beyond): (u128, bool)) -> bool {
        beyond || self.present & mask != 0
    }

    #[inline(always)]
    fn entry(&self, slot: Slot) -> Option<&u16> {
        let slot = usize::from(slot);
        if slot >= self.slots {
            return None;
        }
        match slot.checked_sub(NEAR) {
            None => self.near.get(slot),
            Some(far) => self.far.get(far),
        }
    }

    /// Records `value` at `slot`; a later value at the same path replaces an earlier one
    /// (a repeated JSON member: the last wins, as in serde_json's `Value`).
    #[inline(always)]
    pub fn set(&mut self, slot: Slot, value: Captured<'a>) {
        let index = usize::from(slot);
        if index >= self.slots {
            return;
        }
        let entry = match index.checked_sub(NEAR) {
            None => self.near.get_mut(index),
            Some(far) => self.far.get_mut(far),
        };
        let Some(entry) = entry else {
            return;
        };
        if let Some(bit) = 1u128.checked_shl(u32::from(slot)) {
            self.present |= bit;
        }
        match usize::from(*entry).checked_sub(1) {
            Some(at) => self.values[at] = value,
            None => {
                self.values.push(value);
                // At most one value per slot, and slots fit a `u16`.
                *entry = self.values.len() as u16;
            }
        }
    }

    #[inline]
    pub fn get(&self, slot: Slot) -> Option<&Captured<'a>> {
        let at = usize::from(*self.entry(slot)?).checked_sub(1)?;
        self.values.get(at)
    }

    /// Forgets every value (a decoder that gives up part way, before another try).
    pub fn clear(&mut self) {
        self.near = [0; NEAR];
        self.far.iter_mut().for_each(|entry| *entry = 0);
        self.values.clear();
        self.present = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_share_their_prefixes_and_keep_one_slot_each() {
        let mut trie = PathTrie::default();
        let group = trie.insert("context.groupId").unwrap();
        let ip = trie.insert("context.ip").unwrap();
        assert_eq!(trie.insert("context.groupId"), Some(group));
        assert_ne!(group, ip);
        let context = trie.child(PathTrie::ROOT, "context").unwrap();
        assert_eq!(trie.slot(context), None);
        let leaf = trie.child(context, "groupId").unwrap();
        assert_eq!(trie.slot(leaf), Some(group));
        assert_eq!(trie.path(ip), "context.ip");
        assert_eq!(trie.len(), 2);
        assert_eq!(trie.insert("context..x"), None);
        assert_eq!(trie.insert(""), None);
    }

    #[test]
    fn a_key_is_recognised_at_its_quote_or_looked_up() {
        let mut trie = PathTrie::default();
        let names = [
            "a",
            "ip",
            "seats_used",
            "active_users_30d",
            "a_name_longer_than_sixteen",
        ];
        for name in names {
            trie.insert(&format!("p.{name}")).unwrap();
        }
        let p = trie.child(PathTrie::ROOT, "p").unwrap();
        for name in names {
            let child = trie.child(p, name).unwrap();
            let text = format!("{{\"{name}\":1,\"padding\":\"................\"}}");
            let b = text.as_bytes();
            assert_eq!(
                trie.recognise(p, b, 1),
                Recognised::Child(child, name.len() + 3)
            );
            assert_eq!(trie.child_in(p, b, 2, name.len()), Some(child));
            // Fewer than sixteen bytes after the quote: looked up instead.
            let short = format!("\"{name}\"");
            let expected = if short.len() > 16 {
                Recognised::Child(child, short.len())
            } else {
                Recognised::Unsure
            };
            assert_eq!(trie.recognise(p, short.as_bytes(), 0), expected);
        }
        for other in [
            "b",
            "i",
            "ipp",
            "seats_usedx",
            "active_users_30",
            "a_name_longer_than_sixteeN",
        ] {
            let text = format!("{{\"{other}\":1,\"padding\":\"................\"}}");
            assert_eq!(trie.recognise(p, text.as_bytes(), 1), Recognised::NoChild);
            assert_eq!(trie.child(p, other), None);
        }
        // A name with a quote or a backslash is never recognised by its bytes.
        trie.insert("q.a\\b").unwrap();
        let q = trie.child(PathTrie::ROOT, "q").unwrap();
        let text = "{\"a\\\\b\":1,\"padding\":\"................\"}";
        assert_eq!(trie.recognise(q, text.as_bytes(), 1), Recognised::Unsure);
    }

    #[test]
    fn captures_hold_one_value_per_slot_near_and_far() {
        let mut captures = Captures::new(200);
        for slot in [3u16, 70, 150, 199] {
            assert_eq!(captures.get(slot), None);
            captures.set(slot, Captured::Int(i64::from(slot)));
        }
        captures.set(70, Captured::Bool(true));
        captures.set(200, Captured::Null);
        assert_eq!(captures.get(3), Some(&Captured::Int(3)));
        assert_eq!(captures.get(70), Some(&Captured::Bool(true)));
        assert_eq!(captures.get(150), Some(&Captured::Int(150)));
        assert_eq!(captures.get(199), Some(&Captured::Int(199)));
        assert_eq!(captures.get(4), None);
        assert_eq!(captures.get(200), None);
        assert!(captures.any(Captures::mask(&[1, 3])));
        assert!(!captures.any(Captures::mask(&[1, 2])));
        assert!(captures.any(Captures::mask(&[150])));
        captures.clear();
        assert_eq!(captures.get(3), None);
        assert_eq!(captures.get(150), None);
        assert!(!captures.any(Captures::mask(&[3, 70])));
        let mut small = Captures::new(2);
        small.set(5, Captured::Null);
        assert_eq!(small.get(5), None);
    }
}
