//! `radar`: the command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use radar::{config, replay, summary};
use radar_kafka::{OutboxSink, Progress, Source, Stop};
use radar_store::Store;
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
    },
    /// Run a file of events through the engine; print one JSON line per opportunity.
    Replay {
        /// Config file layered over the built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Also print this account's final state and score breakdown (on stderr).
        #[arg(long, value_name = "ACCOUNT_ID")]
        explain: Option<String>,
        /// JSON-lines file of events, or `-` for stdin.
        input: PathBuf,
    },
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
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("radar: {err:#}");
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
        } => {
            let opts = radar_gen::Options {
                accounts,
                events,
                seed,
                days,
                invalid_ratio,
                ..Default::default()
            };
            let generator = radar_gen::Generator::new(opts)?;
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    File::create(path).with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(io::stdout().lock()),
            };
            let mut sink = BufWriter::with_capacity(1 << 16, sink);
            for line in generator {
                sink.write_all(line.as_bytes())?;
                sink.write_all(b"\n")?;
            }
            sink.flush().context("writing events")?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            config,
            explain,
            input,
        } => {
            let settings = config::load(config.as_deref())?;
            let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
                Box::new(io::stdin().lock())
            } else {
                let file =
                    File::open(&input).with_context(|| format!("opening {}", input.display()))?;
                Box::new(BufReader::with_capacity(1 << 16, file))
            };
            let out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            let engine =
                replay::run(Arc::new(settings), reader, out).context("replaying events")?;
            eprint!(
                "{}",
                summary::render(engine.stats(), engine.tracked_accounts())
            );
            if let Some(account) = explain {
                match engine.explain(&account) {
                    Some(explanation) => {
                        eprintln!("{}", serde_json::to_string_pretty(&explanation)?)
                    }
                    None => eprintln!("explain: account {account:?} has no accepted events"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { config } => run_pipeline(config),
        Command::Validate { config } => match config::load(Some(&config)) {
            Ok(settings) => {
                println!(
                    "{}: ok ({} playbooks, {} score components, max score {})",
                    config.display(),
                    settings.playbooks.len(),
                    settings.model.components.len(),
                    settings.model.max_score()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(err) => {
                eprint!("{}: {err}", config.display());
                Ok(ExitCode::FAILURE)
            }
        },
    }
}

/// `radar run`: the Kafka source until SIGTERM or SIGINT.
fn run_pipeline(config: Option<PathBuf>) -> Result<ExitCode> {
    let pipeline = config::load_pipeline(config.as_deref())?;
    let store =
        Arc::new(Store::open(&pipeline.store_path).with_context(|| {
            format!("opening the state store {}", pipeline.store_path.display())
        })?);
    if let Some(aside) = store.moved_aside() {
        eprintln!(
            "radar: the state store was unreadable; moved it to {} and started afresh",
            aside.display()
        );
    }
    let source_config = pipeline.source.clone();
    let source = Source::new(pipeline.source, Arc::new(pipeline.engine), store.clone())
        .context("starting the Kafka consumer")?;

    // SIGTERM and SIGINT set a flag; a watcher turns it into a graceful stop.
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
        });
    }
    eprintln!(
        "radar: consuming {} from {} as group {:?}; state and outbox in {}",
        source_config.topics.join(", "),
        source_config.bootstrap_servers,
        source_config.group_id,
        pipeline.store_path.display()
    );
    let progress = Progress::default();
    let mut sink = OutboxSink::new(store);
    let stats = source
        .run(&stop, &progress, &mut sink)
        .context("consuming events")?;
    eprint!("{}", summary::render(&stats, source.tracked_accounts()?));
    Ok(ExitCode::SUCCESS)
}
