//! The engine: one call per event, from bytes to opportunities.
//!
//! [`Engine::process`] decodes, updates the account's state and windows, scores, runs the
//! playbooks and the tier-rise check, applies cooldowns and gates, and appends the
//! resulting opportunities to the caller's buffer. It owns the state of the accounts it
//! has seen (one engine per Kafka partition in the pipeline) and counts every outcome in
//! [`Stats`].

use std::sync::Arc;

use compact_str::{CompactString, format_compact};
use hashbrown::HashMap;
use xxhash_rust::xxh3::xxh3_64;

use crate::event::{Event, Properties, RejectReason, Rejection, decode};
use crate::metric::At;
use crate::opportunity::{Kind, Opportunity, Owner, opportunity_id};
use crate::playbook::Facts;
use crate::scoring::Tier;
use crate::settings::Settings;
use crate::state::{AccountState, Changed, latest};
use crate::stats::Stats;
use crate::time::{Millis, format_rfc3339};

mod accounts;
mod explain;

/// What fired on an event: a playbook (by index), or a tier rise.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    Playbook(usize),
    TierRise { key: u32, cooldown: Millis },
}

/// One input: the event's bytes, and for a Kafka record its timestamp and key.
#[derive(Clone, Copy, Debug)]
pub struct EventRecord<'a> {
    pub bytes: &'a [u8],
    pub time: Option<Millis>,
    /// The record's key (empty when it has none), which must be the event's
    /// `account_id`: Kafka keeps one key's records in order on one partition, and the
    /// per-account determinism rests on it. `None` (a file in `radar replay`): not
    /// checked.
    pub key: Option<&'a [u8]>,
}

/// What became of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Accepted: the account's state changed; this many opportunities were appended and
    /// this many were newly held back by a gate (counted once per trigger per cooldown).
    Processed { opportunities: u32, suppressed: u32 },
    /// Refused; the pipeline dead-letters the original bytes with this reason.
    Rejected(Rejection),
    /// A type neither built in nor declared: counted and skipped.
    UnknownType,
    /// Older than the account's stream time minus the allowed lateness: dropped.
    Late,
    /// An `event_id` already seen within the lateness horizon: ignored.
    Duplicate,
}

/// What a changelog checkpoint writes: see [`Engine::changed_account_records`].
#[derive(Debug)]
pub struct AccountRecords<'a> {
    /// Accounts evicted since the last checkpoint: a tombstone each.
    pub evicted: Vec<&'a str>,
    /// Accounts an event reached, in id order, with their state as bytes.
    pub updated: Vec<(&'a str, Vec<u8>)>,
}

#[derive(Debug)]
pub struct Engine {
    settings: Arc<Settings>,
    /// Keyed by account id, stored inline up to 24 bytes so a lookup compares the key
    /// without another cache miss. States are boxed: the table stays small and dense
    /// (32 bytes an entry) so probing it mostly hits the cache, and growing it moves no
    /// states.
    accounts: HashMap<CompactString, Box<AccountState>>,
    /// Accounts an event reached, and accounts evicted, since the changes were last taken
    /// ([`Engine::take_changes`]): what an incremental checkpoint writes.
    changed: Vec<CompactString>,
    evicted: Vec<CompactString>,
    /// The newest stream time among the accounts, and the idle cutoff of the last sweep
    /// for idle accounts ([`Engine::evict_idle`]).
    newest: Option<Millis>,
    swept_to: Option<Millis>,
    /// Events read when the last sweep looked at every account.
    read_at_sweep: u64,
    stats: Stats,
    /// Reused per event, so the hot path allocates nothing: the triggers that fired,
    /// and the values of the configured metrics.
    fired: Vec<Trigger>,
    values: Vec<Option<f64>>,
}

impl Engine {
    /// Evaluates every event from now on with `settings`, keeping every account's state.
    /// The caller has checked with [`crate::settings::live_change`] that the state fits
    /// them.
    pub fn set_settings(&mut self, settings: Arc<Settings>) {
        self.settings = settings;
    }

