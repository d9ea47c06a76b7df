//! A partition worker's restore, checkpoints and dead letters, without a broker.

use super::*;

fn settings() -> Arc<Settings> {
    crate::default_settings::default_settings()
}

fn events(n: u64) -> Vec<String> {
    events_over(40, n)
}

fn events_over(accounts: u64, n: u64) -> Vec<String> {
    let opts = radar_gen::Options {
        accounts,
        events: n,
        seed: 3,
        invalid_ratio: 0.02,
        ..Default::default()
    };
    radar_gen::Generator::new(opts)
        .expect("valid options")
        .collect()
}

/// Records keyed by their account, as producers key them.
fn records(lines: &[String], first_offset: i64) -> Vec<KafkaRecord<'_>> {
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| KafkaRecord {
            headers: &[],
            offset: first_offset + i as i64,
            payload: l.as_bytes(),
            timestamp: None,
            key: radar_gen::account_key(l),
        })
        .collect()
}

fn ids(opportunities: &[Opportunity]) -> Vec<String> {
    opportunities
        .iter()
        .map(|o| o.opportunity_id.to_string())
        .collect()
}

#[test]
fn a_restart_from_the_checkpoint_gives_the_same_opportunities() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = events(3_000);
    let all = records(&lines, 0);
    let now = Instant::now();

    // Uninterrupted.
    let (mut whole, _) =
        PartitionWorker::restore(settings(), &store, None, "uninterrupted", 0, now).unwrap();
    let (mut expected, mut dead) = (Vec::new(), Vec::new());
    whole.process(&all, &mut expected, &mut dead);
    assert!(!expected.is_empty() && !dead.is_empty());

    // Checkpoint after 1,000 records, process 700 more, then "crash" (drop without
    // checkpointing) and restart: the restart resumes at 1,000 and redoes the rest.
    let (mut first, restored) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    assert_eq!(restored.resume_at, None);
    let mut got = Vec::new();
    first.process(&all[..1_000], &mut got, &mut Vec::new());
    assert_eq!(first.checkpoint(&store, None, now).unwrap(), Some(1_000));
    first.process(&all[1_000..1_700], &mut Vec::new(), &mut Vec::new());
    drop(first);

    let (mut second, restored) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    assert_eq!(restored.resume_at, Some(1_000));
    assert_eq!(restored.skipped, 0);
    assert!(restored.accounts > 0);
    let resume = usize::try_from(restored.resume_at.unwrap()).unwrap();
    second.process(&all[resume..], &mut got, &mut Vec::new());
    assert_eq!(ids(&got), ids(&expected));
    assert_eq!(got, expected);
}

/// Checkpoints every 100 records over 1,000 accounts: after the first snapshot most
/// are changes, a snapshot comes back once they outgrow it, and a restart from the
/// chain carries on exactly as an uninterrupted run.
#[test]
fn checkpoints_write_changes_and_a_restart_rebuilds_the_state_from_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = events_over(1_000, 3_000);
    let all = records(&lines, 0);
    let now = Instant::now();
    let (mut whole, _) =
        PartitionWorker::restore(settings(), &store, None, "uninterrupted", 0, now).unwrap();
    let mut expected = Vec::new();
    whole.process(&all, &mut expected, &mut Vec::new());

    let (mut first, _) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    let mut got = Vec::new();
    let mut contents = Vec::new();
    for chunk in all[..2_050].chunks(100) {
        first.process(chunk, &mut got, &mut Vec::new());
        first.checkpoint(&store, None, now).unwrap();
        let newest = store
            .load_checkpoint("events", 0)
            .unwrap()
            .checkpoint
            .unwrap();
        contents.push(newest.content);
    }
    assert_eq!(contents[0], Content::Snapshot);
    let changes = contents.iter().filter(|c| **c == Content::Changes).count();
    assert!(
        changes > contents.len() / 2 && changes < contents.len() - 1,
        "mostly changes, with a snapshot again later: {contents:?}"
    );
    drop(first);

    let (mut second, restored) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    assert_eq!((restored.resume_at, restored.skipped), (Some(2_050), 0));
    second.process(&all[2_050..], &mut got, &mut Vec::new());
    assert_eq!(got, expected);
    assert_eq!(
        second.engine().tracked_accounts(),
        whole.engine().tracked_accounts()
    );
}

