//! `radar demo`: the whole loop on one machine with nothing installed. librdkafka's
//! in-process mock cluster stands in for Kafka; a generator produces a live synthetic
//! stream at a set rate; the engine runs exactly as in `radar run`; and delivery sends
//! every opportunity, signed, to a local receiver that checks the signature and prints
//! it — and, with `--webhook`, to the user's own endpoint too. At the end it prints how
//! long opportunities took from their event's produce call to the receiver.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine as _;
use radar_delivery::settings::RawDestination;
use radar_delivery::signing::{SigningSecret, sign};
use radar_kafka::Stop;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tokio::net::TcpListener;

use crate::demo_crm::{self, DemoCrm};
use crate::{config, pipeline, summary};

const TOPIC: &str = "product-events";

/// `radar demo`'s options, as its command line takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// Events produced per second.
    #[arg(long, default_value_t = 1_000)]
    pub rate: u64,
    /// Accounts in the synthetic stream.
    #[arg(long, default_value_t = 500)]
    pub accounts: u64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// How fast event time runs: events are stamped with the current time, and with
    /// `--speed 3600` an hour of event time passes per second, so windows fill and
    /// cooldowns end while you watch.
    #[arg(long, default_value_t = 1.0, value_parser = positive_speed)]
    pub speed: f64,
    /// Stop after this long, e.g. 30s (default: run until Ctrl-C).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Address of the admin server (/metrics, /healthz, /readyz, /v1/…).
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub admin: SocketAddr,
    /// Also deliver every opportunity to this URL, as a signed Standard Webhook.
    #[arg(long, requires = "webhook_secret")]
    pub webhook: Option<String>,
    /// The whsec_… secret the --webhook endpoint verifies signatures with.
    #[arg(long, requires = "webhook")]
    pub webhook_secret: Option<String>,
    /// Also deliver to a local stand-in of this CRM (a company per account), printing
    /// each deal as it lands.
    #[arg(long, value_enum)]
    pub crm: Option<DemoCrm>,
    /// Send the events as teams already have them, mapped back by a `[[sources]]` entry:
    /// Segment track calls keyed by user (re-keyed by account), structured CloudEvents,
    /// or Avro in the schema-registry wire format.
    #[arg(long, value_enum)]
    pub source: Option<DemoSource>,
}

/// The shapes `radar demo --source` sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoSource {
    Segment,
    Cloudevents,
    Avro,
}

impl DemoSource {
    fn format(self) -> radar_gen::formats::Format {
        match self {
            DemoSource::Segment => radar_gen::formats::Format::Segment,
            DemoSource::Cloudevents => radar_gen::formats::Format::Cloudevents,
            DemoSource::Avro => radar_gen::formats::Format::Avro,
        }
    }
}

