//! The changelog against librdkafka's mock cluster: crashes mid-checkpoint, the local
//! store as a cache, fencing, and records a restore cannot use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::BaseProducer;

use super::*;
use crate::partition::{KafkaRecord, PartitionWorker, Restored};

fn settings() -> Arc<radar_core::Settings> {
    crate::default_settings::default_settings()
}

fn lines() -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: 200,
        events: 3_000,
        seed: 9,
        ..Default::default()
    };
    radar_gen::Generator::new(opts)
        .expect("valid options")
        .collect()
}

/// The records of `lines` from `first`, keyed by their accounts as producers key them.
fn records(lines: &[String], first: usize) -> Vec<KafkaRecord<'_>> {
    lines[first..]
        .iter()
        .enumerate()
        .map(|(i, line)| KafkaRecord {
            headers: &[],
            offset: (first + i) as i64,
            payload: line.as_bytes(),
            timestamp: None,
            key: radar_gen::account_key(line),
        })
        .collect()
}

/// `lines` through a worker with no changelog, uninterrupted: the state and output every
/// crash and restore must come back to.
fn uninterrupted(
    store: &radar_store::Store,
    lines: &[String],
) -> (PartitionWorker, Vec<radar_core::Opportunity>) {
    let (mut whole, _) =
        PartitionWorker::restore(settings(), store, None, "whole", 0, Instant::now()).unwrap();
    let mut expected = Vec::new();
    whole.process(&records(lines, 0), &mut expected, &mut Vec::new());
    (whole, expected)
}

/// Partition 0 of `events` restored from `store` and the changelog.
fn restore(store: &radar_store::Store, changelog: &Changelog) -> (PartitionWorker, Restored) {
    PartitionWorker::restore(
        settings(),
        store,
        Some(changelog),
        "events",
        0,
        Instant::now(),
    )
    .expect("the partition restores")
}

/// Whether two engines hold the same accounts in the same states (snapshot bytes
/// may differ in the order of hashed sets).
fn same_state(a: &Engine, b: &Engine) -> bool {
    a.tracked_accounts() == b.tracked_accounts()
        && a.accounts().all(|(id, state)| b.account(id) == Some(state))
}

fn ids(opportunities: &[radar_core::Opportunity]) -> Vec<String> {
    opportunities
        .iter()
        .map(|o| o.opportunity_id.to_string())
        .collect()
}

/// The mock cluster answers no topic creation: the changelog and quarantine topics are
/// made here (the tansu tests see radar create them). The source topic holds `lines`, as in production:
/// completion records cannot be past its end.
fn open(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    lines: &[String],
) -> Changelog {
    cluster
        .create_topic("radar-state", 1, 1)
        .expect("the changelog topic");
    cluster
        .create_topic("radar-state.dead-letter", 1, 1)
        .expect("the quarantine topic");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .expect("a producer");
    for line in lines {
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to("events")
                    .partition(0)
                    .key(radar_gen::account_key(line))
                    .payload(line.as_bytes()),
            )
            .map_err(|(e, _)| e)
            .expect("queued");
        producer.poll(Duration::ZERO);
    }
    producer.flush(TIMEOUT).expect("the source records");
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", cluster.bootstrap_servers());
    let config = ChangelogConfig {
        topic: "radar-state".into(),
        replication: 1,
    };
    Changelog::open(&client, &config, "events").expect("the changelog opens")
}

