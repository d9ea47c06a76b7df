//! A poll round's records grouped by partition, for the partitions' workers.

/// `items` grouped by `key`, each group in the items' order, the groups in the order
/// their keys first appear.
///
/// Consecutive records mostly share a partition (a fetch returns runs of one), so each
/// item is compared with the last group first, and a round holds few partitions, so a
/// linear search finds the others: no hashing per record.
pub(crate) fn group_runs<T, K: PartialEq>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> Vec<(K, Vec<T>)> {
    let mut groups: Vec<(K, Vec<T>)> = Vec::new();
    for item in items {
        let k = key(&item);
        let at = match groups.last() {
            Some((last, _)) if *last == k => groups.len() - 1,
            _ => match groups.iter().position(|(g, _)| *g == k) {
                Some(at) => at,
                None => {
                    groups.push((k, Vec::new()));
                    groups.len() - 1
                }
            },
        };
        groups[at].1.push(item);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runs_and_returns_to_a_partition_keep_its_order() {
        let records = [
            ("a", 0, 1),
            ("a", 0, 2),
            ("b", 0, 1),
            ("a", 1, 1),
            ("a", 0, 3),
        ];
        let groups = group_runs(records, |&(topic, partition, _)| (topic, partition));
        let offsets: Vec<_> = groups
            .iter()
            .map(|(key, items)| (*key, items.iter().map(|r| r.2).collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            offsets,
            [
                (("a", 0), vec![1, 2, 3]),
                (("b", 0), vec![1]),
                (("a", 1), vec![1])
            ]
        );
    }

    proptest! {
        /// Every item lands once, in its key's group, in order: the same as filtering
        /// the items by each distinct key.
        #[test]
        fn grouping_is_filtering_by_each_key(items in proptest::collection::vec((0u8..4, 0u32..1000), 0..200)) {
            let groups = group_runs(items.iter().copied(), |&(key, _)| key);
            let mut keys: Vec<u8> = Vec::new();
            for (key, _) in &items {
                if !keys.contains(key) {
                    keys.push(*key);
                }
            }
            prop_assert_eq!(groups.iter().map(|(k, _)| *k).collect::<Vec<_>>(), keys);
            for (key, group) in groups {
                let expected: Vec<_> = items.iter().copied().filter(|(k, _)| *k == key).collect();
                prop_assert_eq!(group, expected);
            }
        }
    }
}
