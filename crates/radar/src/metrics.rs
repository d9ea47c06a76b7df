//! Prometheus metrics, named `radar_<subsystem>_<thing>_<unit>[_total]`, never labelled
//! by account. Pipeline counts are copied from the source's [`Progress`] when scraped
//! (the hot path only bumps plain counters in the engine); delivery reports through
//! the [`Observer`] trait as it goes.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use radar_core::Kind;
use radar_core::event::RejectReason;
use radar_core::gates::Gate;
use radar_core::scoring::Tier;
use radar_kafka::Progress;
use radar_kafka::quarantine::Unusable;
use radar_store::{Content, Store};

use crate::lookup::PeerProblem;

/// Every metric radar exports, in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    consumed: IntCounter,
    consumer_errors: IntCounter,
    commits_refused: IntCounter,
    fenced: IntCounter,
    /// Event type names, by type id.
    types: Vec<String>,
    by_type: IntCounterVec,
    rounds: Histogram,
    processed: IntCounter,
    rejected: IntCounterVec,
    dead_letters: IntCounterVec,
    quarantined: IntCounterVec,
    quarantine_lost: IntCounter,
    unknown_type: IntCounter,
    late: IntCounter,
    duplicate: IntCounter,
    opportunities: IntCounterVec,
    suppressed: IntCounterVec,
    cooldown: IntCounter,
    tracked: IntGauge,
    evicted: IntCounter,
    partitions: IntGauge,
    lag: IntGaugeVec,
    checkpoint_duration: Histogram,
    checkpoint_age: prometheus::Gauge,
    checkpoints: IntCounterVec,
    checkpoint_bytes: IntCounterVec,
    outbox_depth: IntGauge,
    attempts: IntCounterVec,
    delivery_latency: HistogramVec,
    queue_depth: IntGaugeVec,
    queue_age: prometheus::GaugeVec,
    breaker: IntGaugeVec,
    /// A CRM's credentials and API allocation.
    crm: CrmMetrics,
    /// Partitions of the opportunities topic taken over from another instance.
    takeover: TakeoverMetrics,
    dead_lettered: IntCounterVec,
    overdue: prometheus::GaugeVec,
    unacknowledged: IntGaugeVec,
    park_failures: IntCounterVec,
    delivery_letters_degraded: IntCounterVec,
    crm_records: IntCounterVec,
    shadow: IntCounterVec,
    config_info: IntGaugeVec,
    reloads: IntCounterVec,
    peer_problems: IntCounterVec,
    registry_errors: IntCounterVec,
    rekeyed: IntCounterVec,
    rekey_errors: IntCounterVec,
    rekey_dead_letters: IntCounterVec,
    /// What `GET /v1/destinations` shows.
    board: Arc<DestinationBoard>,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    register(registry, metric)
}

fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry
        .register(Box::new(metric.clone()))
        .unwrap_or_else(|e| panic!("registering a metric: {e}"));
    metric
}

/// Brings a counter up to a total counted elsewhere.
fn catch_up(counter: &IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
];

