//! End-to-end throughput: Radar's Kafka source against a bare rdkafka consumer on the
//! same broker and messages.
//!
//! Produces `RADAR_BENCH_EVENTS` generated events (default 50k, over
//! `RADAR_BENCH_ACCOUNTS` accounts, default 10k) to a
//! 3-partition topic, then in the same run measures (a) a bare `BaseConsumer` reading
//! them all and (b) Radar consuming, processing, checkpointing and writing the outbox, and
//! prints both rates and their ratio. Budget (docs/design.md#budgets): Radar ≥ 0.8× the bare consumer.
//! Then each consumer runs again in a process of its own (this binary, re-run with
//! `RADAR_BENCH_ROLE=bare|radar`), reading the same messages, and reports the CPU its whole
//! process spent, from `/proc/self/stat` (user + system, all threads): CPU per event for
//! both and their ratio (budget, issue #14: Radar ≤ 2× the bare consumer). Unlike
//! wall-clock rates, CPU time does not count the time a consumer waits for a broker that
//! shares the machine's cores. To count one role's instructions, run that process alone
//! under callgrind against a broker that already holds the events, in a group of its own:
//! `RADAR_BENCH_ROLE=radar RADAR_BENCH_GROUP=<new group> RADAR_BENCH_BOOTSTRAP=…
//! RADAR_BENCH_EVENTS=… valgrind --tool=callgrind <this bench's binary>`.
//! Then it produces at a fixed rate (`RADAR_BENCH_RATE` events/s, default 10,000, for 5 s)
//! while Radar consumes, and prints the event → outbox latency (from the produce call to
//! the opportunity being in the outbox, where delivery reads it; it is on disk by the
//! next checkpoint) at p50, p99 and max.
//! The broker is librdkafka's in-process mock cluster (which keeps about 5 MB per
//! partition, so stay near the default size), or the broker at `RADAR_BENCH_BOOTSTRAP`
//! (e.g. a tansu started by hand; topics are created on produce). `RADAR_BENCH_CLIENT`
//! adds librdkafka settings to Radar's consumer, e.g. `fetch.wait.max.ms=10` for the mock
//! cluster, which does not answer a waiting fetch when records arrive.
//!
//! Run: `cargo bench --bench pipeline`
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use radar_kafka::{
    CheckpointPolicy, OpportunitySink, OutboxSink, Progress, SinkError, Source, SourceConfig, Stop,
};
use radar_store::Store;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() {
    let events: u64 = std::env::var("RADAR_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    if let Ok(role) = std::env::var("RADAR_BENCH_ROLE") {
        return measure_role(&role, events);
    }
    let (_cluster, servers, broker) = match std::env::var("RADAR_BENCH_BOOTSTRAP") {
        Ok(servers) => (None, servers.clone(), servers),
        Err(_) => {
            let cluster = MockCluster::new(1).unwrap();
            cluster.create_topic("events", 3, 1).unwrap();
            cluster.create_topic("events.dead-letter", 1, 1).unwrap();
            cluster.create_topic("latency", 3, 1).unwrap();
            cluster.create_topic("latency.dead-letter", 1, 1).unwrap();
            let servers = cluster.bootstrap_servers();
            (Some(cluster), servers, "mock cluster".to_owned())
        }
    };

    let accounts: u64 = std::env::var("RADAR_BENCH_ACCOUNTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let opts = radar_gen::Options {
        accounts,
        events,
        seed: 1,
        ..Default::default()
    };
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &servers)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for line in radar_gen::Generator::new(opts).unwrap() {
        let key = line
            .split("\"account_id\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        loop {
            match producer.send(BaseRecord::to("events").key(&key).payload(&line)) {
                Ok(()) => break,
                Err(_) => {
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).unwrap();

    let bare = bare_consumer(&servers, "bare", events);
    let radar = radar_source(&servers, "radar", events);
    let (bare_rate, radar_rate) = (events as f64 / bare, events as f64 / radar);
    let metadata = producer
        .client()
        .fetch_metadata(Some("events"), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    println!(
        "pipeline: {events} events over {accounts} accounts, {partitions} partitions ({broker})"
    );
    println!("pipeline: bare rdkafka consumer {bare_rate:.0} events/s ({bare:.2} s)");
    println!("pipeline: radar source          {radar_rate:.0} events/s ({radar:.2} s)");
    println!(
        "pipeline: ratio {:.2} (budget ≥ 0.80)",
        radar_rate / bare_rate
    );
    let bare = cpu_of("bare", &servers, events);
    let radar = cpu_of("radar", &servers, events);
    let per_event = |cpu: &Cpu| cpu.seconds / events as f64 * 1e6;
    for (role, cpu) in [("bare rdkafka consumer", &bare), ("radar source", &radar)] {
        println!(
            "pipeline: {role:<21} CPU {:.2} µs/event ({:.2} s over {:.2} s, {} ticks; own process)",
            per_event(cpu),
            cpu.seconds,
            cpu.wall,
            cpu.ticks
        );
    }
    println!(
        "pipeline: CPU ratio {:.2} (budget ≤ 2.00); wall-clock ratio in those processes {:.2}",
        radar.seconds / bare.seconds,
        bare.wall / radar.wall
    );

    let rate: u64 = std::env::var("RADAR_BENCH_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut latencies = fixed_rate_latencies(&servers, rate, Duration::from_secs(5));
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "pipeline: event → outbox at {rate} events/s: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} opportunities)",
        at(0.5).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        latencies.len()
    );
}

/// An outbox sink that notes, when each flush has written opportunities to the outbox,
/// how long ago their triggering event was produced.
struct TimingSink {
    inner: OutboxSink,
    produced: Arc<Mutex<HashMap<String, Instant>>>,
    pending: Vec<String>,
    latencies: Vec<Duration>,
}

impl OpportunitySink for TimingSink {
    fn accept(
        &mut self,
        opportunity: radar_core::Opportunity,
        json: Vec<u8>,
    ) -> Result<(), SinkError> {
        if let Some(event) = opportunity.triggered_by.first() {
            self.pending.push(event.to_string());
        }
        self.inner.accept(opportunity, json)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.inner.flush()?;
        let now = Instant::now();
        let produced = self.produced.lock().unwrap();
        for event in self.pending.drain(..) {
            if let Some(at) = produced.get(&event) {
                self.latencies.push(now - *at);
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), SinkError> {
        self.inner.sync()
    }
}

/// Produces generated events at `rate` per second for `span` while a Radar source
/// consumes them; returns each opportunity's event → outbox latency.
fn fixed_rate_latencies(servers: &str, rate: u64, span: Duration) -> Vec<Duration> {
    let produced = Arc::new(Mutex::new(HashMap::new()));
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "1")
        .create()
        .unwrap();
    // Brokers that create topics on produce (tansu) need the topic before the consumer
    // subscribes; this record is rejected (dead-lettered) and timed by no one.
    producer
        .send(BaseRecord::to("latency").key("warm-up").payload("{}"))
        .unwrap();
    producer.flush(Duration::from_secs(10)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let mut config = source_config(servers, "latency", "radar-latency");
    config.max_batch = 10_000;
    let source = Source::new(
        config,
        Arc::new(radar::config::load(None).unwrap()),
        store.clone(),
    )
    .unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = TimingSink {
        inner: OutboxSink::new(store),
        produced: produced.clone(),
        pending: Vec::new(),
        latencies: Vec::new(),
    };
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let lines = radar_gen::Generator::new(radar_gen::Options {
                accounts: 10_000,
                events: rate * span.as_secs(),
                seed: 2,
                ..Default::default()
            })
            .unwrap();
            // Wait for the source's partitions: latency, not the group join, is measured.
            while progress.partitions.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            let started = Instant::now();
            for (sent, line) in lines.enumerate() {
                let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let field = |name: &str| {
                    line.split(&format!("\"{name}\":\""))
                        .nth(1)
                        .and_then(|rest| rest.split('"').next())
                        .unwrap_or_default()
                        .to_owned()
                };
                produced
                    .lock()
                    .unwrap()
                    .insert(field("event_id"), Instant::now());
                while producer
                    .send(
                        BaseRecord::to("latency")
                            .key(&field("account_id"))
                            .payload(&line),
                    )
                    .is_err()
                {
                    producer.poll(Duration::from_millis(1));
                }
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
            std::thread::sleep(Duration::from_secs(1));
            stop.graceful();
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    sink.latencies
}

/// CPU a process spent, from `/proc/self/stat`.
struct Cpu {
    /// User and system time of all its threads, in clock ticks (`USER_HZ`, 100 a second
    /// on Linux whatever the kernel's tick).
    ticks: u64,
    seconds: f64,
    /// Seconds from the consumer's first message to its last.
    wall: f64,
}

/// User and system ticks in a `stat` file of proc(5), with the command name.
fn stat_ticks(path: &str) -> Option<(String, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after it.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime, fields 14 and 15; the state (field 3) is fields[0].
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, ticks))
}

fn cpu_ticks() -> u64 {
    stat_ticks("/proc/self/stat").unwrap().1
}

/// Ticks of the process's live threads by name, numbers dropped (`rdk:broker1` and
/// `rdk:broker2` are `rdk:broker`): where the CPU went.
fn thread_ticks() -> String {
    let mut by_name = std::collections::BTreeMap::<String, u64>::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let path = task.path().join("stat");
        if let Some((name, ticks)) = stat_ticks(&path.to_string_lossy()) {
            let name = name.trim_end_matches(|c: char| c.is_ascii_digit());
            *by_name.entry(name.to_owned()).or_default() += ticks;
        }
    }
    let mut named: Vec<_> = by_name.into_iter().filter(|(_, t)| *t > 0).collect();
    named.sort_by_key(|(_, t)| std::cmp::Reverse(*t));
    named
        .iter()
        .map(|(name, ticks)| format!("{name} {ticks}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one consumer (`bare` or `radar`) in a process of its own, on the same messages.
fn cpu_of(role: &str, servers: &str, events: u64) -> Cpu {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env("RADAR_BENCH_ROLE", role)
        .env("RADAR_BENCH_BOOTSTRAP", servers)
        .env("RADAR_BENCH_EVENTS", events.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "the {role} process failed");
    let text = String::from_utf8(output.stdout).unwrap();
    if let Some(threads) = text.lines().find_map(|l| l.strip_prefix("threads ")) {
        println!("pipeline: {role} process, ticks by thread: {threads}");
    }
    let line = text.lines().find_map(|l| l.strip_prefix("cpu ")).unwrap();
    let mut numbers = line.split_whitespace();
    let mut next = || numbers.next().unwrap();
    let ticks: u64 = next().parse().unwrap();
    let wall: f64 = next().parse().unwrap();
    Cpu {
        ticks,
        seconds: ticks as f64 / 100.0,
        wall,
    }
}

/// In a child process: consumes every message as `role` does, then prints the process's
/// CPU ticks and the consumer's seconds from first message to last.
fn measure_role(role: &str, events: u64) {
    let servers = std::env::var("RADAR_BENCH_BOOTSTRAP").unwrap();
    let group = std::env::var("RADAR_BENCH_GROUP").unwrap_or_else(|_| format!("{role}-cpu"));
    let wall = match role {
        "bare" => bare_consumer(&servers, &group, events),
        "radar" => radar_source(&servers, &group, events),
        other => panic!("RADAR_BENCH_ROLE is bare or radar, not {other}"),
    };
    println!("cpu {} {wall}", cpu_ticks());
}

/// Prints the ticks of the live threads, in a child process, before its consumer (and
/// its threads) go.
fn print_thread_ticks() {
    if std::env::var_os("RADAR_BENCH_ROLE").is_some() {
        println!("threads {}", thread_ticks());
    }
}

/// Seconds for a bare consumer to read every message, from its first message on (the
/// group's assignment delay is not the consumer's speed).
fn bare_consumer(servers: &str, group: &str, events: u64) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&["events"]).unwrap();
    let mut read = 0;
    let mut first = None;
    let mut bytes = 0usize;
    while read < events {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            bytes += rdkafka::Message::payload(&message).map_or(0, <[u8]>::len);
            read += 1;
        }
    }
    std::hint::black_box(bytes);
    let elapsed = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    print_thread_ticks();
    elapsed
}

/// Radar's source config for the bench; `RADAR_BENCH_CLIENT="key=value,..."` adds
/// librdkafka settings (e.g. `fetch.wait.max.ms=10`).
fn source_config(servers: &str, topic: &str, group: &str) -> SourceConfig {
    let extra: Vec<(String, String)> = std::env::var("RADAR_BENCH_CLIENT")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    SourceConfig {
        bootstrap_servers: servers.to_owned(),
        group_id: group.into(),
        topics: vec![topic.into()],
        dead_letter_topic: format!("{topic}.dead-letter"),
        opportunities_topic: None,
        client: [
            ("session.timeout.ms".into(), "6000".into()),
            ("auto.offset.reset".into(), "earliest".into()),
        ]
        .into_iter()
        .chain(extra)
        .collect(),
        checkpoint: CheckpointPolicy {
            every_events: 100_000,
            every: Duration::from_secs(5),
        },
        poll_timeout: Duration::from_millis(100),
        max_batch: 10_000,
        advertise: None,
        mapped: Vec::new(),
        changelog: None,
    }
}

/// Seconds for Radar's source to consume and process every message, from the first on.
fn radar_source(servers: &str, group: &str, events: u64) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("state.redb")).unwrap());
    let settings = Arc::new(radar::config::load(None).unwrap());
    let config = source_config(servers, "events", group);
    let source = Source::new(config, settings, store.clone()).unwrap();
    let (stop, progress) = (Stop::default(), Progress::default());
    let mut sink = OutboxSink::new(store);
    let mut elapsed = 0.0;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while progress.consumed.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            let first = Instant::now();
            while progress.consumed.load(Ordering::Relaxed) < events {
                std::thread::sleep(Duration::from_millis(1));
            }
            elapsed = first.elapsed().as_secs_f64();
            stop.graceful();
        });
        source.run(&stop, &progress, &mut sink).unwrap();
    });
    print_thread_ticks();
    elapsed
}
