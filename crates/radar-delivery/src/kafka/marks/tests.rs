use proptest::prelude::*;

use super::*;

#[test]
fn a_mark_says_what_is_settled_above_the_first_unsettled_record() {
    let mut marks = PartitionMarks::default();
    for offset in 10..15 {
        marks.read("hook", offset);
    }
    assert_eq!(marks.unpublished("hook", 15), None, "nothing changed yet");
    for offset in [10, 11, 12] {
        marks.started("hook", offset);
    }
    let (mark, version) = marks.unpublished("hook", 15).unwrap();
    assert_eq!(
        mark,
        Mark {
            below: 10,
            settled: vec![],
            in_flight: vec![10, 11, 12],
        }
    );
    marks.published("hook", version);
    marks.settled("hook", 11);
    marks.settled("hook", 10);
    let (mark, _) = marks.unpublished("hook", 15).unwrap();
    assert_eq!(
        mark,
        Mark {
            below: 12,
            settled: vec![],
            in_flight: vec![12],
        }
    );
    for offset in [12, 13, 14] {
        marks.settled("hook", offset);
    }
    assert_eq!(marks.unpublished("hook", 15).unwrap().0.below, 15);
    assert_eq!(marks.unpublished("other", 15), None);
}

#[test]
fn settled_records_above_an_unsettled_one_are_listed_as_ranges() {
    let mut marks = PartitionMarks::default();
    for offset in [3, 7, 8, 9, 12] {
        marks.read("hook", offset);
    }
    for offset in [7, 8, 9, 12] {
        marks.settled("hook", offset);
    }
    let (mark, _) = marks.unpublished("hook", 13).unwrap();
    assert_eq!(mark.highest(), 13);
    assert_eq!((mark.below, mark.settled), (3, vec![[7, 10], [12, 13]]));
}

/// The next owner skips what the last one settled, sends again what it had in flight,
/// and keeps the inherited marks in its own until it has read past them.
#[test]
fn a_new_owner_takes_on_the_marks_it_inherits() {
    let mut marks = PartitionMarks::default();
    marks.inherit([(
        "hook".to_owned(),
        Mark {
            below: 20,
            settled: vec![[22, 23], [25, 26]],
            in_flight: vec![21, 23],
        },
    )]);
    let fates: Vec<Inherited> = (18..27).map(|o| marks.inherited("hook", o)).collect();
    use Inherited::*;
    assert_eq!(
        fates,
        [
            Settled, Settled, Open, InFlight, Settled, InFlight, Open, Settled, Open
        ]
    );
    assert_eq!(marks.inherited("other", 5), Open);
    assert_eq!(
        marks.unpublished("hook", 0),
        None,
        "the ledger holds it already"
    );
    // It reads 21 (skipping 20, 22) and settles it; 23 is not read yet.
    marks.read("hook", 21);
    marks.settled("hook", 21);
    let (mark, _) = marks.unpublished("hook", 23).unwrap();
    assert_eq!(
        mark,
        Mark {
            below: 23,
            settled: vec![[25, 26]],
            in_flight: vec![23],
        },
        "what it read is settled, the earlier owner's 23 is still in flight"
    );
    marks.read("hook", 23);
    marks.started("hook", 23);
    marks.read("hook", 24);
    let (mark, _) = marks.unpublished("hook", 25).unwrap();
    assert_eq!((mark.below, mark.in_flight), (23, vec![23]));
    assert_eq!(mark.settled, vec![[25, 26]]);
}

#[test]
fn a_mark_is_published_once_per_change() {
    let mut marks = PartitionMarks::default();
    marks.read("hook", 0);
    marks.started("hook", 0);
    assert!(marks.in_flight());
    let (_, version) = marks.unpublished("hook", 1).unwrap();
    marks.settled("hook", 0);
    assert!(!marks.in_flight());
    // The earlier version's acknowledgement does not cover the later change.
    marks.published("hook", version);
    let (mark, later) = marks.unpublished("hook", 1).unwrap();
    assert_eq!(mark.below, 1);
    marks.published("hook", later);
    assert_eq!(marks.unpublished("hook", 1), None);
    // A start taken back is no longer in flight, and says so.
    marks.read("hook", 1);
    marks.started("hook", 1);
    marks.unstarted("hook", 1);
    assert!(!marks.in_flight());
    let (mark, version) = marks.unpublished("hook", 2).unwrap();
    assert_eq!(mark.in_flight, Vec::<i64>::new());
    marks.published("hook", version);
    // A delivery not read here (its partition moved) changes nothing.
    marks.started("hook", 5);
    marks.settled("hook", 5);
    assert_eq!(marks.unpublished("hook", 2), None);
}

