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
    /// Member names below this node, with their nodes; few per node, so a list.
    children: Vec<(Box<str>, NodeId)>,
    slot: Option<Slot>,
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
                    self.nodes.push(Node::default());
                    self.nodes[node as usize]
                        .children
                        .push((segment.into(), child));
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
        self.nodes[node as usize]
            .children
            .iter()
            .find(|(child, _)| child.len() == name.len() && **child == *name)
            .map(|(_, id)| *id)
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
    /// Per slot, one more than the index of its value in `values`; 0 when none.
    index: SmallVec<[u16; 64]>,
    values: SmallVec<[Captured<'a>; 16]>,
}

impl<'a> Captures<'a> {
    pub fn new(slots: usize) -> Self {
        let mut index = SmallVec::new();
        index.resize(slots, 0);
        Captures {
            index,
            values: SmallVec::new(),
        }
    }

    /// Records `value` at `slot`; a later value at the same path replaces an earlier one
    /// (a repeated JSON member: the last wins, as in serde_json's `Value`).
    #[inline]
    pub fn set(&mut self, slot: Slot, value: Captured<'a>) {
        let Some(entry) = self.index.get_mut(usize::from(slot)) else {
            return;
        };
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
        let at = usize::from(*self.index.get(usize::from(slot))?).checked_sub(1)?;
        self.values.get(at)
    }

    /// Forgets every value (a decoder that gives up part way, before another try).
    pub fn clear(&mut self) {
        self.index.iter_mut().for_each(|entry| *entry = 0);
        self.values.clear();
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
}
