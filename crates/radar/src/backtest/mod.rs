//! `radar backtest`: would these alerts have been right? Runs a file of events through
//! the same engine as `radar replay` (so the opportunities are exactly the ones Radar
//! would have sent) and checks them against the real expansions in an outcomes file:
//! precision, recall, lift, lead time and ARR caught per playbook, tier and tier rise, and
//! by score threshold. `--compare` does it for two configurations side by side.
//!
//! - [`outcomes`]: the outcomes CSV, bad rows reported by line and skipped, read after
//!   the events so that only the rows of accounts they saw are kept;
//! - [`analysis`]: the figures, pure;
//! - [`report`]: the terminal table, the JSON and the comparison;
//! - [`html`]: the self-contained HTML report with its charts.

pub mod analysis;
pub mod html;
pub mod outcomes;
pub mod report;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use radar_core::engine::EventOutcome;
use radar_core::opportunity::Kind;
use radar_core::time::parse_rfc3339;

use crate::{config, replay};
use analysis::{Emitted, Expansion};
use report::Report;

/// `radar backtest`'s options, as its command line takes them.
#[derive(Debug, Clone, clap::Args)]
pub struct BacktestOptions {
    /// JSON-lines file of events (as `radar replay` reads them), or `-` for stdin.
    #[arg(long)]
    pub events: PathBuf,
    /// CSV of real expansions: `account_id,expanded_at,arr_delta` with that header, or
    /// `-` for stdin (not both).
    #[arg(long)]
    pub outcomes: PathBuf,
    /// Config file layered over the built-in defaults.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// How long after an opportunity an expansion still counts as following it.
    #[arg(long, default_value = "90d", value_parser = humantime::parse_duration)]
    pub horizon: Duration,
    /// A second config to run on the same events and outcomes, side by side.
    #[arg(long, value_name = "CONFIG")]
    pub compare: Option<PathBuf>,
    /// Print JSON (the fields docs/rules.md#1-backtest-against-real-expansions documents)
    /// instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report with charts to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Read the events as records of this `[[sources]]` entry of the config (`-`: its
    /// only one), mapped as the pipeline maps them (docs/events.md#sources).
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// How the file writes a source's records (default: `json` for JSON sources, else
    /// `base64`).
    #[arg(long, value_enum, requires = "source")]
    pub records: Option<crate::ingest::input::Form>,
}

/// Where the events are read from: a file, or stdin (`-`), spooled to a temporary file
/// when `--compare` reads them twice.
enum Events {
    File(PathBuf),
    Stdin,
    Spooled(File),
}

impl Events {
    fn new(path: &Path, twice: bool) -> Result<Events> {
        if path.as_os_str() != "-" {
            return Ok(Events::File(path.to_owned()));
        }
        if !twice {
            return Ok(Events::Stdin);
        }
        let mut spool = tempfile::tempfile().context("a temporary file for the events")?;
        std::io::copy(&mut std::io::stdin().lock(), &mut spool)
            .context("reading the events from stdin")?;
        Ok(Events::Spooled(spool))
    }

