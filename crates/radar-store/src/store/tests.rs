//! The store file against damage, crashes and misuse: checkpoints, fallbacks, files moved aside.

use super::value::HEADER;
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
