//! Memory per tracked account, measured by a counting global allocator.
//!
//! Generates `RADAR_BENCH_EVENTS` events (default 8M) over 1M Zipf-skewed accounts,
//! holds them in memory, then counts the bytes the engine keeps live after processing
//! them all with the default config (30-day windows, default signals). Budget
//! (docs/design.md#budgets): ≤ 1 KiB per tracked account.
//!
//! It also times an engine snapshot (what a checkpoint writes) and its restore, and
//! measures one hot account (200,000 events in a day): the bytes it keeps live and its
//! changelog record, which must stay far under Kafka's 1 MB whatever its traffic.
//!
//! Run: `cargo bench --bench account_memory`
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use radar_core::Engine;
use radar_store::{Checkpoint, Content, Store};

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Accounts in the generated stream.
const ACCOUNTS: u64 = 1_000_000;

fn main() {
    let events: u64 = std::env::var("RADAR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8_000_000);
    let opts = radar_gen::Options {
        accounts: ACCOUNTS,
        events,
        seed: 1,
        ..Default::default()
    };
    let lines: Vec<String> = radar_gen::Generator::new(opts)
        .expect("valid options")
        .collect();
    let settings = Arc::new(radar::config::load(None).expect("default config is valid"));
    let settings_for_hot = settings.clone();

    let before = LIVE.load(Ordering::Relaxed);
    let allocations_before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut engine = Engine::new(settings.clone());
    let mut out = Vec::new();
    for line in &lines {
        engine.process(line.as_bytes(), None, &mut out);
        out.clear();
    }
    drop(out);
    let live = LIVE.load(Ordering::Relaxed) - before;
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - allocations_before;
    let accounts = engine.tracked_accounts();
    println!("account_memory: {events} events, {accounts} tracked accounts");
    println!(
        "account_memory: {live} bytes live in the engine = {:.0} bytes per tracked account",
        live as f64 / accounts as f64
    );
    println!(
        "account_memory: {:.2} allocations per event ({} opportunities)",
        allocations as f64 / events as f64,
        engine.stats().opportunities_total()
    );
    println!(
        "account_memory: state inline {} bytes; map entry overhead included above",
        std::mem::size_of::<radar_core::state::AccountState>()
    );

    // Checkpoint cost: the snapshot a checkpoint writes, and restoring it (budget: ≤ 5 s
    // for 1M accounts).
    let started = Instant::now();
    let snapshot = engine.snapshot();
    let encoded = started.elapsed();
    engine.forget_changes();

    // An incremental checkpoint: the changes after 100k more events (the next day) over
    // the same accounts.
    let more: Vec<String> = radar_gen::Generator::new(radar_gen::Options {
        accounts: ACCOUNTS,
        events: 100_000,
        seed: 2,
        days: 1,
        start_ms: radar_gen::Options::default().start_ms + 30 * 86_400_000,
        ..Default::default()
    })
    .expect("valid options")
    .collect();
    let mut out = Vec::new();
    for line in &more {
        engine.process(line.as_bytes(), None, &mut out);
    }
    let changed = engine.changed_accounts();
    let started = Instant::now();
    let changes = engine.take_changes();
    let changes_encoded = started.elapsed();
    drop(engine);

    let started = Instant::now();
    let mut restored = Engine::restore(settings, &snapshot).expect("a fresh snapshot restores");
    let decoded = started.elapsed();
    println!(
        "account_memory: snapshot of {} accounts: {} bytes ({:.0} per account), written in {:.2} s, restored in {:.2} s",
        restored.tracked_accounts(),
        snapshot.len(),
        snapshot.len() as f64 / restored.tracked_accounts() as f64,
        encoded.as_secs_f64(),
        decoded.as_secs_f64()
    );
    let started = Instant::now();
    restored
        .apply_changes(&changes)
        .expect("fresh changes apply");
    println!(
        "account_memory: changes after 100k more events: {changed} accounts, {} bytes, written in {:.3} s, applied in {:.3} s",
        changes.len(),
        changes_encoded.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    hot_account(&settings_for_hot);

    // What a restart opens first: the store file with both, through redb's integrity
    // check, which reads every page.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("state.redb");
    {
        let store = Store::open(&path).expect("a new store");
        for (offset, content, state) in [
            (1, Content::Snapshot, snapshot),
            (2, Content::Changes, changes),
        ] {
            let checkpoint = Checkpoint {
                offset,
                content,
                state,
            };
            store
                .save_checkpoint("events", 0, &checkpoint)
                .expect("a checkpoint");
        }
    }
    let started = Instant::now();
    let store = Store::open(&path).expect("the store reopens");
    println!(
        "account_memory: opening the {} MB store file, integrity check included: {:.2} s (moved aside: {})",
        std::fs::metadata(&path).map_or(0, |m| m.len()) >> 20,
        started.elapsed().as_secs_f64(),
        store.moved_aside().is_some()
    );
}

/// One account sending 200,000 events in a day: live bytes and changelog record size.
fn hot_account(settings: &Arc<radar_core::Settings>) {
    let lines: Vec<String> = radar_gen::Generator::new(radar_gen::Options {
        accounts: 1,
        events: 200_000,
        seed: 3,
        days: 1,
        ..Default::default()
    })
    .expect("valid options")
    .collect();
    let before = LIVE.load(Ordering::Relaxed);
    let mut engine = Engine::new(settings.clone());
    let mut out = Vec::new();
    for line in &lines {
        engine.process(line.as_bytes(), None, &mut out);
        out.clear();
    }
    drop(out);
    let live = LIVE.load(Ordering::Relaxed) - before;
    let record = engine
        .changed_account_records()
        .updated
        .first()
        .map_or(0, |(_, state)| state.len());
    println!(
        "account_memory: one hot account, 200,000 events in a day: {live} bytes live, a changelog record of {record} bytes"
    );
}