#[test]
fn a_mark_lists_a_bounded_number_of_ranges() {
    let mut marks = PartitionMarks::default();
    let records = 2 * MAX_RANGES as i64 + 2;
    for offset in 0..records {
        marks.read("hook", offset);
    }
    // Every other record settled, above an unsettled first one.
    for offset in (1..records).step_by(2) {
        marks.settled("hook", offset);
    }
    let (mark, _) = marks.unpublished("hook", records).unwrap();
    assert_eq!(mark.below, 0);
    assert_eq!(mark.settled.len(), MAX_RANGES);
    assert_eq!(mark.settled[0], [1, 2]);
}

/// What one owner reads, starts and settles of a partition, step by step.
#[derive(Debug, Clone)]
enum Step {
    Start(prop::sample::Index),
    Settle(prop::sample::Index),
    /// The owner dies; the next takes over from the published mark.
    TakeOver,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any::<prop::sample::Index>().prop_map(Step::Start),
        4 => any::<prop::sample::Index>().prop_map(Step::Settle),
        1 => Just(Step::TakeOver),
    ]
}

proptest! {
    /// Across any number of owners, each taking over from the last published mark and
    /// reading the partition from its first offset, a mark never calls settled a record
    /// that is not, and names every record in flight that is not settled.
    #[test]
    fn a_mark_is_never_wrong_across_owners(
        records in 1usize..40,
        steps in prop::collection::vec(step(), 0..150),
    ) {
        let end = records as i64;
        let (mut settled, mut in_flight) = (BTreeSet::new(), BTreeSet::new());
        let mut ledger: Option<Mark> = None;
        let new_owner = |ledger: &Option<Mark>, settled: &BTreeSet<i64>| {
            let mut marks = PartitionMarks::default();
            marks.inherit(ledger.clone().map(|mark| ("hook".to_owned(), mark)));
            for offset in 0..end {
                // A record the ledger says is settled is skipped; the rest is read.
                let fate = marks.inherited("hook", offset);
                if fate == Inherited::Settled {
                    assert!(settled.contains(&offset), "offset {offset} skipped unsettled");
                } else {
                    marks.read("hook", offset);
                    if settled.contains(&offset) {
                        // Settled by an owner whose mark of it was lost: sent again.
                        marks.settled("hook", offset);
                    }
                }
            }
            marks
        };
        let mut marks = new_owner(&ledger, &settled);
        for step in steps {
            match step {
                Step::Start(pick) => {
                    let offset = pick.index(records) as i64;
                    if !settled.contains(&offset) {
                        marks.started("hook", offset);
                        in_flight.insert(offset);
                    }
                }
                Step::Settle(pick) => {
                    let offset = pick.index(records) as i64;
                    marks.settled("hook", offset);
                    in_flight.remove(&offset);
                    settled.insert(offset);
                }
                Step::TakeOver => {
                    in_flight.clear();
                    marks = new_owner(&ledger, &settled);
                    continue;
                }
            }
            let Some((mark, version)) = marks.unpublished("hook", end) else {
                continue;
            };
            for offset in 0..end {
                let claimed = offset < mark.below
                    || mark.settled.iter().any(|r| r[0] <= offset && offset < r[1]);
                prop_assert!(!claimed || settled.contains(&offset), "offset {} claimed", offset);
            }
            for offset in &in_flight {
                prop_assert!(mark.in_flight.contains(offset), "{} in flight, not marked", offset);
            }
            marks.published("hook", version);
            ledger = Some(mark);
        }
    }
}