    pub fn new(settings: Arc<Settings>) -> Self {
        let stats = Stats {
            by_type: vec![0; settings.types.len()],
            ..Stats::default()
        };
        Engine {
            settings,
            accounts: HashMap::new(),
            changed: Vec::new(),
            evicted: Vec::new(),
            newest: None,
            swept_to: None,
            read_at_sweep: 0,
            stats,
            fired: Vec::new(),
            values: Vec::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Processes one event. `record_time` is the Kafka record timestamp, if any (see
    /// [`decode`]). Opportunities are appended to `out`.
    pub fn process(
        &mut self,
        bytes: &[u8],
        record_time: Option<Millis>,
        out: &mut Vec<Opportunity>,
    ) -> EventOutcome {
        let decoded = decode(bytes, record_time, self.settings.max_future_skew);
        self.finish(&decoded, out)
    }

    /// Processes records in order, exactly as [`Engine::process`] on each would, and
    /// pushes one outcome per record. Each record is decoded one step ahead and its
    /// account's state is prefetched, so the memory latency of the next account overlaps
    /// the work on the current one: with many accounts, most of an event's cost is
    /// waiting for its state to come from memory.
    pub fn process_batch<'r>(
        &mut self,
        records: impl IntoIterator<Item = EventRecord<'r>>,
        out: &mut Vec<Opportunity>,
        outcomes: &mut Vec<EventOutcome>,
    ) {
        let max_future_skew = self.settings.max_future_skew;
        let decoded = records
            .into_iter()
            .map(move |record| decode_keyed(record, max_future_skew));
        self.process_decoded(decoded, out, outcomes);
    }

    /// [`Engine::process_batch`] for events decoded elsewhere (a source's mapping,
    /// radar-ingest), each taken from `events` one step ahead of its processing.
    pub fn process_decoded<'r>(
        &mut self,
        events: impl IntoIterator<Item = Result<Event<'r>, Rejection>>,
        out: &mut Vec<Opportunity>,
        outcomes: &mut Vec<EventOutcome>,
    ) {
        let mut events = events.into_iter();
        let Some(first) = events.next() else {
            return;
        };
        // Two slots used in turn: the event decoded ahead is written in place and the
        // current one is processed by reference, so no decoded event is moved around.
        let mut slots = [
            self.prefetched(first),
            Err(Rejection::new(RejectReason::InvalidJson, "")),
        ];
        let mut current = 0;
        for event in events {
            slots[1 - current] = self.prefetched(event);
            outcomes.push(self.finish(&slots[current], out));
            current = 1 - current;
        }
        outcomes.push(self.finish(&slots[current], out));
    }

    /// Prefetches a valid event's account state.
    #[inline]
    fn prefetched<'r>(
        &self,
        decoded: Result<Event<'r>, Rejection>,
    ) -> Result<Event<'r>, Rejection> {
        if let Ok(event) = &decoded
            && let Some(state) = self.accounts.get(&*event.account_id)
        {
            prefetch::state(state);
        }
        decoded
    }

    fn finish(
        &mut self,
        decoded: &Result<Event<'_>, Rejection>,
        out: &mut Vec<Opportunity>,
    ) -> EventOutcome {
        self.stats.read += 1;
        let outcome = match decoded {
            Ok(event) => self.apply(event, out),
            Err(rejection) => EventOutcome::Rejected(rejection.clone()),
        };
        match &outcome {
            EventOutcome::Processed { .. } => self.stats.processed += 1,
            EventOutcome::Rejected(r) => self.stats.rejected[r.reason.index()] += 1,
            EventOutcome::UnknownType => self.stats.unknown_type += 1,
            EventOutcome::Late => self.stats.late += 1,
            EventOutcome::Duplicate => self.stats.duplicate += 1,
        }
        outcome
    }

    fn apply(&mut self, event: &Event<'_>, out: &mut Vec<Opportunity>) -> EventOutcome {
        let settings = &*self.settings;
        let Some(type_id) = settings.types.lookup(&event.event_type) else {
            return EventOutcome::UnknownType;
        };
        let builtin = settings.types.builtin(type_id);
        let props = match builtin {
            Some(kind) if kind.reads_properties() => match event.properties() {
                Ok(props) => props,
                Err(rejection) => return EventOutcome::Rejected(rejection),
            },
            _ => Properties::default(),
        };
        let time = event.timestamp;
        let Ok(bucket) = u32::try_from(time / settings.bucket) else {
            return EventOutcome::Rejected(Rejection {
                reason: RejectReason::BadTimestamp,
                detail: "timestamp beyond the window range".into(),
            });
        };
        // Counted once it is no longer a rejection: a rejected event counts as invalid
        // only.
        if let Some(count) = self.stats.by_type.get_mut(usize::from(type_id.0)) {
            *count += 1;
        }
        let state = self
            .accounts
            .entry_ref(&*event.account_id)
            .or_insert_with(|| Box::new(AccountState::new(time)));

        // Idle eviction, per account: an event more than the TTL after the account's stream
        // time finds it reset, as if it had never been seen. Judged on the account's own
        // events only, so replay and the live pipeline agree whatever else a partition
        // holds; sweeps only free what this would reset anyway.
        if let Some(ttl) = settings.idle_ttl
            && time > state.stream_time.saturating_add(ttl)
        {
            let changed = state.changed;
            **state = AccountState::new(time);
            state.changed = changed;
            self.stats.evicted += 1;
        }
        if time < state.stream_time.saturating_sub(settings.allowed_lateness) {
            return EventOutcome::Late;
        }
        // Marked before the dedupe check: even a duplicate prunes the ids it remembers.
        if !state.changed.0 {
            state.changed = Changed(true);
            self.changed.push(CompactString::from(&*event.account_id));
        }
        let in_order = time >= state.stream_time;
        let stream_time = state.stream_time.max(time);
        let horizon = stream_time.saturating_sub(settings.allowed_lateness);
        if !state
            .seen
            .insert(xxh3_64(event.event_id.as_bytes()), time, horizon)
        {
            return EventOutcome::Duplicate;
        }
        latest(&mut self.newest, stream_time);
        state.stream_time = stream_time;
        state.first_seen = state.first_seen.min(time);
        if let Some(builtin) = builtin {
            state.apply(builtin, time, &props);
        }
        if let Some(key) = settings.types.key(type_id) {
            let latest_bucket = u32::try_from(stream_time / settings.bucket).unwrap_or(u32::MAX);
            state.windows.record(
                key,
                bucket,
                latest_bucket.saturating_sub(settings.horizon_buckets),
            );
        }

        let at = At {
            state,
            now: time,
            bucket,
        };
        settings.metrics.eval(at, &mut self.values);
        let score = settings.model.score(&self.values);
        let tier = settings.model.tier(score);
        let facts = Facts {
            values: &self.values,
            event_type: type_id,
            tier,
        };
        self.fired.clear();
        for (i, playbook) in settings.playbooks.iter().enumerate() {
            if playbook.fires(&facts) {
                self.fired.push(Trigger::Playbook(i));
            }
        }
        // A late event is scored at its own time, like any event, but only the newest
        // event says where the account stands: a late one neither moves the tier nor
        // makes it rise.
        let mut new_tier = in_order.then_some(tier);
        if let Some(rise) = &settings.tier_rise
            && in_order
            && tier > state.tier
            && tier >= rise.min
        {
            self.fired.push(Trigger::TierRise {
                key: rise.keys[tier.index()],
                cooldown: rise.cooldown,
            });
        }

        let mut emitted = 0;
        let mut suppressed = 0;
        let mut gate = None;
        for &trigger in &self.fired {
            let (kind, key, cooldown) = match trigger {
                Trigger::Playbook(i) => {
                    let p = &settings.playbooks[i];
                    (p.kind, p.key, p.cooldown)
                }
                Trigger::TierRise { key, cooldown } => (Kind::TierRise, key, cooldown),
            };
            if state.in_cooldown(key, time, cooldown) {
                self.stats.cooldown += 1;
                continue;
            }
            if let Some(blocking) =
                *gate.get_or_insert_with(|| settings.gates.blocking(state, time))
            {
                if state.note_suppressed(key, time, cooldown) {
                    self.stats.suppressed[blocking.index()] += 1;
                    suppressed += 1;
                }
                if let Trigger::TierRise { .. } = trigger {
                    // Keep the old tier: the rise is still news once the gate lifts.
                    new_tier = None;
                }
                continue;
            }
            let (playbook, shadow) = match trigger {
                Trigger::Playbook(i) => {
                    let p = &settings.playbooks[i];
                    (p.name.clone(), p.shadow)
                }
                Trigger::TierRise { .. } => (format_compact!("tier:{}", tier.as_str()), false),
            };
            let mut opportunity = opportunity(
                settings,
                state,
                event,
                kind,
                playbook,
                score,
                tier,
                &self.values,
            );
            opportunity.shadow = shadow;
            out.push(opportunity);
            state.start_cooldown(key, time);
            if shadow {
                self.stats.shadow += 1;
            } else {
                self.stats.opportunities[kind.index()][tier.index()] += 1;
            }
            emitted += 1;
        }
        if let Some(tier) = new_tier {
            state.tier = tier;
        }
        EventOutcome::Processed {
            opportunities: emitted,
            suppressed,
        }
    }
}