/// An instance crashes after writing some account records of a checkpoint but not its
/// completion record; another, on a new machine (an empty local store), restores the
/// partition from the changelog and carries on. Together they emit every opportunity
/// of an uninterrupted run, and again only some whose accounts' records were not
/// written (the same ids: at-least-once with its idempotency key).
#[test]
fn a_crash_before_the_completion_record_loses_nothing_and_repeats_only_what_was_not_written() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("events", 1, 1)
        .expect("the source topic");
    let lines = lines();
    let changelog = open(&cluster, &lines);
    let now = Instant::now();

    let dir = tempfile::tempdir().expect("a temporary directory");
    let whole_store = radar_store::Store::open(&dir.path().join("whole.redb")).unwrap();
    let (mut whole, _) =
        PartitionWorker::restore(settings(), &whole_store, None, "whole", 0, now).unwrap();
    let mut expected = Vec::new();
    whole.process(&records(&lines, 0), &mut expected, &mut Vec::new());

    // The first machine: a checkpoint at 1,000, 700 more records, then half of the
    // changed accounts' records written, and a crash.
    let first_store = radar_store::Store::open(&dir.path().join("first.redb")).unwrap();
    let (mut first, restored) = restore(&first_store, &changelog);
    assert_eq!(restored.resume_at, None);
    let mut emitted = Vec::new();
    first.process(&records(&lines[..1_000], 0), &mut emitted, &mut Vec::new());
    assert_eq!(
        first
            .checkpoint(&first_store, Some(&changelog), now)
            .unwrap(),
        Some(1_000)
    );
    let before_crash = emitted.len();
    first.process(
        &records(&lines[..1_700], 1_000),
        &mut emitted,
        &mut Vec::new(),
    );
    let repeatable: BTreeSet<String> = ids(&emitted[before_crash..]).into_iter().collect();
    let pending = first.engine().changed_account_records();
    let written: Vec<&(&str, Vec<u8>)> = pending.updated.iter().step_by(2).collect();
    assert!(written.len() > 10);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    for (account_id, state) in &written {
        send_account(&producer, account_id, state, 1_700);
    }
    producer.flush(TIMEOUT).unwrap();
    drop(first);

    // A new machine: nothing local, everything from the changelog.
    let second_store = radar_store::Store::open(&dir.path().join("second.redb")).unwrap();
    let (mut second, restored) = restore(&second_store, &changelog);
    assert_eq!(restored.resume_at, Some(1_000), "from the last completion");
    assert!(restored.from_changelog.is_some_and(|n| n > 0));
    let mut again = Vec::new();
    second.process(&records(&lines, 1_000), &mut again, &mut Vec::new());
    emitted.extend(again);

    let all: BTreeSet<String> = ids(&emitted).into_iter().collect();
    assert_eq!(all, ids(&expected).into_iter().collect::<BTreeSet<_>>());
    let repeated = emitted.len() - all.len();
    assert!(
        repeated < repeatable.len(),
        "{repeated} repeated of {} that could be",
        repeatable.len()
    );
    let mut seen = BTreeSet::new();
    for id in ids(&emitted) {
        assert!(seen.insert(id.clone()) || repeatable.contains(&id), "{id}");
    }
    assert!(
        same_state(second.engine(), whole.engine()),
        "the same state as an uninterrupted run"
    );
}

/// A local store as new as the changelog is used as it is; one behind reads only the
/// changelog's tail; either way the state is the changelog's.
#[test]
fn the_local_store_is_a_cache_of_the_changelog() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("events", 1, 1)
        .expect("the source topic");
    let lines = lines();
    let changelog = open(&cluster, &lines);
    let now = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cache = radar_store::Store::open(&dir.path().join("cache.redb")).unwrap();
    let elsewhere = radar_store::Store::open(&dir.path().join("elsewhere.redb")).unwrap();

    let (mut worker, _) = restore(&cache, &changelog);
    worker.process(
        &records(&lines[..1_500], 0),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    worker.checkpoint(&cache, Some(&changelog), now).unwrap();
    let at_1500 = worker;

    let (worker, restored) = restore(&cache, &changelog);
    assert_eq!(
        (restored.resume_at, restored.from_changelog),
        (Some(1_500), None)
    );
    assert!(same_state(worker.engine(), at_1500.engine()));
    drop(worker);

    // Another instance owns the partition for a while and checkpoints there.
    let (mut other, _) = restore(&elsewhere, &changelog);
    other.process(&records(&lines, 1_500), &mut Vec::new(), &mut Vec::new());
    other.checkpoint(&elsewhere, Some(&changelog), now).unwrap();

    let (back, restored) = restore(&cache, &changelog);
    assert_eq!(restored.resume_at, Some(3_000));
    let tail = restored.from_changelog.expect("the tail was read");
    // The other's claim when it restored, its account records, its completion.
    assert!(
        tail <= other.engine().tracked_accounts() as u64 + 2,
        "only the tail: {tail} records"
    );
    assert!(same_state(back.engine(), other.engine()));

    // The first instance, frozen all along, wakes up and checkpoints what it had:
    // refused, since the new owner wrote since, and nothing of it is written.
    let mut zombie = at_1500;
    zombie.process(
        &records(&lines[..2_000], 1_500),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    let end = changelog.end(0).unwrap();
    assert!(matches!(
        zombie.checkpoint(&cache, Some(&changelog), now),
        Err(SourceError::Fenced(0))
    ));
    assert_eq!(changelog.end(0).unwrap(), end);
    let (again, _) = restore(&elsewhere, &changelog);
    assert!(same_state(again.engine(), other.engine()));
}

/// A new owner claims the partition as it restores it, before its first checkpoint:
/// the old owner, frozen until then, can write nothing after it.
#[test]
fn a_new_owner_fences_the_old_one_as_it_restores() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("events", 1, 1)
        .expect("the source topic");
    let lines = lines();
    let changelog = open(&cluster, &lines);
    let now = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = |name: &str| radar_store::Store::open(&dir.path().join(name)).unwrap();
    let (old_cache, new_cache, later_cache) = (store("old"), store("new"), store("later"));

    let (mut old, _) = restore(&old_cache, &changelog);
    old.process(
        &records(&lines[..1_500], 0),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    old.checkpoint(&old_cache, Some(&changelog), now).unwrap();

    let (new, restored) = restore(&new_cache, &changelog);
    assert_eq!(restored.resume_at, Some(1_500));
    old.process(
        &records(&lines[..2_000], 1_500),
        &mut Vec::new(),
        &mut Vec::new(),
    );
    assert!(matches!(
        old.checkpoint(&old_cache, Some(&changelog), now),
        Err(SourceError::Fenced(0))
    ));
    let (later, restored) = restore(&later_cache, &changelog);
    assert_eq!(restored.resume_at, Some(1_500));
    assert!(same_state(later.engine(), new.engine()));
}

/// An account record as a checkpoint at source offset `complete_to` writes it.
fn send_account(producer: &BaseProducer, account_id: &str, state: &[u8], complete_to: i64) {
    let complete_to = complete_to.to_string();
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to("radar-state")
                .partition(0)
                .key(account_id.as_bytes())
                .payload(state)
                .headers(OwnedHeaders::new().insert(Header {
                    key: COMPLETE_TO,
                    value: Some(&complete_to),
                })),
        )
        .map_err(|(e, _)| e)
        .unwrap();
}

