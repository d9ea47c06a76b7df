//! The companies a CRM destination has found, remembered for a while: a burst of
//! opportunities for one account then costs one lookup, not one per opportunity, and a
//! company's new owner is seen within the TTL. Pure: the time comes in as an argument.

use std::collections::HashMap;

/// The most companies remembered; past it, expired entries go first, then everything.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug)]
pub struct TtlCache<V> {
    entries: HashMap<String, (V, u64)>,
}

impl<V> Default for TtlCache<V> {
    fn default() -> TtlCache<V> {
        TtlCache {
            entries: HashMap::new(),
        }
    }
}

impl<V: Clone> TtlCache<V> {
    /// The value for `key` if it was inserted less than its TTL before `now_ms`.
    pub fn get(&self, key: &str, now_ms: u64) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(_, expires_ms)| now_ms < *expires_ms)
            .map(|(value, _)| value.clone())
    }

    pub fn insert(&mut self, key: &str, value: V, now_ms: u64, ttl_ms: u64) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, (_, expires_ms)| now_ms < *expires_ms);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries
            .insert(key.to_owned(), (value, now_ms.saturating_add(ttl_ms)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_lives_for_its_ttl() {
        let mut cache = TtlCache::default();
        cache.insert("acme", 7, 1_000, 500);
        assert_eq!(cache.get("acme", 1_000), Some(7));
        assert_eq!(cache.get("acme", 1_499), Some(7));
        assert_eq!(cache.get("acme", 1_500), None);
        assert_eq!(cache.get("globex", 1_000), None);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_first() {
        let mut cache = TtlCache::default();
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("old-{i}"), i, 0, 10);
        }
        cache.insert("live", 1, 0, 1_000);
        cache.insert("new", 2, 100, 1_000);
        assert_eq!(cache.get("live", 100), Some(1));
        assert_eq!(cache.get("new", 100), Some(2));
        assert_eq!(cache.entries.len(), 2);
    }
}
