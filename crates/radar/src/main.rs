//! `radar`: the command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
#[cfg(feature = "demo")]
use radar::demo;
use radar::logging::{self, LogFormat};
use radar::{config, dlq, pipeline, replay, summary};
use radar_kafka::Stop;
use signal_hook::consts::{SIGINT, SIGTERM};

#[derive(Parser)]
#[command(
    name = "radar",
    version,
    about = "Streaming expansion-signal engine for B2B SaaS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines are written to stderr: `text`, or `json` (one object per line).
    /// `RUST_LOG` filters them (default `info`, e.g. `RUST_LOG=radar_delivery=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Write a synthetic product-event stream as JSON lines.
    Generate {
        /// Number of accounts (Zipf-skewed: a few send most events).
        #[arg(long, default_value_t = 1_000)]
        accounts: u64,
        /// Number of lines to write.
        #[arg(long, default_value_t = 100_000)]
        events: u64,
        /// Seed of the random stream: the same arguments always give the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Span of event time, in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Share of malformed lines (0–1), cycling through every rejection reason.
        #[arg(long, default_value_t = 0.0)]
        invalid_ratio: f64,
        /// Write to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Also write synthetic outcomes (`account_id,expanded_at,arr_delta`) to this CSV
        /// file: which accounts expanded, drawn from a hidden propensity that depends on
        /// their signals, for `radar backtest`.
        #[arg(long, value_name = "FILE")]
        outcomes: Option<PathBuf>,
    },
    /// Run a file of events through the engine; print one JSON line per opportunity.
    Replay {
        /// Config file layered over the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also print this account's final state and score breakdown (on stderr).
        #[arg(long, value_name = "ACCOUNT_ID")]
        explain: Option<String>,
        /// Read the file as records of this `[[sources]]` entry (the config's only one
        /// if it has one and this is `-`), mapped onto Radar's events as the pipeline
        /// maps them; without it, the file is Radar's envelope.
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// How the file writes a source's records (default: `json` for JSON sources,
        /// else `base64`).
        #[arg(long, value_enum)]
        records: Option<radar::ingest::input::Form>,
        /// JSON-lines file of events, or `-` for stdin.
        input: PathBuf,
    },
    /// What each record of a source becomes: one JSON line per record (the Radar event,
    /// or why it is refused), then counts by type, by reason, the unmapped event names and
    /// the mapped paths no record had.
    Map {
        #[arg(long)]
        config: PathBuf,
        /// The `[[sources]]` entry (needed when there are several).
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
        /// How the file writes its records (default: `json` for JSON sources, else
        /// `base64`).
        #[arg(long, value_enum)]
        records: Option<radar::ingest::input::Form>,
        /// The file of records, or `-` for stdin.
        input: PathBuf,
    },
    /// Would these alerts have been right? Replay events and check the opportunities
    /// against real expansions: precision, recall, lift, lead time and ARR caught per
    /// playbook, tier and tier rise, and by score threshold.
    Backtest(radar::backtest::BacktestOptions),
    /// Consume events from Kafka: per-partition state with checkpoints, rejected events
    /// to the dead-letter topic, opportunities to the outbox. Stops cleanly on SIGTERM or
    /// SIGINT (checkpoint, commit, exit 0).
    Run {
        /// Config file layered over the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Check a config and its playbooks; report every problem.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// The whole loop with nothing installed: an in-process Kafka, a live synthetic event
    /// stream, the engine, and delivery to a local webhook receiver that prints each
    /// opportunity. Ctrl-C stops it.
    #[cfg(feature = "demo")]
    Demo(demo::DemoOptions),
    /// The delivery dead-letter store: deliveries given up on (read while radar is stopped).
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
    },
}

#[derive(Subcommand)]
enum DlqAction {
    /// Print each dead letter as a JSON line: destination, opportunity id, attempts, reason.
    List(DlqFilter),
    /// Queue dead letters for delivery again (by the next `radar run`), with a fresh
    /// retry budget; a destination a 410 had disabled is enabled again.
    Replay(DlqFilter),
}