/// One account busier between two checkpoints than its event-id dedupe remembers: a
/// crash after its record but before the completion record, and a restore on a new
/// machine that reads those 27,000 events again, must apply none of them twice. The
/// record says which source offset the state is complete up to, and the restore skips
/// the account's records before it.
#[test]
fn an_account_ahead_of_the_resume_offset_applies_nothing_twice_whatever_its_traffic() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("events", 1, 1)
        .expect("the source topic");
    let lines: Vec<String> = radar_gen::Generator::new(radar_gen::Options {
        accounts: 1,
        events: 30_000,
        days: 1,
        seed: 5,
        ..Default::default()
    })
    .expect("valid options")
    .collect();
    let changelog = open(&cluster, &lines);
    let now = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = |name: &str| radar_store::Store::open(&dir.path().join(name)).unwrap();

    let (whole, expected) = uninterrupted(&store("whole"), &lines);

    let first_store = store("first");
    let (mut first, _) = restore(&first_store, &changelog);
    let mut emitted = Vec::new();
    first.process(&records(&lines[..1_000], 0), &mut emitted, &mut Vec::new());
    first
        .checkpoint(&first_store, Some(&changelog), now)
        .unwrap();
    first.process(
        &records(&lines[..28_000], 1_000),
        &mut emitted,
        &mut Vec::new(),
    );
    let pending = first.engine().changed_account_records();
    assert_eq!(pending.updated.len(), 1);
    let (account_id, state) = &pending.updated[0];
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    send_account(&producer, account_id, state, 28_000);
    producer.flush(TIMEOUT).unwrap();
    drop(first);

    let second_store = store("second");
    let (mut second, restored) = restore(&second_store, &changelog);
    assert_eq!((restored.resume_at, restored.ahead), (Some(1_000), 1));
    let mut again = Vec::new();
    second.process(&records(&lines, 1_000), &mut again, &mut Vec::new());
    assert!(same_state(second.engine(), whole.engine()));
    let before: BTreeSet<String> = ids(&emitted).into_iter().collect();
    assert!(
        ids(&again).iter().all(|id| !before.contains(id)),
        "nothing emitted again"
    );
    emitted.extend(again);
    assert_eq!(ids(&emitted), ids(&expected));
}

/// The headers of every record on `topic` (partition 0), waiting up to 30 s for `count`.
fn headers_on(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    count: usize,
) -> Vec<BTreeMap<String, String>> {
    use rdkafka::message::Headers;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .set("group.id", "quarantine-reader")
        .create()
        .expect("a consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&assignment).unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut all = Vec::new();
    while all.len() < count {
        assert!(
            Instant::now() < deadline,
            "{} of {count} records on {topic} within 30 s",
            all.len()
        );
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            let headers = message.headers().map_or_else(BTreeMap::new, |headers| {
                headers
                    .iter()
                    .map(|h| {
                        let value = String::from_utf8_lossy(h.value.unwrap_or_default());
                        (h.key.to_owned(), value.into_owned())
                    })
                    .collect()
            });
            all.push(headers);
        }
    }
    all
}

