use proptest::prelude::*;

use super::*;

fn at(p: i32) -> TopicPartition {
    ("opportunities".into(), p)
}

fn assigned(hand: &mut InHand, partition: i32) -> u64 {
    hand.assign(&at(partition));
    hand.epoch(&at(partition)).unwrap()
}

fn keys(seq: u64, destinations: &[&str]) -> Vec<QueueKey> {
    destinations
        .iter()
        .map(|d| ((*d).to_owned(), 0, seq))
        .collect()
}

#[test]
fn a_partition_commits_up_to_its_first_unsettled_record() {
    let mut hand = InHand::new(100);
    let epoch = assigned(&mut hand, 0);
    assert_eq!(hand.to_commit(), vec![], "nothing read yet");
    for offset in 0..3 {
        let seq = hand.next_seq();
        assert!(hand.read(&at(0), epoch, offset, 0, keys(seq, &["crm", "slack"])));
    }
    assert_eq!(hand.to_commit(), vec![(at(0), 0)]);
    // The second record settles first: the commit cannot pass the first.
    assert!(hand.settled(101, "crm"));
    assert!(hand.settled(101, "slack"));
    assert_eq!(hand.to_commit(), vec![]);
    assert!(hand.settled(100, "crm"));
    assert_eq!(
        hand.committable(&at(0)),
        Some(0),
        "slack is still unsettled"
    );
    assert!(hand.settled(100, "slack"));
    assert_eq!(hand.to_commit(), vec![(at(0), 2)]);
    assert!(hand.settled(102, "crm") && hand.settled(102, "slack"));
    assert_eq!(hand.to_commit(), vec![(at(0), 3)]);
    assert!(hand.is_empty());
}

#[test]
fn a_record_no_destination_wants_is_settled_at_once() {
    let mut hand = InHand::new(0);
    let epoch = assigned(&mut hand, 1);
    assert!(hand.read(&at(1), epoch, 41, 0, Vec::new()));
    assert_eq!(hand.committable(&at(1)), Some(42));
    assert!(hand.is_empty());
}

#[test]
fn a_revoked_partition_hands_back_its_unsettled_deliveries_and_forgets_them() {
    let mut hand = InHand::new(7);
    let (zero, one) = (assigned(&mut hand, 0), assigned(&mut hand, 1));
    assert!(hand.read(&at(0), zero, 5, 0, keys(7, &["crm", "slack"])));
    assert!(hand.read(&at(1), one, 9, 0, keys(8, &["crm"])));
    assert!(hand.settled(7, "crm"));
    assert_eq!(hand.revoke(&at(0)), keys(7, &["slack"]));
    assert_eq!(hand.committable(&at(0)), None);
    // Its delivery finishing late changes nothing.
    assert!(!hand.settled(7, "slack"));
    assert_eq!(hand.committable(&at(1)), Some(9));
    assert_eq!(hand.len(), 1);
}

/// Records fetched before a rebalance took their partition away, handed on after it:
/// holding them would let the commit pass records the new owner has not settled.
#[test]
fn a_record_read_before_its_partition_was_revoked_is_not_held() {
    let mut hand = InHand::new(0);
    let before = assigned(&mut hand, 0);
    hand.revoke(&at(0));
    assert!(!hand.read(&at(0), before, 90, 0, keys(0, &["crm"])));
    assert_eq!(hand.committable(&at(0)), None);
    // Revoked and assigned again in one rebalance: the stale read is still refused,
    // and the partition commits only what is read under its new assignment.
    let after = assigned(&mut hand, 0);
    assert!(!hand.read(&at(0), before, 90, 0, Vec::new()));
    assert_eq!(hand.committable(&at(0)), None);
    let seq = hand.next_seq();
    assert!(hand.read(&at(0), after, 40, 0, keys(seq, &["crm"])));
    assert_eq!(hand.committable(&at(0)), Some(40));
}

/// A retry due in hours holds the commit of its partition only until it has been
/// held for a while with settled records behind it.
#[test]
fn a_long_retry_with_settled_records_behind_it_is_blocking() {
    const HOUR: u64 = 3_600_000;
    let mut hand = InHand::new(0);
    let epoch = assigned(&mut hand, 0);
    let far = |seq| vec![("crm".to_owned(), 10 * HOUR, seq)];
    let near = |seq| vec![("crm".to_owned(), 1_000, seq)];
    // Offsets: 0 far, 1 due soon, 2 far, 3 settled later.
    for (offset, wanted) in [(0, far(0)), (1, near(1)), (2, far(2)), (3, near(3))] {
        assert!(hand.read(&at(0), epoch, offset, 100, wanted));
    }
    let blocking = |hand: &InHand, now| hand.blocking("opportunities", now, 500, 5_000);
    assert_eq!(
        blocking(&hand, 1_000),
        vec![],
        "nothing settled behind them yet"
    );
    assert!(hand.settled(3, "crm"));
    // Read at 100, due in 10 h: held a quarter of that, at most 16 × 500 ms.
    assert_eq!(blocking(&hand, 8_099), vec![], "not held long enough");
    // The one due soon is left to be sent; both far ones block.
    assert_eq!(blocking(&hand, 8_100), [far(0), far(2)].concat());
    assert_eq!(hand.blocking("other", 8_100, 500, 5_000), vec![]);
    assert!(hand.settled(0, "crm"));
    assert_eq!(hand.committable(&at(0)), Some(1));
    assert_eq!(hand.source(2), Some((&at(0), 2)));
}