/// Decodes a record of Radar's envelope, and checks its key is its account.
#[inline]
fn decode_keyed(record: EventRecord<'_>, max_future_skew: Millis) -> Result<Event<'_>, Rejection> {
    let decoded = decode(record.bytes, record.time, max_future_skew);
    match record.key {
        Some(key) => keyed_by_account(decoded, key),
        None => decoded,
    }
}

/// `key_mismatch` unless the record's key is the event's account id: Kafka keeps one
/// key's records in order on one partition, and the per-account determinism rests on
/// it.
#[inline]
pub fn keyed_by_account<'r>(
    decoded: Result<Event<'r>, Rejection>,
    key: &[u8],
) -> Result<Event<'r>, Rejection> {
    match decoded {
        Ok(event) if key != event.account_id.as_bytes() => Err(key_mismatch(key)),
        decoded => decoded,
    }
}

/// The rejection of a record keyed otherwise than by its event's account.
#[cold]
fn key_mismatch(key: &[u8]) -> Rejection {
    let detail = if key.is_empty() {
        "the record has no key; key each event by its account_id".to_owned()
    } else {
        const SHOWN: usize = 64;
        let shown = String::from_utf8_lossy(&key[..key.len().min(SHOWN)]);
        let more = if key.len() > SHOWN { "…" } else { "" };
        format!("the record key {shown:?}{more} is not the event's account_id")
    };
    Rejection::new(RejectReason::KeyMismatch, detail)
}