/// Records a restore cannot use (an undecodable state, a truncated one, a key that is
/// no account id, completions unreadable, negative, past the source's end, or with no
/// value) neither stop the restore nor are applied: each is set aside on the quarantine
/// topic with its coordinates and reason, the accounts whose state was unreadable are
/// rebuilt from the start of the source partition, and processing carries on to exactly
/// the state of an uninterrupted run. What the restore and the next checkpoint write
/// supersedes them: a later restore sets nothing aside.
#[test]
fn unusable_changelog_records_are_set_aside_and_their_accounts_rebuilt_from_the_source() {
    let cluster = MockCluster::new(1).expect("a mock cluster");
    cluster
        .create_topic("events", 1, 1)
        .expect("the source topic");
    let lines = lines();
    let changelog = open(&cluster, &lines);
    let now = Instant::now();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = |name: &str| radar_store::Store::open(&dir.path().join(name)).unwrap();

    let (whole, expected) = uninterrupted(&store("whole"), &lines);

    let first_store = store("first");
    let (mut first, _) = restore(&first_store, &changelog);
    let mut emitted = Vec::new();
    first.process(&records(&lines[..1_500], 0), &mut emitted, &mut Vec::new());
    assert_eq!(
        first
            .checkpoint(&first_store, Some(&changelog), now)
            .unwrap(),
        Some(1_500)
    );
    let mut victims: Vec<String> = first
        .engine()
        .accounts()
        .map(|(id, _)| id.to_owned())
        .collect();
    victims.sort_unstable();
    victims.truncate(2);
    let state = radar_core::snapshot::encode_account(first.engine().account(&victims[1]).unwrap());
    let garbage: Vec<(&[u8], Option<Vec<u8>>)> = vec![
        (victims[0].as_bytes(), Some(b"\x01not a state".to_vec())),
        (
            victims[1].as_bytes(),
            Some(state[..state.len() / 2].to_vec()),
        ),
        (&[0xff, 0xfe], Some(b"{}".to_vec())),
        (&[], Some(completion_value(-1))),
        (&[], Some(completion_value(1 << 62))),
        (&[], None),
    ];
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap_servers())
        .create()
        .unwrap();
    for (key, value) in &garbage {
        let mut record = BaseRecord::<[u8], [u8]>::to("radar-state")
            .partition(0)
            .key(*key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(TIMEOUT).unwrap();
    drop(first);

    // A new machine: no error, the six set aside, the two accounts left out to rebuild.
    let second_store = store("second");
    let (mut second, restored) = restore(&second_store, &changelog);
    assert_eq!(
        (
            restored.quarantined,
            restored.rebuilding,
            restored.resume_at
        ),
        (6, 2, None),
        "{restored:?}"
    );
    assert!(victims.iter().all(|v| second.engine().account(v).is_none()));
    let mut reasons: Vec<String> = headers_on(&cluster, "radar-state.dead-letter", 6)
        .into_iter()
        .map(|headers| {
            assert!(headers["radar.source"].starts_with("radar-state/0/"));
            headers["radar.reason"].clone()
        })
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "completion_beyond_source",
            "key_not_utf8",
            "unreadable_completion",
            "unreadable_completion",
            "unreadable_state",
            "unreadable_state"
        ]
    );
    let counts: Vec<u64> = Unusable::ALL
        .iter()
        .map(|why| changelog.quarantined().get(*why))
        .collect();
    assert_eq!(counts, [2, 1, 2, 1]);

    // From the start of the partition: before 1,500 only the two accounts' records are
    // applied, and only their opportunities come again, with the same ids.
    let mut again = Vec::new();
    let mut dead = Vec::new();
    // Nothing is checkpointed until the rebuild is past the offset the others' state
    // stands at: a completion record behind it would leave the rebuilt accounts' records
    // behind it, for a crash to make the next restore take as complete.
    second.process(&records(&lines[..700], 0), &mut again, &mut dead);
    let end = changelog.end(0).unwrap();
    assert_eq!(
        second
            .checkpoint(&second_store, Some(&changelog), now)
            .unwrap(),
        None
    );
    assert_eq!(changelog.end(0).unwrap(), end);
    second.process(&records(&lines, 700), &mut again, &mut dead);
    assert!(same_state(second.engine(), whole.engine()));
    let before: BTreeSet<String> = ids(&emitted).into_iter().collect();
    for opportunity in &again {
        let id = opportunity.opportunity_id.to_string();
        assert!(
            ids(&expected).contains(&id),
            "{id} is the uninterrupted run's"
        );
        assert!(
            !before.contains(&id) || victims.contains(&opportunity.account_id.to_string()),
            "{id} of {} came again",
            opportunity.account_id
        );
    }
    let all: BTreeSet<String> = before.into_iter().chain(ids(&again)).collect();
    assert_eq!(all, ids(&expected).into_iter().collect::<BTreeSet<_>>());

    // The claim and this checkpoint supersede every one of them.
    assert_eq!(
        second
            .checkpoint(&second_store, Some(&changelog), now)
            .unwrap(),
        Some(3_000)
    );
    let (third, restored) = restore(&store("third"), &changelog);
    assert_eq!(
        (
            restored.quarantined,
            restored.rebuilding,
            restored.resume_at
        ),
        (0, 0, Some(3_000)),
        "{restored:?}"
    );
    assert!(same_state(third.engine(), whole.engine()));
}