proptest! {
    /// Whatever the order deliveries settle in, the committed offset never passes a
    /// record with an unsettled delivery, and reaches the end once all are settled.
    #[test]
    fn the_commit_never_passes_an_unsettled_record(
        wanted in prop::collection::vec(0usize..3, 1..40),
        order in prop::collection::vec(any::<prop::sample::Index>(), 0..80),
    ) {
        let destinations = ["a", "b", "c"];
        let mut hand = InHand::new(0);
        let epoch = assigned(&mut hand, 0);
        let mut unsettled: Vec<(u64, i64, &str)> = Vec::new();
        for (offset, n) in wanted.iter().enumerate() {
            let seq = hand.next_seq();
            let offset = offset as i64;
            prop_assert!(hand.read(&at(0), epoch, offset, 0, keys(seq, &destinations[..*n])));
            unsettled.extend(destinations[..*n].iter().map(|d| (seq, offset, *d)));
        }
        for pick in order {
            if unsettled.is_empty() {
                break;
            }
            let (seq, _, destination) = unsettled.remove(pick.index(unsettled.len()));
            prop_assert!(hand.settled(seq, destination));
            let committable = hand.committable(&at(0)).unwrap();
            let first_open = unsettled.iter().map(|(_, o, _)| *o).min();
            prop_assert_eq!(committable, first_open.unwrap_or(wanted.len() as i64));
        }
        for (seq, _, destination) in unsettled {
            prop_assert!(hand.settled(seq, destination));
        }
        prop_assert_eq!(hand.committable(&at(0)), Some(wanted.len() as i64));
    }
}

/// An opportunity id read again in the same partition is a copy; one read under an
/// assignment that is over is neither remembered nor a copy.
#[test]
fn a_second_record_with_a_remembered_id_is_a_copy() {
    let mut hand = InHand::new(0);
    let before = assigned(&mut hand, 0);
    hand.remember_ids(&at(0), vec!["o1".into()]);
    assert!(
        !hand.first_of(&at(0), before, "o1"),
        "read back from below the commit"
    );
    assert!(hand.first_of(&at(0), before, "o2"));
    assert!(!hand.first_of(&at(0), before, "o2"));
    hand.revoke(&at(0));
    let after = assigned(&mut hand, 0);
    assert!(
        hand.first_of(&at(0), before, "o3"),
        "a stale read remembers nothing"
    );
    assert!(hand.first_of(&at(0), after, "o3"));
    assert!(
        hand.first_of(&at(0), after, "o1"),
        "a new assignment starts afresh"
    );
}

/// A partition being revoked starts nothing more, and is in flight until what it has in
/// flight settles; a delivery whose record is gone is said so; an acknowledgement of an
/// earlier assignment's marks counts for nothing.
#[test]
fn a_revoking_partition_starts_nothing_and_waits_for_what_is_in_flight() {
    let mut hand = InHand::new(0);
    let (zero, one) = (assigned(&mut hand, 0), assigned(&mut hand, 1));
    assert!(hand.read(&at(0), zero, 5, 0, keys(0, &["hook"])));
    assert!(hand.read(&at(1), one, 9, 0, keys(1, &["hook"])));
    let starting = hand.starting("hook", &[0]);
    assert_eq!((starting.going, starting.gone), (vec![0], vec![]));
    assert_eq!(starting.entries.len(), 1);
    assert_eq!(starting.entries[0].mark.in_flight, vec![5]);
    hand.published(&starting.entries);
    hand.revoking(&at(1));
    let starting = hand.starting("hook", &[1, 77]);
    assert!(starting.going.is_empty(), "revoking");
    assert_eq!(starting.gone, vec![77], "not held");
    assert!(starting.entries.is_empty());
    assert!(hand.in_flight(&[at(0)]));
    assert!(!hand.in_flight(&[at(1)]));
    assert!(hand.settled(0, "hook"));
    assert!(!hand.in_flight(&[at(0)]));
    let entries = hand.unpublished_of(&[at(0)]);
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].mark.below, 6);
    // Acknowledged after the partition was assigned again: not this assignment's.
    hand.revoke(&at(0));
    let again = assigned(&mut hand, 0);
    assert!(hand.read(&at(0), again, 6, 0, keys(2, &["hook"])));
    let current = hand.starting("hook", &[2]).entries;
    hand.published(&entries);
    assert_eq!(hand.unpublished("hook").len(), 1, "still to be written");
    hand.published(&current);
    assert!(hand.unpublished("hook").is_empty());
}

/// A delivery whose partition started being revoked while its mark was written does
/// not go, and is no longer in flight; one whose mark could not be written neither.
#[test]
fn a_start_is_confirmed_only_while_its_partition_stays() {
    let mut hand = InHand::new(0);
    let (zero, one) = (assigned(&mut hand, 0), assigned(&mut hand, 1));
    assert!(hand.read(&at(0), zero, 3, 0, keys(0, &["hook"])));
    assert!(hand.read(&at(1), one, 4, 0, keys(1, &["hook"])));
    let starting = hand.starting("hook", &[0, 1]);
    assert_eq!(starting.going, vec![0, 1]);
    hand.revoking(&at(1));
    assert_eq!(hand.confirm("hook", starting.going), vec![0]);
    assert!(!hand.in_flight(&[at(1)]), "taken back");
    assert!(hand.in_flight(&[at(0)]));
    hand.unstart("hook", &[0]);
    assert!(!hand.in_flight(&[at(0)]), "its mark was not written");
}