/// Which dead letters, in which store.
#[derive(clap::Args)]
struct DlqFilter {
    /// Config file whose checkpoint.path names the store.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Only this destination's dead letters.
    #[arg(long)]
    destination: Option<String>,
    /// Only this opportunity.
    #[arg(long, value_name = "OPPORTUNITY_ID")]
    id: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format;
    logging::init(format);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A log pipeline reading JSON lines gets the reason as one of them.
            match format {
                LogFormat::Json => tracing::error!(error = format!("{err:#}"), "radar stopped"),
                LogFormat::Text => eprintln!("radar: {err:#}"),
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Generate {
            accounts,
            events,
            seed,
            days,
            invalid_ratio,
            output,
            outcomes,
        } => {
            let opts = radar_gen::Options {
                accounts,
                events,
                seed,
                days,
                invalid_ratio,
                ..Default::default()
            };
            let mut generator = radar_gen::Generator::new(opts)?;
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(io::stdout().lock()),
            };
            let mut sink = BufWriter::with_capacity(1 << 16, sink);
            for line in generator.by_ref() {
                sink.write_all(line.as_bytes())?;
                sink.write_all(b"\n")?;
            }
            sink.flush().context("writing events")?;
            if let Some(path) = outcomes {
                let file =
                    File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                let mut out = BufWriter::new(file);
                writeln!(out, "account_id,expanded_at,arr_delta")?;
                for outcome in generator.outcomes() {
                    writeln!(out, "{}", radar_gen::outcome_row(&outcome))?;
                }
                out.flush()
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Map {
            config,
            source,
            records,
            input,
        } => {
            let settings = config::load(Some(&config))?;
            let ingest = radar::ingest::named(Some(&config), &settings, source.as_deref())?;
            let form = records.unwrap_or_else(|| radar::ingest::input::Form::usual(&ingest));
            let out = BufWriter::new(io::stdout().lock());
            let report = radar::map::run(&ingest, &settings, form, open_input(&input)?, out)?;
            match logging::format() {
                LogFormat::Text => eprint!("{}", report.text()),
                LogFormat::Json => tracing::info!(
                    records = report.records,
                    by_type = ?report.by_type,
                    rejected = ?report.rejected,
                    unmapped = ?report.unmapped,
                    never_matched = ?report.never_matched,
                    "mapped"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            explain,
            source,
            records,
            input,
        } => {
            let settings = config::load(config.as_deref())?;
            let reader = open_input(&input)?;
            let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            let engine = match &source {
                Some(name) => {
                    let name = (name != "-").then_some(name.as_str());
                    let ingest = radar::ingest::named(config.as_deref(), &settings, name)?;
                    let form =
                        records.unwrap_or_else(|| radar::ingest::input::Form::usual(&ingest));
                    let mut mapped = radar::ingest::input::ToEnvelope::new(ingest, form, reader);
                    let engine = replay::run(Arc::new(settings), &mut mapped, out)
                        .context("replaying events")?;
                    if !mapped.rejected.is_empty() {
                        logging::say(format_args!(
                            "records the source could not map: {:?}",
                            mapped.rejected
                        ));
                    }
                    engine
                }
                None => replay::run(Arc::new(settings), reader, out).context("replaying events")?,
            };
            summary::print(engine.stats(), engine.tracked_accounts());
            if let Some(account) = explain {
                match (engine.explain(&account), logging::format()) {
                    (Some(explanation), LogFormat::Text) => {
                        eprintln!("{}", serde_json::to_string_pretty(&explanation)?)
                    }
                    (Some(explanation), LogFormat::Json) => tracing::info!(
                        account = %account,
                        explanation = %serde_json::to_string(&explanation)?,
                        "explain"
                    ),
                    (None, _) => logging::say(format_args!(
                        "explain: account {account:?} has no accepted events"
                    )),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest(options) => {
            let mut out = BufWriter::new(io::stdout().lock());
            radar::backtest::run(&options, &mut out)?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => run_pipeline(config),
        #[cfg(feature = "demo")]
        Command::Demo(options) => {
            let (stop, stopping) = stop_on_signals(None)?;
            demo::run(options, stop, stopping)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Dlq { action } => {
            match action {
                DlqAction::List(filter) => {
                    let letters = config::dead_letters(filter.config.as_deref())?;
                    let count = dlq::list(
                        &letters,
                        filter.destination.as_deref(),
                        filter.id.as_deref(),
                        &mut io::stdout().lock(),
                    )?;
                    logging::say(format_args!("{count} dead letters"));
                }
                DlqAction::Replay(filter) => {
                    let letters = config::dead_letters(filter.config.as_deref())?;
                    let count = dlq::replay(
                        &letters,
                        filter.destination.as_deref(),
                        filter.id.as_deref(),
                    )?;
                    let when = match letters {
                        config::DeadLetters::Store(_) => "the next `radar run` sends them",
                        config::DeadLetters::Topic(_) => {
                            "they are on the retry topic, and the running instances send them"
                        }
                    };
                    logging::say(format_args!(
                        "{count} dead letters queued for delivery again; {when}"
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        // Exactly the checks `radar run` makes before it connects: the engine, Kafka,
        // checkpoints, delivery (secrets included), the admin address and shutdown.
        Command::Validate { config } => match config::load_pipeline(Some(&config)) {
            Ok(pipeline) => {
                let settings = &pipeline.engine;
                let sources = match pipeline.sources.len() {
                    0 => String::new(),
                    n => format!(
                        " ({n} sources: {})",
                        pipeline
                            .sources
                            .iter()
                            .map(|s| s.source.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
                println!(
                    "{}: ok ({} playbooks, {} score components, max score {}; consuming {}{sources} as group {:?}; {} delivery destinations)",
                    config.display(),
                    settings.playbooks.len(),
                    settings.model.components.len(),
                    settings.model.max_score(),
                    pipeline.source.topics.join(", "),
                    pipeline.source.group_id,
                    pipeline.delivery.destinations.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                match logging::format() {
                    LogFormat::Text => eprint!("{}: {err}", config.display()),
                    LogFormat::Json => tracing::error!(
                        config = %config.display(),
                        problems = ?err.problems,
                        "invalid configuration"
                    ),
                }
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

/// A file, or stdin for `-`.
fn open_input(input: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    if input.as_os_str() == "-" {
        return Ok(Box::new(io::stdin().lock()));
    }
    let file = File::open(input).with_context(|| format!("opening {}", input.display()))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// A stop that SIGTERM or SIGINT triggers gracefully, and a flag raised with it. With a
/// deadline, a process still stopping after it exits 1 without committing: the next start
/// resumes from the last checkpoint.
fn stop_on_signals(deadline: Option<Duration>) -> Result<(Arc<Stop>, Arc<AtomicBool>)> {
    let signalled = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&signalled))
            .context("installing signal handlers")?;
    }
    let stop = Arc::new(Stop::default());
    {
        let (signalled, stop) = (Arc::clone(&signalled), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !signalled.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            stop.graceful();
            if let Some(deadline) = deadline {
                std::thread::sleep(deadline);
                tracing::error!(
                    shutdown_timeout = %humantime::format_duration(deadline),
                    "still stopping after shutdown.timeout; exiting without a final commit"
                );
                std::process::exit(1);
            }
        });
    }
    Ok((stop, signalled))
}

/// `radar run`: the Kafka source, delivery and the admin server until SIGTERM or SIGINT.
fn run_pipeline(config: Option<PathBuf>) -> Result<ExitCode> {
    let pipeline = config::load_pipeline(config.as_deref())?;
    let (stop, _) = stop_on_signals(Some(pipeline.shutdown_timeout))?;
    let runtime = pipeline::runtime()?;
    let source = pipeline.source.clone();
    let store_path = pipeline.store_path.clone();
    let destinations = pipeline.delivery.destinations.len();
    let finished = pipeline::run(pipeline, &runtime, stop, |admin| {
        tracing::info!(
            topics = %source.topics.join(","),
            brokers = %source.bootstrap_servers,
            group = %source.group_id,
            store = %store_path.display(),
            destinations,
            admin = %format!("http://{admin}"),
            "radar running"
        );
    })?;
    summary::print(&finished.stats, finished.tracked_accounts);
    Ok(ExitCode::SUCCESS)
}
