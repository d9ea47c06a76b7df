//! `radar run` (and `radar demo`): the Kafka source on this (the calling) thread, delivery
//! and the admin server on a small tokio runtime beside it. The source's hot loop never
//! waits on either: it writes the outbox and nudges delivery, which reads it on its own
//! time (with `state.store = "kafka"` it produces to the opportunities topic, which
//! delivery reads as its own consumer group).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use radar_core::Stats;
use radar_delivery::{DeliveryService, DeliveryStore, KafkaDelivery};
use radar_kafka::{OutboxSink, Progress, ShadowLogged, Source, Stop, TopicSink};
use radar_store::Store;
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::admin::{self, AdminState};
use crate::config::PipelineConfig;
use crate::lookup::Lookup;
use crate::metrics::Metrics;
use crate::reload::Reloader;

/// What a finished run reports.
#[derive(Debug)]
pub struct Finished {
    pub stats: Stats,
    pub tracked_accounts: usize,
}

/// How long a stopping pipeline waits for delivery to send what is due.
const DELIVERY_DRAIN: Duration = Duration::from_secs(5);

/// Whether the outbox is empty and no destination has a delivery due now.
fn delivered_due(store: &Store, destinations: &[String]) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    store.outbox_len().is_ok_and(|n| n == 0)
        && destinations.iter().all(|d| {
            store
                .due_deliveries(d, now, 1)
                .is_ok_and(|due| due.is_empty())
        })
}