impl Metrics {
    /// Metrics for an engine whose event types are `types` (by type id).
    pub fn new(types: Vec<String>) -> Metrics {
        let registry = Registry::new();
        let r = &registry;
        let vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                IntCounterVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        };
        let gauge_vec = |name: &str, help: &str, labels: &[&str]| {
            register(
                r,
                IntGaugeVec::new(Opts::new(name, help), labels)
                    .unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        };
        let gauge = |name: &str, help: &str| {
            register(
                r,
                IntGauge::new(name, help).unwrap_or_else(|e| panic!("{name}: {e}")),
            )
        };
        let metrics = Metrics {
            consumed: counter(
                r,
                "radar_events_consumed_total",
                "Records consumed from Kafka.",
            ),
            consumer_errors: counter(
                r,
                "radar_kafka_consumer_errors_total",
                "Errors the Kafka consumer reported (a broker away, a topic missing); logged at most every 10 s.",
            ),
            commits_refused: counter(
                r,
                "radar_kafka_commits_refused_total",
                "Offset commits the group refused (a rebalance in progress, a lost assignment); harmless, the checkpoints stand.",
            ),
            fenced: counter(
                r,
                "radar_changelog_fenced_total",
                "Partitions dropped unwritten at a checkpoint: another instance had written their changelog since.",
            ),
            registry_errors: vec(
                "radar_ingest_registry_errors_total",
                "Schema registry requests that got no answer (down, refusing, slow), by source; the source waits and asks again.",
                &["source"],
            ),
            rekeyed: vec(
                "radar_ingest_rekeyed_total",
                "Records of a source keyed by user produced to the repartition topic, by source.",
                &["source"],
            ),
            rekey_errors: vec(
                "radar_ingest_rekey_errors_total",
                "Consumer errors and refused offset commits of a re-keying loop, by source; each retried, logged at most every 10 s.",
                &["source"],
            ),
            rekey_dead_letters: vec(
                "radar_ingest_dead_letters_total",
                "Records of a source keyed by user that could not be mapped, by source and reason (those of sources keyed by account count in radar_events_rejected_total).",
                &["source", "reason"],
            ),
            board: Arc::default(),
            types,
            by_type: vec(
                "radar_events_by_type_total",
                "Events by type: each known type, `unknown` for others, `invalid` for rejected records.",
                &["type"],
            ),
            rounds: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "radar_processing_round_seconds",
                        "Time to process one poll round of records (decode to opportunities).",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .unwrap_or_else(|e| panic!("round histogram: {e}")),
            ),
            processed: counter(
                r,
                "radar_events_processed_total",
                "Accepted events that changed account state.",
            ),
            rejected: vec(
                "radar_events_rejected_total",
                "Events sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            unknown_type: counter(
                r,
                "radar_events_unknown_type_total",
                "Events of a type no config knows (ignored).",
            ),
            late: counter(
                r,
                "radar_events_late_total",
                "Events older than the lateness horizon.",
            ),
            duplicate: counter(
                r,
                "radar_events_duplicate_total",
                "Repeated event ids dropped.",
            ),
            opportunities: vec(
                "radar_opportunities_emitted_total",
                "Opportunities written to the outbox.",
                &["kind", "tier"],
            ),
            suppressed: vec(
                "radar_opportunities_suppressed_total",
                "Opportunities held back by a gate.",
                &["gate"],
            ),
            cooldown: counter(
                r,
                "radar_opportunities_cooldown_total",
                "Firings within the cooldown of an emitted opportunity.",
            ),
            evicted: counter(
                r,
                "radar_accounts_evicted_total",
                "Accounts reset or dropped after engine.idle_ttl without events.",
            ),
            dead_letters: vec(
                "radar_dead_letters_degraded_total",
                "Dead letters of rejected events not sent whole: `truncated` (key or payload cut to fit), `payload_dropped` (the broker refused the letter; sent with the record's coordinates and reason only), `lost` (refused even so; the log names the record). A letter cut, then refused, counts under both.",
                &["outcome"],
            ),
            quarantined: vec(
                "radar_changelog_quarantined_total",
                "Changelog records a restore could not use, set aside to `<changelog topic>.dead-letter` (state.store = \"kafka\"), by reason.",
                &["reason"],
            ),
            quarantine_lost: counter(
                r,
                "radar_changelog_quarantine_lost_total",
                "Of the changelog records set aside, those whose letter the broker refused even without their bytes (the log names them).",
            ),
            tracked: gauge(
                "radar_accounts_tracked",
                "Accounts with state in the partitions held.",
            ),
            partitions: gauge(
                "radar_kafka_partitions_assigned",
                "Partitions assigned and restored.",
            ),
            lag: gauge_vec(
                "radar_kafka_consumer_lag_messages",
                "Messages behind the partition's end.",
                &["topic", "partition"],
            ),
            checkpoint_duration: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "radar_checkpoint_duration_seconds",
                        "Time to checkpoint and commit.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .unwrap_or_else(|e| panic!("checkpoint histogram: {e}")),
            ),
            checkpoint_age: register(
                r,
                prometheus::Gauge::new(
                    "radar_checkpoint_age_seconds",
                    "Time since the last checkpoint.",
                )
                .unwrap_or_else(|e| panic!("checkpoint age: {e}")),
            ),
            checkpoints: vec(
                "radar_checkpoints_total",
                "Partition checkpoints written, by content: a snapshot of every account, or the changes since the last checkpoint.",
                &["content"],
            ),
            checkpoint_bytes: vec(
                "radar_checkpoint_written_bytes_total",
                "Bytes of partition checkpoints written, by content.",
                &["content"],
            ),
            outbox_depth: gauge(
                "radar_outbox_depth",
                "Opportunities in the outbox, not yet queued for delivery.",
            ),
            attempts: vec(
                "radar_delivery_attempts_total",
                "Delivery attempts, by destination and outcome.",
                &["destination", "outcome"],
            ),
            delivery_latency: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "radar_delivery_latency_seconds",
                        "From the outbox to a 2xx.",
                    )
                    .buckets(LATENCY_BUCKETS.to_vec()),
                    &["destination"],
                )
                .unwrap_or_else(|e| panic!("delivery histogram: {e}")),
            ),
            queue_depth: gauge_vec(
                "radar_delivery_queue_depth",
                "Deliveries waiting, by destination.",
                &["destination"],
            ),
            queue_age: register(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "radar_delivery_queue_oldest_age_seconds",
                        "Age of the oldest waiting delivery.",
                    ),
                    &["destination"],
                )
                .unwrap_or_else(|e| panic!("queue age: {e}")),
            ),
            breaker: gauge_vec(
                "radar_delivery_breaker_state",
                "Circuit breaker: 0 closed, 1 open, 2 half-open.",
                &["destination"],
            ),
            crm: CrmMetrics::new(r),
            takeover: TakeoverMetrics::new(r),
            dead_lettered: vec(
                "radar_delivery_dead_lettered_total",
                "Deliveries moved to the dead-letter store (or acknowledged on the dead-letter topic).",
                &["destination"],
            ),
            overdue: register(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "radar_delivery_overdue_seconds",
                        "How long the earliest due delivery has waited unsettled (queued, in flight or being recorded); 0 when none is due. A destination that is stuck grows here.",
                    ),
                    &["destination"],
                )
                .unwrap_or_else(|e| panic!("overdue: {e}")),
            ),
            unacknowledged: gauge_vec(
                "radar_delivery_unacknowledged",
                "With state.store = \"kafka\": outcomes (retries, dead letters) handed to Kafka and not acknowledged yet.",
                &["destination"],
            ),
            park_failures: vec(
                "radar_delivery_park_failures_total",
                "With state.store = \"kafka\": failures to record outcomes on the retry, dead-letter or settlement-ledger topic (tried again; logged at most every 10 s).",
                &["destination"],
            ),
            delivery_letters_degraded: vec(
                "radar_delivery_dead_letters_degraded_total",
                "Delivery dead letters on the dead-letter topic without their whole opportunity: `truncated` to fit kafka.client.message_max_bytes, `payload_dropped` (refused, then sent with the source record's coordinates), `lost` (refused even so; the log names it).",
                &["destination", "outcome"],
            ),
            config_info: gauge_vec(
                "radar_config_info",
                "1 for the version (a hash of the engine sections) of the configuration in force.",
                &["version"],
            ),
            reloads: vec(
                "radar_config_reloads_total",
                "Configuration reloads (SIGHUP, POST /v1/reload), by result: applied, unchanged, refused.",
                &["result"],
            ),
            shadow: vec(
                "radar_opportunities_shadow_total",
                "Opportunities of playbooks in shadow mode: evaluated like the others, delivered nowhere.",
                &["playbook"],
            ),
            crm_records: vec(
                "radar_crm_records_total",
                "Records written to a CRM, by the team that owns them (cs, sales) and how the owner was chosen.",
                &["destination", "team", "routing"],
            ),
            peer_problems: vec(
                "radar_peer_problems_total",
                "Warnings of instances asking each other for an account, by problem (the log says more).",
                &["problem"],
            ),
            registry,
        };
        // Series a dashboard plots are there from the first scrape, at 0, rather than
        // "No data" until the first reload.
        for result in ["applied", "unchanged", "refused"] {
            metrics.reloads.with_label_values(&[result]);
        }
        for problem in PeerProblem::ALL {
            metrics.peer_problems.with_label_values(&[problem.as_str()]);
        }
        metrics
    }

    /// Starts each destination's dead-letter count at 0, so the series exists (and an
    /// alert on its increase can fire on the first) before anything is dead-lettered.
    /// Copies the pipeline's counts in from `progress` (and the store's outbox depth).
    pub fn refresh(&self, progress: &Progress, store: Option<&Store>) {
        catch_up(&self.consumed, progress.consumed.load(Ordering::Relaxed));
        catch_up(
            &self.consumer_errors,
            progress.consumer_errors.load(Ordering::Relaxed),
        );
        catch_up(
            &self.commits_refused,
            progress.commits_refused.load(Ordering::Relaxed),
        );
        catch_up(&self.fenced, progress.fenced.load(Ordering::Relaxed));
        self.tracked
            .set(progress.tracked_accounts.load(Ordering::Relaxed) as i64);
        self.partitions
            .set(progress.partitions.load(Ordering::Relaxed) as i64);
        if let Ok(sources) = progress.sources.lock() {
            for source in sources.iter() {
                let name = source.name.as_str();
                catch_up(
                    &self.registry_errors.with_label_values(&[name]),
                    source.mapped.registry_errors.load(Ordering::Relaxed),
                );
                if let Some(rekey) = &source.rekey {
                    catch_up(
                        &self.rekeyed.with_label_values(&[name]),
                        rekey.rekeyed.load(Ordering::Relaxed),
                    );
                    catch_up(
                        &self.rekey_errors.with_label_values(&[name]),
                        rekey.errors.load(Ordering::Relaxed),
                    );
                    for (reason, count) in RejectReason::ALL.iter().zip(&rekey.dead_lettered) {
                        catch_up(
                            &self
                                .rekey_dead_letters
                                .with_label_values(&[name, reason.as_str()]),
                            count.load(Ordering::Relaxed),
                        );
                    }
                }
            }
        }
        if let Ok(log) = progress.shadow.lock() {
            for (playbook, count) in &log.counts {
                catch_up(&self.shadow.with_label_values(&[playbook]), *count);
            }
        }
        if let Ok(stats) = progress.stats.lock() {
            catch_up(&self.processed, stats.processed);
            for reason in RejectReason::ALL {
                catch_up(
                    &self.rejected.with_label_values(&[reason.as_str()]),
                    stats.rejected(reason),
                );
            }
            catch_up(&self.unknown_type, stats.unknown_type);
            catch_up(&self.late, stats.late);
            catch_up(&self.duplicate, stats.duplicate);
            for (k, kind) in Kind::ALL.into_iter().enumerate() {
                for (t, tier) in Tier::ALL.into_iter().enumerate() {
                    catch_up(
                        &self
                            .opportunities
                            .with_label_values(&[kind.as_str(), tier.as_str()]),
                        stats.opportunities[k][t],
                    );
                }
            }
            for (g, gate) in Gate::ALL.into_iter().enumerate() {
                catch_up(
                    &self.suppressed.with_label_values(&[gate.as_str()]),
                    stats.suppressed[g],
                );
            }
            catch_up(&self.cooldown, stats.cooldown);
            catch_up(&self.evicted, stats.evicted);
            let letters = &progress.dead_letters;
            for (outcome, count) in [
                ("truncated", &letters.truncated),
                ("payload_dropped", &letters.payload_dropped),
                ("lost", &letters.lost),
            ] {
                catch_up(
                    &self.dead_letters.with_label_values(&[outcome]),
                    count.load(Ordering::Relaxed),
                );
            }
            let quarantined = &progress.quarantined;
            for why in Unusable::ALL {
                catch_up(
                    &self.quarantined.with_label_values(&[why.as_str()]),
                    quarantined.get(why),
                );
            }
            catch_up(
                &self.quarantine_lost,
                quarantined.lost.load(Ordering::Relaxed),
            );
            for (name, count) in self.types.iter().zip(&stats.by_type) {
                catch_up(&self.by_type.with_label_values(&[name]), *count);
            }
            catch_up(
                &self.by_type.with_label_values(&["unknown"]),
                stats.unknown_type,
            );
            catch_up(
                &self.by_type.with_label_values(&["invalid"]),
                stats.rejected_total(),
            );
        }
        if let Ok(mut rounds) = progress.rounds.lock() {
            for took in rounds.drain(..) {
                self.rounds.observe(took.as_secs_f64());
            }
        }
        if let Ok(lag) = progress.lag.lock() {
            for ((topic, partition), messages) in lag.iter() {
                self.lag
                    .with_label_values(&[topic, &partition.to_string()])
                    .set(*messages);
            }
        }
        if let Ok(mut times) = progress.checkpoints.lock() {
            for took in times.durations.drain(..) {
                self.checkpoint_duration.observe(took.as_secs_f64());
            }
            if let Some(last) = times.last {
                self.checkpoint_age.set(last.elapsed().as_secs_f64());
            }
            for (content, bytes) in times.written.drain(..) {
                let label = match content {
                    Content::Snapshot => "snapshot",
                    Content::Changes => "changes",
                };
                self.checkpoints.with_label_values(&[label]).inc();
                self.checkpoint_bytes
                    .with_label_values(&[label])
                    .inc_by(bytes as u64);
            }
        }
        if let Some(depth) = store.and_then(|s| s.outbox_len().ok()) {
            self.outbox_depth.set(depth as i64);
        }
    }

    /// Marks `version` as the configuration in force (and no other).
    pub fn config_version(&self, version: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[version]).set(1);
    }

    /// Counts a warning about a peer lookup, beside its log line.
    pub fn peer_problem(&self, problem: PeerProblem) {
        self.peer_problems
            .with_label_values(&[problem.as_str()])
            .inc();
    }

    /// Counts a reload by its result.
    pub fn reload(&self, result: &str) {
        self.reloads.with_label_values(&[result]).inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into memory only fails on a metric the registry already refused.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

mod board;
mod crm;
mod observer;
mod takeover;

use board::DestinationBoard;
use crm::CrmMetrics;
use takeover::TakeoverMetrics;

pub use board::DestinationStatus;

#[cfg(test)]
mod tests;