    /// The events from their start, and their size in bytes when known.
    fn open(&mut self) -> Result<(Box<dyn Read + Send>, u64)> {
        match self {
            Events::File(path) => {
                let file =
                    File::open(&*path).with_context(|| format!("opening {}", path.display()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                Ok((Box::new(file), size))
            }
            Events::Stdin => Ok((Box::new(std::io::stdin()), 0)),
            Events::Spooled(file) => {
                file.seek(SeekFrom::Start(0))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                Ok((Box::new(file.try_clone()?), size))
            }
        }
    }
}

/// Runs the backtest and writes its output to `out`.
pub fn run(options: &BacktestOptions, out: &mut dyn Write) -> Result<()> {
    if options.events.as_os_str() == "-" && options.outcomes.as_os_str() == "-" {
        anyhow::bail!(
            "--events and --outcomes cannot both be - (stdin): give one of them as a file"
        );
    }
    let mut events = Events::new(&options.events, options.compare.is_some())?;
    let mut runs = vec![Run::new(options.config.as_deref(), &mut events, options)?];
    if let Some(path) = &options.compare {
        runs.push(Run::new(Some(path), &mut events, options)?);
    }
    // The outcomes after the events: only rows of accounts the events saw are kept.
    let outcomes_input: Box<dyn Read> = if options.outcomes.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(
            File::open(&options.outcomes)
                .with_context(|| format!("opening {}", options.outcomes.display()))?,
        )
    };
    let outcomes = outcomes::read(BufReader::new(outcomes_input), |row| {
        for run in &mut runs {
            if let Some(&account) = run.accounts.0.get(row.account_id) {
                run.expansions.push(Expansion {
                    account,
                    at_ms: row.expanded_at_ms,
                    arr_delta: row.arr_delta,
                });
            }
        }
    })
    .with_context(|| format!("reading {}", options.outcomes.display()))?;
    for bad in &outcomes.bad {
        crate::logging::say(format_args!(
            "{}: line {}: {} (skipped)",
            options.outcomes.display(),
            bad.line,
            bad.reason
        ));
    }
    if outcomes.bad_rows > outcomes.bad.len() as u64 {
        crate::logging::say(format_args!(
            "{}: {} more bad rows skipped",
            options.outcomes.display(),
            outcomes.bad_rows - outcomes.bad.len() as u64
        ));
    }
    let horizon_ms = i64::try_from(options.horizon.as_millis()).unwrap_or(i64::MAX);
    let mut reports = runs
        .into_iter()
        .map(|run| run.report(&outcomes, horizon_ms));
    let baseline = reports.next().context("no backtest ran")?;
    let candidate = reports.next();
    if let Some(path) = &options.html {
        let page = html::render(&baseline, candidate.as_ref());
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    match (&candidate, options.json) {
        (None, true) => serde_json::to_writer_pretty(&mut *out, &baseline)?,
        (Some(candidate), true) => {
            serde_json::to_writer_pretty(&mut *out, &report::compare(&baseline, candidate))?
        }
        (None, false) => write!(out, "{}", report::table(&baseline))?,
        (Some(candidate), false) => write!(out, "{}", report::side_by_side(&baseline, candidate))?,
    }
    if options.json {
        writeln!(out)?;
    }
    Ok(())
}

/// The account id and time of an accepted line (already decoded once by the engine; this
/// reads only those two fields).
fn account_and_time(line: &[u8]) -> Option<(std::borrow::Cow<'_, str>, i64)> {
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        account_id: std::borrow::Cow<'a, str>,
        #[serde(borrow)]
        timestamp: std::borrow::Cow<'a, str>,
    }
    let envelope = serde_json::from_slice::<Envelope<'_>>(line).ok()?;
    Some((envelope.account_id, parse_rfc3339(&envelope.timestamp)?))
}

/// Interns account ids: the figures work on numbers.
#[derive(Default)]
struct Accounts(HashMap<String, u32>);

impl Accounts {
    fn id(&mut self, account: &str) -> u32 {
        if let Some(&id) = self.0.get(account) {
            return id;
        }
        let id = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
        self.0.insert(account.to_owned(), id);
        id
    }
}

/// One configuration's replay of the events: what it emitted, the accounts it saw, and
/// (once the outcomes are read) the expansions of those accounts.
struct Run {
    config: String,
    stats: radar_core::Stats,
    max_score: f64,
    accounts: Accounts,
    emitted: Vec<Emitted>,
    expansions: Vec<Expansion>,
    from_ms: i64,
    to_ms: i64,
}

impl Run {
    fn new(
        config_path: Option<&Path>,
        events: &mut Events,
        options: &BacktestOptions,
    ) -> Result<Run> {
        let shown = options.events.as_path();
        let settings = config::load(config_path)?;
        let ingest = match &options.source {
            Some(name) => {
                let name = (name != "-").then_some(name.as_str());
                Some(crate::ingest::named(config_path, &settings, name)?)
            }
            None => None,
        };
        let shadow: Vec<String> = settings
            .playbooks
            .iter()
            .filter(|p| p.shadow)
            .map(|p| p.name.to_string())
            .collect();
        let (input, size) = events.open()?;
        let progress = if std::io::stderr().is_terminal() && size > 0 {
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_message(format!(
                "backtest {}",
                config_path.map_or("defaults".into(), |p| p.display().to_string())
            ));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        let reader: Box<dyn std::io::BufRead> =
            Box::new(BufReader::with_capacity(1 << 16, progress.wrap_read(input)));
        let reader: Box<dyn std::io::BufRead> = match ingest {
            Some(ingest) => {
                let form = options
                    .records
                    .unwrap_or_else(|| crate::ingest::input::Form::usual(&ingest));
                Box::new(crate::ingest::input::ToEnvelope::new(ingest, form, reader))
            }
            None => reader,
        };
        let max_score = settings.model.max_score();
        let mut accounts = Accounts::default();
        let mut emitted = Vec::new();
        let (mut from_ms, mut to_ms) = (i64::MAX, i64::MIN);
        let engine = replay::stream(Arc::new(settings), reader, |batch| {
            for (line, outcome) in batch.lines.iter().zip(batch.outcomes) {
                if matches!(outcome, EventOutcome::Processed { .. })
                    && let Some((account, at)) = account_and_time(line)
                {
                    accounts.id(&account);
                    from_ms = from_ms.min(at);
                    to_ms = to_ms.max(at);
                }
            }
            for o in batch.opportunities {
                emitted.push(Emitted {
                    account: accounts.id(&o.account_id),
                    playbook: o.playbook.clone(),
                    tier: o.tier.as_str(),
                    tier_rise: o.kind == Kind::TierRise,
                    shadow: shadow.iter().any(|name| name == o.playbook.as_str()),
                    score: o.score,
                    at_ms: parse_rfc3339(&o.occurred_at).unwrap_or_default(),
                });
            }
            Ok(())
        })
        .with_context(|| format!("reading {}", shown.display()))?;
        progress.finish_and_clear();
        Ok(Run {
            config: config_path.map_or("built-in defaults".into(), |p| p.display().to_string()),
            stats: engine.stats().clone(),
            max_score,
            accounts,
            emitted,
            expansions: Vec::new(),
            from_ms,
            to_ms,
        })
    }

    fn report(self, outcomes: &outcomes::Outcomes, horizon_ms: i64) -> Report {
        let figures = analysis::figures(
            &self.emitted,
            self.expansions,
            analysis::Scope {
                accounts: self.accounts.0.len() as u64,
                from_ms: self.from_ms,
                to_ms: self.to_ms,
                horizon_ms,
                max_score: self.max_score,
            },
        );
        Report::new(self.config, &self.stats, outcomes, figures)
    }
}
