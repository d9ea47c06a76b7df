//! Property tests of the engine against the semantics of docs/design.md#engine-semantics: reordering within the
//! lateness bound, duplicates, determinism, and splitting the stream (by partition, or
//! into arbitrary read chunks) never change the result.

use std::collections::BTreeMap;
use std::io::{BufReader, Read};

use proptest::prelude::*;
use radar_core::metric::Metric;
use radar_core::{Engine, Opportunity, Settings};
use serde_json::{Value, json};

use crate::{default_settings, run};

const START_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const HOUR_MS: i64 = 3_600_000;
const LATENESS_MS: i64 = 24 * HOUR_MS;

const KINDS: [&str; 12] = [
    "feature_limit_hit",
    "team_invite_sent",
    "premium_feature_attempted",
    "usage_snapshot",
    "entitlement_updated",
    "health_updated",
    "seat_threshold_90pct",
    "api_tier_exceeded",
    "user_login",
    "qbr_completed",
    "nps_submitted",
    "page_viewed",
];

#[derive(Clone, Debug)]
struct Ev {
    id: usize,
    account: u8,
    kind: &'static str,
    time: i64,
    value: u32,
}

/// A `user_login` of `account` at `time`: the lightest event, for tests of how long
/// accounts live.
fn login(id: usize, account: u8, time: i64) -> Ev {
    Ev {
        id,
        account,
        kind: "user_login",
        time,
        value: 0,
    }
}

fn iso(ms: i64) -> String {
    chrono_free_rfc3339(ms)
}

/// RFC 3339 without pulling a date library into the tests: days from the civil calendar.
fn chrono_free_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

impl Ev {
    fn line(&self) -> Vec<u8> {
        let v = self.value;
        let props = match self.kind {
            "usage_snapshot" => {
                json!({"seats_used": v % 60, "active_users_1d": v % 7, "active_users_30d": 10, "api_calls_period": v * 1000, "features_adopted": v % 15})
            }
            "entitlement_updated" => {
                json!({"plan": "growth", "seat_limit": 50, "api_limit": 100_000, "arr": f64::from(v) * 1000.0, "customer_since": "2025-01-01", "contract_end": iso(START_MS + i64::from(v) * 24 * HOUR_MS)})
            }
            "health_updated" => json!({"health_score": v, "churn_risk": v % 10 == 0}),
            "seat_threshold_90pct" => json!({"seats_used": 45 + v % 6, "seat_limit": 50}),
            "api_tier_exceeded" => {
                json!({"api_calls": 100_000 + v, "api_limit": 100_000, "tier": "growth"})
            }
            "nps_submitted" => json!({"score": v % 11}),
            _ => json!({}),
        };
        json!({
            "event_id": format!("e{}", self.id),
            "type": self.kind,
            "account_id": format!("acct_{}", self.account),
            "timestamp": iso(self.time),
            "properties": props,
        })
        .to_string()
        .into_bytes()
    }
}

/// Streams in event-time order with distinct timestamps, steps of up to 3 hours.
fn stream() -> impl Strategy<Value = Vec<Ev>> {
    prop::collection::vec((0u8..3, 0..KINDS.len(), 1i64..3 * 3600, 0u32..100), 1..150).prop_map(
        |steps| {
            let mut time = START_MS;
            steps
                .into_iter()
                .enumerate()
                .map(|(id, (account, kind, step, value))| {
                    time += step * 1000;
                    Ev {
                        id,
                        account,
                        kind: KINDS[kind],
                        time,
                        value,
                    }
                })
                .collect()
        },
    )
}

fn lines(events: &[Ev]) -> Vec<Vec<u8>> {
    events.iter().map(Ev::line).collect()
}

fn run_lines(settings: &std::sync::Arc<Settings>, lines: &[Vec<u8>]) -> (Engine, Vec<Opportunity>) {
    run(settings, lines.iter().map(Vec::as_slice))
}