/// A runtime for delivery and the admin server: two threads are plenty for HTTP.
pub fn runtime() -> Result<Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("radar-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

/// Runs until `stop`; `started` is told the admin server's address once it listens.
pub fn run(
    config: PipelineConfig,
    runtime: &Runtime,
    stop: Arc<Stop>,
    started: impl FnOnce(SocketAddr),
) -> Result<Finished> {
    // At once: a SIGHUP before the source is up must not end the process (its default).
    let hangup = Arc::new(std::sync::atomic::AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())
        .context("installing the SIGHUP handler")?;
    if let Some(problem) = crate::config::store_directory_problem(&config.store_path) {
        anyhow::bail!(problem);
    }
    let store = Arc::new(Store::open(&config.store_path).map_err(|e| {
        // Only a file another process holds locked is worth a guess at who.
        let held = e.held_elsewhere();
        anyhow::Error::new(e).context(format!(
            "opening the state store {}{}",
            config.store_path.display(),
            if held {
                " (another radar is using it)"
            } else {
                ""
            }
        ))
    })?);
    if let Some(aside) = store.moved_aside() {
        tracing::error!(
            store = %config.store_path.display(),
            reason = store.moved_aside_because().unwrap_or("unusable"),
            moved_to = %aside.display(),
            "the state store was unusable; moved it aside and started afresh: partitions are rebuilt from what Kafka holds, and deliveries that waited in it are gone"
        );
    }
    if store.repaired() {
        tracing::warn!(
            store = %config.store_path.display(),
            "the state store failed its integrity check and was repaired to its last intact commit"
        );
    }
    // With the state in Kafka, delivery's topics are created before the source produces
    // to the first of them.
    let kafka_delivery = match (&config.kafka_delivery, config.source.topics.as_slice()) {
        (Some(kafka), [source_topic]) => {
            let first_seq = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            Some(
                KafkaDelivery::open(kafka.clone(), source_topic, first_seq)
                    .context("setting up delivery's topics")?,
            )
        }
        _ => None,
    };
    let mut config = config;
    let progress = Arc::new(Progress::default());
    let rekeyers = start_sources(&mut config, &stop, &progress)?;
    let types = &config.engine.types;
    let type_names = types.ids().map(|id| types.name(id).to_owned()).collect();
    let advertise = config.source.advertise.clone();
    let on_topic = match &config.source.opportunities_topic {
        Some(topic) => Some(
            TopicSink::new(&config.source, topic)
                .map_err(|e| anyhow::anyhow!(e))
                .context("starting the opportunities topic's producer")?,
        ),
        None => None,
    };
    let source = Source::new(config.source, Arc::new(config.engine), store.clone())
        .context("starting the Kafka consumer")?;
    let metrics = Metrics::new(type_names);
    metrics.destinations(&config.delivery.destinations);
    let destinations: Vec<String> = config
        .delivery
        .destinations
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let reloader = Arc::new(Reloader::new(
        config.config_path.clone(),
        config.raw.clone(),
        source.settings_switch(),
        metrics.clone(),
    ));
    reload_on_sighup(reloader.clone(), hangup, stop.clone())?;
    let peers = source
        .peers()
        .context("reaching the consumer group's members")?;
    let lookup = match (peers, &config.access.peer) {
        (Some(peers), Some(token)) => Some(Arc::new(
            Lookup::new(
                Arc::new(peers),
                token.clone(),
                config.access.peer_guard.clone(),
                metrics.clone(),
            )
            .context("the client that asks peers")?,
        )),
        (Some(_), None) => {
            tracing::warn!(
                "no peer token (admin.peer_token_env, or the admin token): /v1/accounts answers only for the accounts this instance holds"
            );
            None
        }
        (None, _) => None,
    };
    let bound = runtime
        .block_on(admin::serve(
            config.admin,
            AdminState {
                metrics: metrics.clone(),
                progress: progress.clone(),
                store: store.clone(),
                in_force: reloader.in_force(),
                reloader: Some(reloader),
                access: config.access.clone(),
                accounts: Some(source.inspector()),
                lookup,
                advertise,
            },
        ))
        .with_context(|| format!("admin.listen: binding {}", config.admin))?;

    let mut delivery = DeliveryService::new(store.clone(), config.delivery, Arc::new(metrics))
        .context("starting delivery")?;
    if let Some(kafka) = &kafka_delivery {
        delivery = delivery.over_kafka(kafka.clone());
    }
    let waker = delivery.outbox_waker();
    let (stop_delivery, delivery_stopped) = watch::channel(false);
    // Delivery ending on its own (it should not) stops the source too: opportunities
    // would otherwise pile up in the outbox behind a green /readyz.
    let delivering = {
        let (stop, stopping) = (stop.clone(), delivery_stopped.clone());
        runtime.spawn(async move {
            let outcome = tokio::spawn(delivery.run(delivery_stopped)).await;
            if !*stopping.borrow() {
                tracing::error!("delivery stopped unexpectedly; stopping the pipeline");
                stop.graceful();
            }
            outcome
        })
    };
    started(bound);
    // Shadow playbooks' opportunities go to the admin API's log; live ones to the
    // opportunities topic when there is one, and to the local outbox unless delivery
    // reads from that topic (`store = "kafka"`).
    let consumed = if kafka_delivery.is_some() {
        source.run(
            &stop,
            &progress,
            &mut ShadowLogged::new(progress.clone(), on_topic),
        )
    } else {
        let outbox = OutboxSink::new(store.clone()).on_written(move || waker.notify_one());
        let mut sink = ShadowLogged::new(progress.clone(), (on_topic, outbox));
        source.run(&stop, &progress, &mut sink)
    };

    // Delivery gets a moment to send what the last rounds wrote and is due now, then
    // drains its in-flight requests; whatever is left waits on disk for the next start.
    let settled = Instant::now();
    while settled.elapsed() < DELIVERY_DRAIN && !delivered_due(&store, &destinations) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stop_delivery.send(true);
    runtime
        .block_on(delivering)
        .context("delivery task")?
        .context("delivery task")?
        .context("delivery")?;
    // A re-keying loop that failed fails the run (it stopped the pipeline when it did).
    let mut rekeyed = Ok(());
    for rekeyer in rekeyers {
        let ended = match rekeyer.join() {
            Ok(ended) => ended.map_err(anyhow::Error::new),
            Err(_) => Err(anyhow::anyhow!("the re-keying thread panicked")),
        };
        if rekeyed.is_ok() {
            rekeyed = ended;
        }
    }
    let stats = consumed.context("consuming events")?;
    rekeyed.context("re-keying")?;
    Ok(Finished {
        stats,
        tracked_accounts: progress.tracked_accounts.load(Ordering::Relaxed) as usize,
    })
}

/// Hands the engine's source the topics its `[[sources]]` map (keyed by account), and
/// starts a re-keying loop, on a thread of its own, for each source keyed by user
/// (docs/design.md#re-keying). A loop that fails stops the pipeline.
fn start_sources(
    config: &mut PipelineConfig,
    stop: &Arc<Stop>,
    progress: &Progress,
) -> Result<Vec<std::thread::JoinHandle<Result<(), radar_kafka::SourceError>>>> {
    let cache = config
        .store_path
        .parent()
        .map(|dir| dir.join("schemas"))
        .unwrap_or_else(|| "schemas".into());
    let mut loops = Vec::new();
    for ingest in &config.sources {
        let mapped = Arc::new(crate::ingest::mapped_source(ingest, &cache));
        let mut counts = radar_kafka::SourceCounts {
            name: ingest.source.name().to_owned(),
            mapped: mapped.clone(),
            rekey: None,
        };
        match ingest.source.keyed_by() {
            radar_ingest::spec::KeyedBy::Account => {
                for topic in &ingest.source.spec().topics {
                    config.source.mapped.push((topic.clone(), mapped.clone()));
                }
            }
            radar_ingest::spec::KeyedBy::User => {
                let rekey = radar_kafka::RekeyConfig {
                    client: config.source.client_config(),
                    group_id: config.source.group_id.clone(),
                    repartition_topic: radar_kafka::RekeyConfig::repartition_topic(
                        &config.source.group_id,
                    ),
                    dead_letter_topic: config.source.dead_letter_topic.clone(),
                    replication: config.raw.state.changelog_replication,
                    poll_timeout: config.source.poll_timeout,
                    commit_every: config.source.checkpoint.every,
                    max_future_skew: config.engine.max_future_skew,
                };
                let rekeyer = radar_kafka::Rekeyer::new(rekey, mapped)
                    .with_context(|| format!("re-keying source {}", ingest.source.name()))?;
                let stop = stop.clone();
                let rekeyed = Arc::new(radar_kafka::RekeyCounts::default());
                counts.rekey = Some(rekeyed.clone());
                let handle = std::thread::Builder::new()
                    .name(format!("rekey-{}", ingest.source.name()))
                    .spawn(move || {
                        let ran = rekeyer.run(&stop, &rekeyed);
                        if ran.is_err() {
                            // The error is reported when the run ends.
                            stop.graceful();
                        }
                        ran
                    })
                    .context("starting a re-keying thread")?;
                loops.push(handle);
            }
        }
        if let Ok(mut sources) = progress.sources.lock() {
            sources.push(counts);
        }
    }
    Ok(loops)
}

/// Reloads the configuration on each SIGHUP (raised in `hangup`) until the pipeline stops.
fn reload_on_sighup(
    reloader: Arc<Reloader>,
    hangup: Arc<std::sync::atomic::AtomicBool>,
    stop: Arc<Stop>,
) -> Result<()> {
    std::thread::Builder::new()
        .name("reload-on-sighup".into())
        .spawn(move || {
            while !stop.is_graceful() && !stop.is_abrupt() {
                if hangup.swap(false, Ordering::SeqCst) {
                    reloader.reload();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .context("starting the SIGHUP watcher")?;
    Ok(())
}