pub fn run(options: DemoOptions, stop: Arc<Stop>, stopping: Arc<AtomicBool>) -> Result<()> {
    let cluster = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    cluster
        .create_topic(TOPIC, 3, 1)
        .context("creating the demo topic")?;
    let servers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let runtime = pipeline::runtime()?;

    // The local receiver, with a secret made for this run.
    let mut key = [0u8; 32];
    rand::fill(&mut key);
    let receiver_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let received = Arc::new(AtomicU64::new(0));
    let timing = Arc::new(EndToEnd::new());
    let receiver = runtime.block_on(start_receiver(
        SigningSecret::parse(&receiver_secret).context("the demo secret")?,
        received.clone(),
        timing.clone(),
    ))?;

    let mut raw = config::load_raw(None)?;
    raw.kafka.bootstrap_servers = servers.clone();
    raw.kafka.group_id = "radar-demo".into();
    raw.kafka.topics = vec![TOPIC.into()];
    raw.kafka.dead_letter_topic = format!("{TOPIC}.dead-letter");
    // The mock cluster answers a waiting fetch only when its wait is over: keep it short
    // so alerts follow events within milliseconds.
    raw.kafka
        .client
        .insert("fetch_wait_max_ms".into(), "10".into());
    raw.checkpoint.path = dir.path().join("radar-state.redb").display().to_string();
    raw.admin.listen = options.admin.to_string();
    raw.delivery.poll_interval = Some("20ms".into());
    raw.delivery.allow_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
    raw.delivery.destinations = vec![RawDestination {
        name: "demo-receiver".into(),
        kind: "webhook".into(),
        url: Some(format!("http://{receiver}/radar")),
        secret_env: Some("RADAR_DEMO_RECEIVER_SECRET".into()),
        ..RawDestination::default()
    }];
    if let Some(url) = &options.webhook {
        // The endpoint named on the command line is trusted even if it is internal.
        raw.delivery.allow_networks.extend(addresses_of(url)?);
        raw.delivery.destinations.push(RawDestination {
            name: "your-webhook".into(),
            kind: "webhook".into(),
            url: Some(url.clone()),
            secret_env: Some("RADAR_DEMO_WEBHOOK_SECRET".into()),
            ..RawDestination::default()
        });
    }
    let crm_token = format!("demo-{:016x}", rand::random::<u64>());
    let standin = match options.crm {
        Some(crm) => {
            let (standin, destination) =
                runtime.block_on(demo_crm::start(crm, options.accounts, &crm_token))?;
            raw.delivery.destinations.push(destination);
            Some(standin)
        }
        None => None,
    };
    let private_key = standin.as_ref().and_then(|s| s.private_key.clone());
    let secrets = |name: &str| match name {
        demo_crm::TOKEN_VAR => Some(crm_token.clone()),
        demo_crm::KEY_VAR => private_key.clone(),
        "RADAR_DEMO_RECEIVER_SECRET" => Some(receiver_secret.clone()),
        "RADAR_DEMO_WEBHOOK_SECRET" => options.webhook_secret.clone(),
        _ => None,
    };
    if let Some(source) = options.source {
        let schemas = dir.path().join("schemas");
        std::fs::create_dir_all(&schemas).context("creating the demo's schema directory")?;
        std::fs::write(schemas.join("1.avsc"), radar_gen::formats::AVRO_SCHEMA)
            .context("writing the demo's Avro schema")?;
        let toml_text = radar_gen::formats::source_toml(source.format(), TOPIC, "schemas");
        #[derive(serde::Deserialize)]
        struct Sources {
            sources: Vec<radar_ingest::SourceSpec>,
        }
        raw.sources = toml::from_str::<Sources>(&toml_text)
            .context("the demo's source")?
            .sources;
        // The mock cluster creates no topics on request.
        cluster
            .create_topic(
                &radar_kafka::RekeyConfig::repartition_topic("radar-demo"),
                3,
                1,
            )
            .context("creating the demo's repartition topic")?;
    }
    let mut pipeline_config = config::pipeline_from_raw(&raw, &secrets)?;
    config::with_sources(&mut pipeline_config, &raw, dir.path())?;

    let producing = {
        let (servers, stopping, options) = (servers.clone(), stopping.clone(), options.clone());
        let timing = timing.clone();
        std::thread::Builder::new()
            .name("demo-generator".into())
            .spawn(move || produce(&servers, &options, &stopping, &timing))
            .context("starting the generator")?
    };
    if let Some(limit) = options.duration {
        let stop = stop.clone();
        let stopping = stopping.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            stopping.store(true, Ordering::SeqCst);
            stop.graceful();
        });
    }
    let finished = pipeline::run(pipeline_config, &runtime, stop.clone(), |admin| {
        eprintln!("radar demo: in-process Kafka at {servers}, topic {TOPIC} (3 partitions)");
        eprintln!(
            "radar demo: producing {} events/s over {} accounts; opportunities go to the local receiver at http://{receiver}/radar{}",
            options.rate,
            options.accounts,
            options
                .webhook
                .as_deref()
                .map(|u| format!(" and to {u}"))
                .unwrap_or_default()
        );
        eprintln!(
            "radar demo: metrics at http://{admin}/metrics, admin API at http://{admin}/v1/playbooks, /healthz, /readyz"
        );
        if let Some(standin) = &standin {
            eprintln!(
                "radar demo: a local {} stand-in at {} with a company per account takes the deals",
                standin.name, standin.url
            );
        }
        eprintln!("radar demo: Ctrl-C to stop");
    })?;
    stopping.store(true, Ordering::SeqCst);
    let produced = producing.join().unwrap_or(Ok(0))?;
    eprint!(
        "{}",
        summary::render(&finished.stats, finished.tracked_accounts)
    );
    eprintln!(
        "radar demo: produced {produced} events; the local receiver got {} signed opportunities",
        received.load(Ordering::SeqCst)
    );
    if let Some(standin) = &standin {
        eprintln!(
            "radar demo: the {} stand-in holds {} deals",
            standin.name,
            standin.landed.load(Ordering::SeqCst)
        );
    }
    eprintln!("{}", timing.report());
    Ok(())
}