/// Cache prefetch hints: they change no value, only when memory arrives.
mod prefetch {
    use crate::state::AccountState;

    /// Asks for every cache line of an account's state.
    pub fn state(state: &AccountState) {
        let start = (state as *const AccountState).cast::<u8>();
        for offset in (0..std::mem::size_of::<AccountState>()).step_by(64) {
            line(start.wrapping_add(offset));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[allow(unsafe_code)]
    fn line(address: *const u8) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: a prefetch is a hint that never faults, whatever the address, and SSE is
        // part of the x86-64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn line(_address: *const u8) {}
}

#[allow(clippy::too_many_arguments)]
fn opportunity(
    settings: &Settings,
    state: &AccountState,
    event: &Event<'_>,
    kind: Kind,
    playbook: CompactString,
    score: f64,
    tier: Tier,
    values: &[Option<f64>],
) -> Opportunity {
    let owner = match state.entitlement.arr.value() {
        Some(arr) if arr >= settings.sales_arr_threshold => Owner::Sales,
        _ => Owner::Cs,
    };
    Opportunity {
        opportunity_id: opportunity_id(&event.account_id, &playbook, &event.event_id),
        account_id: CompactString::from(&*event.account_id),
        kind,
        playbook,
        score,
        tier,
        breakdown: settings.model.breakdown(values),
        triggered_by: vec![CompactString::from(&*event.event_id)],
        owner,
        occurred_at: format_rfc3339(event.timestamp).into(),
        expansion_score: settings.priority.evaluate(kind, state, event.timestamp),
        shadow: false,
        config_version: settings.version.clone(),
    }
}