/// Checkpoints that changed no account (here, of rejected records only) still count:
/// after `MAX_CHANGES` of them a snapshot comes, so the chain a restore reads stays
/// short.
#[test]
fn a_snapshot_comes_after_at_most_max_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = events_over(1_000, 2_000);
    let now = Instant::now();
    let (mut worker, _) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    worker.process(&records(&lines, 0), &mut Vec::new(), &mut Vec::new());
    worker.checkpoint(&store, None, now).unwrap();
    let newest = |store: &Store| {
        store
            .load_checkpoint("events", 0)
            .unwrap()
            .checkpoint
            .unwrap()
            .content
    };
    assert_eq!(newest(&store), Content::Snapshot);
    let bad = "not json".to_owned();
    for n in 1..=PartitionWorker::MAX_CHANGES + 1 {
        let offset = 2_000 + i64::from(n);
        let mut dead = Vec::new();
        worker.process(
            &records(std::slice::from_ref(&bad), offset),
            &mut Vec::new(),
            &mut dead,
        );
        assert_eq!(dead.len(), 1);
        worker.checkpoint(&store, None, now).unwrap();
        let expected = if n <= PartitionWorker::MAX_CHANGES {
            Content::Changes
        } else {
            Content::Snapshot
        };
        assert_eq!(
            newest(&store),
            expected,
            "checkpoint {n} after the snapshot"
        );
    }
    let (_, restored) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    assert_eq!(
        restored.resume_at,
        Some(2_000 + i64::from(PartitionWorker::MAX_CHANGES) + 2)
    );
}

#[test]
fn records_already_in_the_state_are_not_applied_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = events(600);
    let all = records(&lines, 0);
    let now = Instant::now();
    let (mut once, _) = PartitionWorker::restore(settings(), &store, None, "a", 0, now).unwrap();
    let mut expected = Vec::new();
    once.process(&all, &mut expected, &mut Vec::new());

    let (mut twice, _) = PartitionWorker::restore(settings(), &store, None, "b", 0, now).unwrap();
    let mut got = Vec::new();
    twice.process(&all[..400], &mut got, &mut Vec::new());
    twice.process(&all[200..], &mut got, &mut Vec::new());
    assert_eq!(got, expected);
    assert_eq!(twice.stats().read, 600);
}

#[test]
fn rejected_records_become_dead_letters_with_their_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = vec![
        r#"{"event_id":"e1","type":"user_login","account_id":"a","timestamp":"2026-03-01T00:00:00Z"}"#.to_owned(),
        "{not json".to_owned(),
        r#"{"event_id":"e3","type":"user_login","account_id":"a","timestamp":"2026-03-01T05:00:00Z"}"#.to_owned(),
    ];
    let (mut worker, _) =
        PartitionWorker::restore(settings(), &store, None, "events", 2, Instant::now()).unwrap();
    let mut batch = records(&lines, 40);
    // The record time says 02:00: the third event is three hours ahead of it.
    batch[2].timestamp = Some(radar_core::time::parse_rfc3339("2026-03-01T02:00:00Z").unwrap());
    let mut dead = Vec::new();
    worker.process(&batch, &mut Vec::new(), &mut dead);
    let reasons: Vec<(i64, RejectReason)> = dead.iter().map(|d| (d.offset, d.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (41, RejectReason::InvalidJson),
            (42, RejectReason::TooFarInFuture)
        ]
    );
    assert_eq!(
        worker.checkpoint(&store, None, Instant::now()).unwrap(),
        Some(43),
        "the offset moves past them"
    );
}

#[test]
fn checkpoints_are_due_by_count_or_time_and_only_with_news() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let policy = CheckpointPolicy {
        every_events: 100,
        every: Duration::from_secs(5),
    };
    let start = Instant::now();
    let (mut worker, _) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, start).unwrap();
    assert!(
        !worker.checkpoint_due(start + Duration::from_secs(60), &policy),
        "nothing new yet"
    );
    assert_eq!(worker.checkpoint(&store, None, start).unwrap(), None);

    let lines = events(150);
    worker.process(&records(&lines[..50], 0), &mut Vec::new(), &mut Vec::new());
    assert!(!worker.checkpoint_due(start + Duration::from_secs(1), &policy));
    assert!(worker.checkpoint_due(start + Duration::from_secs(5), &policy));
    worker.process(
        &records(&lines[50..150], 50),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    assert!(worker.checkpoint_due(start + Duration::from_secs(1), &policy));
    let later = start + Duration::from_secs(2);
    assert_eq!(worker.checkpoint(&store, None, later).unwrap(), Some(150));
    assert!(!worker.checkpoint_due(later + Duration::from_secs(60), &policy));
}

#[test]
fn a_damaged_newest_checkpoint_restores_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("state.redb")).unwrap();
    let lines = events(200);
    let now = Instant::now();
    let (mut worker, _) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    worker.process(&records(&lines[..100], 0), &mut Vec::new(), &mut Vec::new());
    worker.checkpoint(&store, None, now).unwrap();
    // A newer checkpoint whose checksum holds but whose snapshot is not one.
    store
        .save_checkpoint(
            "events",
            0,
            &Checkpoint {
                offset: 150,
                content: Content::Snapshot,
                state: vec![radar_core::snapshot::FORMAT_VERSION, 0xff, 0xff],
            },
        )
        .unwrap();
    let (worker, restored) =
        PartitionWorker::restore(settings(), &store, None, "events", 0, now).unwrap();
    assert_eq!(restored.resume_at, Some(100));
    assert_eq!(restored.skipped, 1);
    assert!(worker.engine().tracked_accounts() > 0);
}