/// Times each opportunity from the produce call of its triggering event to the local
/// receiver having the request: the end-to-end latency that docs/design.md#budgets
/// budgets (event → webhook request, p99 < 50 ms at 10k events/s).
#[derive(Debug)]
struct EndToEnd {
    started: Instant,
    /// When each recent event was handed to the producer, by a hash of its id; kept for
    /// [`EndToEnd::TRACKED_FOR`] so a long demo holds a bounded map.
    produced: Mutex<HashMap<u64, Instant>>,
    /// Each delivery's latency, and whether its event came after the warm-up.
    measured: Mutex<Vec<(Duration, bool)>>,
    /// Deliveries whose event was produced too long before to be timed.
    untimed: AtomicU64,
    hasher: RandomState,
}

impl EndToEnd {
    const TRACKED_FOR: Duration = Duration::from_secs(30);
    /// The demo's first seconds hold the consumer group's join (about 3 s, while events
    /// already wait in Kafka) and a burst of opportunities (every account is new, so tiers
    /// rise everywhere at once); the report also shows the time after them.
    const WARM_UP: Duration = Duration::from_secs(10);

    fn new() -> EndToEnd {
        EndToEnd {
            started: Instant::now(),
            produced: Mutex::new(HashMap::new()),
            measured: Mutex::new(Vec::new()),
            untimed: AtomicU64::new(0),
            hasher: RandomState::new(),
        }
    }

    /// Notes an event's produce call; a duplicate (the generator sends some, as
    /// at-least-once producers do) keeps the first time.
    fn produced(&self, event_id: &str, at: Instant) {
        if let Ok(mut produced) = self.produced.lock() {
            produced.entry(self.hasher.hash_one(event_id)).or_insert(at);
        }
    }

    fn forget_older_than(&self, now: Instant) {
        if let Ok(mut produced) = self.produced.lock() {
            produced.retain(|_, at| now.duration_since(*at) < Self::TRACKED_FOR);
        }
    }

    fn received(&self, event_id: &str) {
        let at = self
            .produced
            .lock()
            .ok()
            .and_then(|p| p.get(&self.hasher.hash_one(event_id)).copied());
        match at {
            Some(at) => {
                if let Ok(mut measured) = self.measured.lock() {
                    measured.push((at.elapsed(), at >= self.started + Self::WARM_UP));
                }
            }
            None => {
                self.untimed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn report(&self) -> String {
        let Ok(measured) = self.measured.lock() else {
            return String::new();
        };
        let line = |mut times: Vec<Duration>| {
            times.sort_unstable();
            let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
            match times.len() {
                0 => "none".to_owned(),
                n => format!(
                    "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({n})",
                    at(0.5),
                    at(0.99),
                    at(1.0)
                ),
            }
        };
        let untimed = match self.untimed.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!(
                "; {n} more arrived over {} s after their event, untimed",
                Self::TRACKED_FOR.as_secs()
            ),
        };
        format!(
            "radar demo: event → webhook (produce call → the receiver has the request): {}; after the first {} s: {}{untimed}",
            line(measured.iter().map(|(d, _)| *d).collect()),
            Self::WARM_UP.as_secs(),
            line(
                measured
                    .iter()
                    .filter(|(_, warm)| *warm)
                    .map(|(d, _)| *d)
                    .collect()
            ),
        )
    }
}

/// The IP networks (one address each) that `url`'s host resolves to.
fn addresses_of(url: &str) -> Result<Vec<String>> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("--webhook: {url:?} is not a URL"))?;
    let addresses = parsed
        .socket_addrs(|| None)
        .with_context(|| format!("--webhook: resolving the host of {url:?}"))?;
    Ok(addresses
        .iter()
        .map(|a| match a.ip() {
            std::net::IpAddr::V4(ip) => format!("{ip}/32"),
            std::net::IpAddr::V6(ip) => format!("{ip}/128"),
        })
        .collect())
}

