//! `radar`: the command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use radar::{config, replay, summary};

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