/// Every configured window count, plus the latest-value state, per account, evaluated at
/// the account's stream time.
fn snapshot(engine: &Engine) -> BTreeMap<String, Value> {
    let settings = engine.settings();
    let windows: Vec<(radar_core::windows::SeriesKey, u32)> = settings
        .metrics
        .iter()
        .filter_map(|m| match m {
            Metric::Count { key, buckets, .. } => Some((key, buckets)),
            _ => None,
        })
        .collect();
    engine
        .accounts()
        .map(|(id, s)| {
            let bucket = u32::try_from(s.stream_time / settings.bucket).unwrap();
            let counts: Vec<u32> = windows
                .iter()
                .map(|(key, len)| s.windows.count(*key, bucket, *len))
                .collect();
            let value = json!({
                "counts": counts,
                "first_seen": s.first_seen,
                "stream_time": s.stream_time,
                "entitlement": format!("{:?}", s.entitlement),
                "usage": format!("{:?}", s.usage),
                "health": format!("{:?}", s.health),
                "dates": format!("{:?}", s.dates),
            });
            (id.to_owned(), value)
        })
        .collect()
}

/// A reader that hands out at most `chunk` bytes per read, to split lines anywhere.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any arrival order in which no event is later than the lateness bound gives the same
    /// window counts and state.
    #[test]
    fn reordering_within_lateness_changes_no_count(
        events in stream(),
        delays in prop::collection::vec(0i64..LATENESS_MS, 150),
    ) {
        let settings = default_settings();
        let mut shuffled = events.clone();
        shuffled.sort_by_key(|e| (e.time + delays[e.id], e.id));
        let (ordered, _) = run_lines(&settings, &lines(&events));
        let (reordered, _) = run_lines(&settings, &lines(&shuffled));
        prop_assert_eq!(reordered.stats().late, 0);
        prop_assert_eq!(snapshot(&ordered), snapshot(&reordered));
    }

    /// Replaying events again (as an at-least-once producer does) changes nothing but the
    /// duplicate counter.
    #[test]
    fn duplicates_change_nothing(
        events in stream(),
        dups in prop::collection::vec((any::<prop::sample::Index>(), 1usize..5), 0..20),
    ) {
        let settings = default_settings();
        let original = lines(&events);
        let mut with_dups: Vec<(usize, Vec<u8>)> = original.iter().cloned().enumerate().map(|(i, l)| (2 * i, l)).collect();
        for (index, after) in &dups {
            let i = index.index(original.len());
            let at = (i + after).min(original.len() - 1);
            with_dups.push((2 * at + 1, original[i].clone()));
        }
        with_dups.sort_by_key(|(pos, _)| *pos);
        let with_dups: Vec<Vec<u8>> = with_dups.into_iter().map(|(_, l)| l).collect();

        let (a, out_a) = run_lines(&settings, &original);
        let (b, out_b) = run_lines(&settings, &with_dups);
        prop_assert_eq!(&out_a, &out_b);
        prop_assert_eq!(snapshot(&a), snapshot(&b));
        // Unknown types are skipped before duplicate detection.
        let known = dups.iter().filter(|(index, _)| events[index.index(events.len())].kind != "page_viewed");
        prop_assert_eq!(b.stats().duplicate, known.count() as u64);
        prop_assert_eq!(a.stats().processed, b.stats().processed);
    }

    /// The output is the same on every run, whatever the number of partitions the
    /// accounts are spread over, and however the input bytes are chunked.
    #[test]
    fn output_is_deterministic_across_runs_partitions_and_chunks(
        events in stream(),
        partitions in 1usize..4,
        chunk in 1usize..300,
    ) {
        let settings = default_settings();
        let all = lines(&events);
        let (_, first) = run_lines(&settings, &all);
        let (_, second) = run_lines(&settings, &all);
        prop_assert_eq!(&first, &second);

        let mut split: Vec<Opportunity> = (0..partitions)
            .flat_map(|p| {
                let mine: Vec<Vec<u8>> = events
                    .iter()
                    .filter(|e| usize::from(e.account) % partitions == p)
                    .map(Ev::line)
                    .collect();
                run_lines(&settings, &mine).1
            })
            .collect();
        let mut whole = first.clone();
        whole.sort_by(|a, b| a.opportunity_id.cmp(&b.opportunity_id));
        split.sort_by(|a, b| a.opportunity_id.cmp(&b.opportunity_id));
        prop_assert_eq!(&whole, &split);

        let mut file = Vec::new();
        for l in &all {
            file.extend_from_slice(l);
            file.push(b'\n');
        }
        let mut out = Vec::new();
        let reader = BufReader::with_capacity(7, Chunked { data: &file, chunk });
        radar::replay::run(settings.clone(), reader, &mut out).unwrap();
        let replayed: Vec<Opportunity> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        prop_assert_eq!(&first, &replayed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A checkpoint taken anywhere and restored gives exactly the output and state of an
    /// uninterrupted run: what recovery after a crash or a rebalance relies on.
    #[test]
    fn snapshot_and_restore_change_nothing(events in stream(), cut in any::<prop::sample::Index>()) {
        let settings = default_settings();
        let all = lines(&events);
        let at = cut.index(all.len() + 1);
        let (whole, expected) = run_lines(&settings, &all);

        let (before, mut got) = run_lines(&settings, &all[..at]);
        let mut after = Engine::restore(settings.clone(), &before.snapshot()).unwrap();
        for line in &all[at..] {
            after.process(line, None, &mut got);
        }
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(snapshot(&after), snapshot(&whole));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A snapshot, then the changes taken at two later points, applied in order to the
    /// restored snapshot, give exactly the state and output of an uninterrupted run: what
    /// incremental checkpoints rely on.
    #[test]
    fn changes_applied_to_a_snapshot_change_nothing(
        events in stream(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 3),
    ) {
        let settings = default_settings();
        let all = lines(&events);
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(all.len() + 1)).collect();
        at.sort_unstable();
        let (whole, expected) = run_lines(&settings, &all);

        let mut live = Engine::new(settings.clone());
        let mut got = Vec::new();
        let feed = |engine: &mut Engine, range: std::ops::Range<usize>, got: &mut Vec<Opportunity>| {
            for line in &all[range] {
                engine.process(line, None, got);
            }
        };
        feed(&mut live, 0..at[0], &mut got);
        let base = live.snapshot();
        live.forget_changes();
        feed(&mut live, at[0]..at[1], &mut got);
        let first = live.take_changes();
        feed(&mut live, at[1]..at[2], &mut got);
        let second = live.take_changes();

        let mut restored = Engine::restore(settings.clone(), &base).unwrap();
        restored.apply_changes(&first).unwrap();
        restored.apply_changes(&second).unwrap();
        prop_assert_eq!(snapshot(&restored), snapshot(&live));
        feed(&mut restored, at[2]..all.len(), &mut got);
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(snapshot(&restored), snapshot(&whole));
    }
}

#[test]
fn changes_carry_only_what_an_event_reached_and_what_was_evicted() {
    let settings = default_settings();
    let ttl = settings.idle_ttl.expect("on by default");
    let (day, event) = (24 * HOUR_MS, login);
    let (mut live, _) = run_lines(
        &settings,
        &lines(&[event(1, 1, START_MS), event(2, 2, START_MS + day)]),
    );
    let base = live.snapshot();
    live.forget_changes();
    assert_eq!(
        live.take_changes(),
        Engine::new(settings.clone()).take_changes(),
        "nothing changed since the snapshot"
    );
    // Account 2 again, account 3 new, and a crowd of others (a sweep needs a quorum of
    // accounts to judge the present by); then account 1 is idle past the TTL and evicted.
    let mut later = vec![
        event(3, 2, START_MS + ttl + day),
        event(4, 3, START_MS + ttl + day),
    ];
    later.extend(crowd(100, START_MS + ttl + day));
    for line in lines(&later) {
        live.process(&line, None, &mut Vec::new());
    }
    assert_eq!(live.evict_idle(), 1);
    // Account 1 comes back before the changes are taken: it is both evicted and new.
    live.process(
        &event(5, 1, START_MS + ttl + day).line(),
        None,
        &mut Vec::new(),
    );
    let changes = live.take_changes();

    let mut restored = Engine::restore(settings.clone(), &base).unwrap();
    restored.apply_changes(&changes).unwrap();
    let ids = |engine: &Engine| {
        let mut ids: Vec<String> = engine.accounts().map(|(id, _)| id.to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(ids(&restored), ids(&live));
    assert_eq!(ids(&restored).len(), 3 + crowd(100, 0).len());
    for kept in ["acct_1", "acct_2", "acct_3"] {
        assert!(ids(&restored).contains(&kept.to_owned()), "{kept}");
    }
    assert_eq!(
        restored.account("acct_1").map(|s| s.first_seen),
        Some(START_MS + ttl + day),
        "account 1 afresh, not its evicted state"
    );
    assert_eq!(snapshot(&restored), snapshot(&live));
    assert!(
        restored
            .apply_changes(&changes[..changes.len() - 2])
            .is_err(),
        "truncated"
    );

    // One account of forty reached: the changes hold it alone.
    let many: Vec<Ev> = (0..40)
        .map(|a| event(10 + a as usize, a, START_MS))
        .collect();
    let (mut live, _) = run_lines(&settings, &lines(&many));
    live.forget_changes();
    live.process(&event(99, 7, START_MS + day).line(), None, &mut Vec::new());
    let (changes, full) = (live.take_changes(), live.snapshot());
    assert!(
        changes.len() * 20 < full.len(),
        "{} bytes of changes against a {}-byte snapshot",
        changes.len(),
        full.len()
    );
}

#[test]
fn restore_refuses_foreign_bytes() {
    let settings = default_settings();
    assert!(Engine::restore(settings.clone(), &[]).is_err(), "empty");
    assert!(
        Engine::restore(settings.clone(), &[99, 1, 2]).is_err(),
        "unknown format version"
    );
    assert!(Engine::restore(settings.clone(), &Engine::new(settings.clone()).snapshot()).is_ok());
    let one = Ev {
        id: 1,
        account: 1,
        kind: "usage_snapshot",
        time: START_MS,
        value: 5,
    };
    let full = run_lines(&settings, &lines(&[one])).0.snapshot();
    assert!(
        Engine::restore(settings, &full[..full.len() - 3]).is_err(),
        "truncated"
    );
}

#[test]
fn the_rfc3339_helper_matches_known_dates() {
    assert_eq!(iso(START_MS), "2026-01-01T00:00:00.000Z");
    assert_eq!(
        iso(START_MS + 59 * 24 * HOUR_MS + 1_500),
        "2026-03-01T00:00:01.500Z"
    );
}

/// Logins of [`Engine::SWEEP_QUORUM`] + 4 accounts numbered from `first`, at `time`:
/// enough accounts for a sweep to take their time as the partition's present.
fn crowd(first: u8, time: i64) -> Vec<Ev> {
    (0..Engine::SWEEP_QUORUM as u8 + 4)
        .map(|a| {
            let id = usize::try_from(time / 60_000).unwrap() * 256 + usize::from(first + a);
            login(id, first + a, time)
        })
        .collect()
}

/// The per-account rule: an event more than the TTL after its account's stream time finds
/// the account reset, in any run of the engine (replay too), swept or not.
#[test]
fn an_event_past_the_idle_ttl_finds_its_account_reset() {
    let settings = default_settings();
    let ttl = settings.idle_ttl.expect("on by default");
    let entitled = Ev {
        id: 1,
        account: 1,
        kind: "entitlement_updated",
        time: START_MS,
        value: 30,
    };
    let (engine, _) = run_lines(
        &settings,
        &lines(&[entitled.clone(), login(2, 1, START_MS + ttl)]),
    );
    let state = engine.account("acct_1").unwrap();
    assert_eq!(
        (state.first_seen, engine.stats().evicted),
        (START_MS, 0),
        "exactly the TTL later: kept"
    );
    assert!(state.entitlement.arr.value().is_some());

    let back = START_MS + ttl + 1;
    let (engine, _) = run_lines(&settings, &lines(&[entitled, login(2, 1, back)]));
    let state = engine.account("acct_1").unwrap();
    assert_eq!((state.first_seen, engine.stats().evicted), (back, 1));
    assert!(state.entitlement.arr.value().is_none(), "afresh: {state:?}");
    assert_eq!(
        engine.snapshot(),
        run_lines(&settings, &lines(&[login(2, 1, back)]))
            .0
            .snapshot(),
        "as if the account had never been seen"
    );
}

#[test]
fn sweeps_free_the_accounts_idle_past_the_ttl() {
    let settings = default_settings();
    let ttl = settings.idle_ttl.expect("on by default");
    let (day, event) = (24 * HOUR_MS, login);
    // Account 1 goes quiet; the crowd carries on past the TTL; account 3 just inside it.
    let mut events = vec![event(1, 1, START_MS), event(2, 3, START_MS + day + day / 2)];
    events.extend(crowd(100, START_MS + ttl + day));
    let (mut engine, _) = run_lines(&settings, &lines(&events));
    let tracked = engine.tracked_accounts();
    // Accounts changed since the last checkpoint are kept: a checkpoint first.
    engine.forget_changes();
    assert_eq!(engine.evict_idle(), 1);
    assert_eq!(engine.tracked_accounts(), tracked - 1);
    assert_eq!(engine.stats().evicted, 1);
    let kept: Vec<String> = engine.accounts().map(|(id, _)| id.to_owned()).collect();
    assert!(!kept.contains(&"acct_1".to_owned()), "{kept:?}");
    assert!(kept.contains(&"acct_3".to_owned()), "{kept:?}");
    // Nothing more is idle.
    assert_eq!(engine.evict_idle(), 0);
    // Account 3 falls idle, but the cutoff moved less than a sweep step: it stays (with
    // as many events read since the last sweep as there are accounts, so that is what
    // holds it back)...
    let feed = |engine: &mut Engine, events: Vec<Ev>| {
        for line in lines(&events) {
            engine.process(&line, None, &mut Vec::new());
        }
    };
    let later = START_MS + ttl + day + 3 * day / 4;
    feed(&mut engine, crowd(100, later));
    feed(&mut engine, crowd(100, later + 60_000));
    engine.forget_changes();
    assert_eq!(engine.evict_idle(), 0);
    // ...until the cutoff has moved a whole step on since the last sweep.
    feed(
        &mut engine,
        crowd(100, START_MS + ttl + day + Engine::SWEEP_STEP),
    );
    engine.forget_changes();
    assert_eq!(engine.evict_idle(), 1);
    assert_eq!(engine.tracked_accounts(), tracked - 2);
}

/// A producer with a clock in 2099 (event and record time both, so `too_far_in_future`
/// cannot tell) must not make the other accounts of its partition look idle, whether it
/// sends for one account or for many (fewer than half): sweeping after every event gives
/// exactly the opportunities and state of a run that never sweeps, as `radar replay`.
#[test]
fn a_bad_clock_cannot_make_a_sweep_drop_the_other_accounts() {
    let settings = default_settings();
    let opts = radar_gen::Options {
        accounts: 60,
        events: 4_000,
        seed: 5,
        ..Default::default()
    };
    let generated: Vec<Vec<u8>> = radar_gen::Generator::new(opts)
        .unwrap()
        .map(String::into_bytes)
        .collect();
    for bad_clocks in [1, 25] {
        let mut lines = generated.clone();
        for n in 0..bad_clocks {
            lines.insert(
                1_000 + n,
                format!(r#"{{"event_id":"clock-{n}","type":"user_login","account_id":"acct_clock_{n}","timestamp":"2099-01-01T00:00:00Z"}}"#).into_bytes(),
            );
        }
        let (replay, expected) = run_lines(&settings, &lines);
        assert!(expected.len() > 50, "{} opportunities", expected.len());

        let mut live = Engine::new(settings.clone());
        let mut got = Vec::new();
        for line in &lines {
            live.process(line, None, &mut got);
            live.evict_idle();
        }
        assert_eq!(live.stats().evicted, 0, "{bad_clocks} bad clocks");
        assert_eq!(got, expected, "{bad_clocks} bad clocks");
        assert_eq!(snapshot(&live), snapshot(&replay));
    }
}

#[test]
fn the_idle_ttl_must_outlast_what_an_account_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(&config, "[engine]\nidle_ttl = \"7d\"\n").unwrap();
    let problems = radar::config::load(Some(&config)).unwrap_err().to_string();
    assert!(
        problems.contains("engine.idle_ttl: must be at least"),
        "{problems}"
    );
    std::fs::write(&config, "[engine]\nidle_ttl = \"off\"\n").unwrap();
    let settings = radar::config::load(Some(&config)).unwrap();
    assert_eq!(settings.idle_ttl, None);
    let mut engine = Engine::new(std::sync::Arc::new(settings));
    assert_eq!(engine.evict_idle(), 0);
}

/// A Kafka record must be keyed by its event's account: the per-account order everything
/// rests on is Kafka's per-key order. A file in `radar replay` has no keys to check.
#[test]
fn a_record_keyed_otherwise_than_by_its_account_is_rejected() {
    use radar_core::event::RejectReason;
    use radar_core::{EventOutcome, EventRecord};

    let line = login(1, 7, START_MS).line();
    let mut engine = Engine::new(default_settings());
    let mut outcomes = Vec::new();
    let records = [Some(&b"acct_7"[..]), Some(b"acct_8"), Some(b""), None].map(|key| EventRecord {
        bytes: &line,
        time: None,
        key,
    });
    engine.process_batch(records, &mut Vec::new(), &mut outcomes);
    let rejected: Vec<Option<String>> = outcomes
        .iter()
        .map(|outcome| match outcome {
            EventOutcome::Rejected(r) if r.reason == RejectReason::KeyMismatch => {
                Some(r.detail.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(matches!(outcomes[0], EventOutcome::Processed { .. }));
    assert!(rejected[1].as_deref().unwrap().contains("\"acct_8\""));
    assert!(rejected[2].as_deref().unwrap().contains("no key"));
    assert_eq!(
        outcomes[3],
        EventOutcome::Duplicate,
        "unchecked, and seen before"
    );
    assert_eq!(engine.stats().rejected(RejectReason::KeyMismatch), 2);
}

/// A checkpoint through a changelog: `live`'s account records (tombstones, then states)
/// applied to `replica`, as a restore from the changelog would.
fn changelog_checkpoint(live: &mut Engine, replica: &mut Engine) {
    let records = live.changed_account_records();
    for account_id in &records.evicted {
        replica.remove_account(account_id);
    }
    for (account_id, bytes) in &records.updated {
        replica.restore_account(account_id, bytes).unwrap();
    }
    live.forget_changes();
}

/// A changelog replica: each checkpoint's account records (tombstones, then states)
/// applied to another engine give it exactly the live engine's state, through
/// evictions and accounts that come back.
#[test]
fn changelog_records_rebuild_the_state() {
    let settings = default_settings();
    let ttl = settings.idle_ttl.expect("on by default");
    let day = 24 * HOUR_MS;
    let (mut live, mut replica) = (Engine::new(settings.clone()), Engine::new(settings));
    let mut stages = vec![vec![
        login(1, 1, START_MS),
        Ev {
            id: 2,
            account: 2,
            kind: "entitlement_updated",
            time: START_MS,
            value: 40,
        },
    ]];
    stages[0].extend(crowd(100, START_MS + day));
    let later = START_MS + ttl + 2 * day;
    stages.push([crowd(100, later), crowd(100, later + 60_000)].concat());
    stages.push(vec![login(3, 1, later)]);
    for (n, stage) in stages.iter().enumerate() {
        for line in lines(stage) {
            live.process(&line, None, &mut Vec::new());
        }
        let swept = live.evict_idle();
        assert_eq!(swept, usize::from(n == 1) * 2, "stage {n}");
        changelog_checkpoint(&mut live, &mut replica);
        assert_eq!(snapshot(&replica), snapshot(&live), "stage {n}");
    }
    assert!(replica.account("acct_1").is_some() && replica.account("acct_2").is_none());
}

/// An engine rebuilt from the changelog records of checkpoints every 100 events carries
/// on exactly as the one that wrote them.
#[test]
fn an_engine_rebuilt_from_changelog_records_carries_on_exactly() {
    let settings = default_settings();
    let opts = radar_gen::Options {
        accounts: 60,
        events: 3_000,
        seed: 17,
        invalid_ratio: 0.02,
        ..Default::default()
    };
    let lines: Vec<Vec<u8>> = radar_gen::Generator::new(opts)
        .unwrap()
        .map(String::into_bytes)
        .collect();
    let (_, expected) = run_lines(&settings, &lines);
    let (mut live, mut replica) = (Engine::new(settings.clone()), Engine::new(settings));
    let mut got = Vec::new();
    for chunk in lines[..1_500].chunks(100) {
        for line in chunk {
            live.process(line, None, &mut got);
        }
        changelog_checkpoint(&mut live, &mut replica);
    }
    assert_eq!(snapshot(&replica), snapshot(&live));
    for line in &lines[1_500..] {
        replica.process(line, None, &mut got);
    }
    assert_eq!(ids_of(&got), ids_of(&expected));
}

fn ids_of(opportunities: &[Opportunity]) -> Vec<String> {
    opportunities
        .iter()
        .map(|o| o.opportunity_id.to_string())
        .collect()
}

/// A sweep keeps an idle account an event reached since the last checkpoint: its
/// tombstone must never reach a changelog ahead of the state that event left. The next
/// sweep after a checkpoint frees it.
#[test]
fn a_sweep_keeps_the_accounts_changed_since_the_last_checkpoint() {
    let settings = default_settings();
    let ttl = settings.idle_ttl.expect("on by default");
    let now = START_MS + ttl + 24 * HOUR_MS;
    let mut engine = Engine::new(settings);
    let feed = |engine: &mut Engine, events: Vec<Ev>| {
        for line in lines(&events) {
            engine.process(&line, None, &mut Vec::new());
        }
    };
    feed(&mut engine, crowd(100, now));
    engine.forget_changes();
    // An account whose events are all older than the TTL, reached since the checkpoint.
    feed(&mut engine, vec![login(1, 1, START_MS)]);
    assert_eq!(engine.evict_idle(), 0, "changed since the last checkpoint");
    engine.forget_changes();
    feed(&mut engine, crowd(100, now + Engine::SWEEP_STEP));
    feed(&mut engine, crowd(100, now + Engine::SWEEP_STEP + 60_000));
    engine.forget_changes();
    assert_eq!(engine.evict_idle(), 1);
    assert!(engine.account("acct_1").is_none());
}

/// `radar_events_by_type_total` counts each event once: one rejected for its properties
/// counts as invalid only, not under its type too; and no declared type may take the
/// labels `unknown` and `invalid`.
#[test]
fn an_event_rejected_for_its_properties_counts_as_invalid_only() {
    let settings = default_settings();
    let bad = br#"{"event_id":"e1","type":"usage_snapshot","account_id":"a","timestamp":"2026-01-01T00:00:00Z","properties":{"seats_used":"ten"}}"#;
    let good = br#"{"event_id":"e2","type":"usage_snapshot","account_id":"a","timestamp":"2026-01-01T00:00:00Z","properties":{"seats_used":10}}"#;
    let (engine, _) = run(&settings, [&bad[..], &good[..]]);
    let usage = settings.types.lookup("usage_snapshot").unwrap();
    assert_eq!(engine.stats().by_type[usize::from(usage.0)], 1);
    assert_eq!(engine.stats().rejected_total(), 1);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("radar.toml");
    std::fs::write(
        &config,
        "[engine]\ncustom_types = [\"unknown\", \"invalid\", \"trial_started\"]\n",
    )
    .unwrap();
    let problems = radar::config::load(Some(&config)).unwrap_err().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].starts_with("engine.custom_types[0]") && problems[0].contains("reserved"),
        "{problems:?}"
    );
    assert!(
        problems[1].starts_with("engine.custom_types[1]"),
        "{problems:?}"
    );
}