/// Produces generated events keyed by account at `options.rate` per second until told to
/// stop; returns how many.
fn produce(
    servers: &str,
    options: &DemoOptions,
    stopping: &AtomicBool,
    timing: &EndToEnd,
) -> Result<u64> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("linger.ms", "5")
        .create()
        .context("creating the demo producer")?;
    let avro = apache_avro::Schema::parse_str(radar_gen::formats::AVRO_SCHEMA)
        .context("the demo's Avro schema")?;
    // Event time starts now and runs `speed` times as fast as the wall clock: each
    // event keeps the generator's jitter (events up to two hours late) around it, and
    // its record carries the same time, which `too_far_in_future` is judged against.
    let wall_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let generator = radar_gen::Generator::new(radar_gen::Options {
        accounts: options.accounts,
        events: u64::MAX / 2,
        seed: options.seed,
        start_ms: wall_start,
        ..Default::default()
    })?;
    let started = Instant::now();
    let (mut sent, mut pruned) = (0u64, Instant::now());
    for line in generator {
        if stopping.load(Ordering::SeqCst) {
            break;
        }
        // Pace by elapsed time, in small steps, so the rate holds whatever the batch.
        let due = (started.elapsed().as_secs_f64() * options.rate as f64) as u64;
        if sent >= due {
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut event = serde_json::from_str::<serde_json::Value>(&line).unwrap_or_default();
        let ahead = (started.elapsed().as_secs_f64() * 1000.0 * options.speed) as i64;
        let clock = wall_start.saturating_add(ahead);
        if let Some(stamped) = event["timestamp"]
            .as_str()
            .and_then(radar_core::time::parse_rfc3339)
        {
            event["timestamp"] =
                radar_core::time::format_rfc3339(stamped.saturating_add(ahead)).into();
        }
        let line = event.to_string();
        let mut key = event["account_id"].as_str().unwrap_or_default().to_owned();
        let payload: Vec<u8> = match options.source {
            None => line.into_bytes(),
            Some(DemoSource::Segment) => {
                let call = radar_gen::formats::segment(&line).unwrap_or_default();
                // Keyed as RudderStack's Kafka destination keys it: by user.
                key = serde_json::from_str::<serde_json::Value>(&call)
                    .ok()
                    .and_then(|c| c["userId"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                call.into_bytes()
            }
            Some(DemoSource::Cloudevents) => radar_gen::formats::cloudevents(&line)
                .unwrap_or_default()
                .into_bytes(),
            // A line the schema cannot hold (a malformed one) goes as it is: a dead letter.
            Some(DemoSource::Avro) => {
                radar_gen::formats::avro(&avro, &line).unwrap_or_else(|| line.into_bytes())
            }
        };
        timing.produced(
            event["event_id"].as_str().unwrap_or_default(),
            Instant::now(),
        );
        if pruned.elapsed() >= Duration::from_secs(1) {
            timing.forget_older_than(Instant::now());
            pruned = Instant::now();
        }
        while let Err((e, _)) = producer.send(
            BaseRecord::to(TOPIC)
                .key(&key)
                .payload(&payload)
                .timestamp(clock),
        ) {
            if stopping.load(Ordering::SeqCst) {
                return Ok(sent);
            }
            tracing::warn!(error = %e, "demo: producing; retrying");
            producer.poll(Duration::from_millis(100));
        }
        sent += 1;
        producer.poll(Duration::ZERO);
    }
    let _ = producer.flush(Duration::from_secs(5));
    Ok(sent)
}

/// A webhook receiver on 127.0.0.1 that checks each delivery's signature and prints the
/// opportunity, as a CRM integration would receive it.
async fn start_receiver(
    secret: SigningSecret,
    received: Arc<AtomicU64>,
    timing: Arc<EndToEnd>,
) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the local receiver")?;
    let addr = listener.local_addr()?;
    let secret = Arc::new(secret);
    let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let (secret, received, timing) = (secret.clone(), received.clone(), timing.clone());
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
            let expected = sign(
                &[(*secret).clone()],
                &id,
                timestamp.parse().unwrap_or_default(),
                &body,
            );
            if header("webhook-signature") != expected {
                eprintln!("receiver: {id}: bad signature, refused");
                return StatusCode::UNAUTHORIZED;
            }
            let event: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let o = &event["data"];
            timing.received(o["triggered_by"][0].as_str().unwrap_or_default());
            received.fetch_add(1, Ordering::SeqCst);
            println!(
                "receiver: {} {:<12} {:<20} tier {:<8} score {:>5} owner {:<5} (id {})",
                o["occurred_at"].as_str().unwrap_or_default(),
                o["account_id"].as_str().unwrap_or_default(),
                o["playbook"].as_str().unwrap_or_default(),
                o["tier"].as_str().unwrap_or_default(),
                o["score"],
                o["owner"].as_str().unwrap_or_default(),
                id
            );
            StatusCode::NO_CONTENT
        }
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "demo: the receiver stopped");
        }
    });
    Ok(addr)
}

/// `--speed`: a positive factor up to a million (a million seconds of event time, 11
/// days, per second is already far more than a demo shows).
fn positive_speed(text: &str) -> Result<f64, SpeedOutOfRange> {
    match text.parse::<f64>() {
        Ok(speed) if speed > 0.0 && speed <= 1e6 => Ok(speed),
        _ => Err(SpeedOutOfRange(text.to_owned())),
    }
}

/// A `--speed` that is not a positive number up to a million.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a number between 0 and 1000000")]
struct SpeedOutOfRange(String);
