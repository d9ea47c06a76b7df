//! The hot path: decode → state → windows → playbooks → score → gates, one thread.
//!
//! 1M generated events over 100k Zipf-skewed accounts (`radar generate --accounts 100000
//! --events 1000000 --seed 1`), processed by a fresh engine with the default config.
//! Budget (docs/design.md#budgets): ≥ 1,000,000 events/s on one core.
//!
//! `decode_only` runs the decoder alone (envelope and properties) over the same events, to
//! show how the time splits.
//!
//! Run: `cargo bench --bench hot_path`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use radar_core::{Engine, EventRecord};

const ACCOUNTS: u64 = 100_000;
const EVENTS: u64 = 1_000_000;
/// Records per `process_batch` call, about what one Kafka poll hands over.
const BATCH: usize = 512;

fn events() -> Vec<String> {
    let opts = radar_gen::Options {
        accounts: ACCOUNTS,
        events: EVENTS,
        seed: 1,
        ..Default::default()
    };
    radar_gen::Generator::new(opts)
        .expect("valid generator options")
        .collect()
}

fn hot_path(c: &mut Criterion) {
    let settings = Arc::new(radar::config::load(None).expect("default config is valid"));
    let events = events();
    let mut group = c.benchmark_group("hot_path");
    group.throughput(Throughput::Elements(EVENTS));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(3));
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("1M_events_100k_accounts", |b| {
        b.iter_batched(
            || Engine::new(settings.clone()),
            |mut engine| {
                let mut out = Vec::new();
                let mut outcomes = Vec::with_capacity(BATCH);
                for batch in events.chunks(BATCH) {
                    let records = batch.iter().map(|line| EventRecord {
                        bytes: line.as_bytes(),
                        time: None,
                        key: None,
                    });
                    engine.process_batch(records, &mut out, &mut outcomes);
                    black_box(&outcomes);
                    outcomes.clear();
                    out.clear();
                }
                engine
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("decode_only", |b| {
        b.iter(|| {
            for line in &events {
                if let Ok(event) = radar_core::event::decode(line.as_bytes(), None, 0) {
                    let _ = black_box(event.properties());
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
