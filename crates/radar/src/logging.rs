//! Radar's logs: `tracing` events with fields, to stderr, filtered by `RUST_LOG` (default
//! `info`), as text for people or JSON lines for log pipelines (`--log-format json`: one
//! object per line with the time, level, target, message, fields and the span it is in).

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// The format [`init`] installed, for what commands say on stderr besides logs.
static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber; a bad `RUST_LOG` falls back to `info` and says so.
pub fn init(format: LogFormat) {
    let (filter, bad) = match EnvFilter::try_from_default_env() {
        Ok(filter) => (filter, None),
        Err(e) => (
            EnvFilter::new("info"),
            std::env::var("RUST_LOG").ok().map(|value| (value, e)),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    if installed.is_ok() {
        let _ = FORMAT.set(format);
    }
    if installed.is_ok()
        && let Some((value, e)) = bad
    {
        tracing::warn!(rust_log = %value, error = %e, "RUST_LOG is not a filter; logging at info");
    }
}

/// The format stderr is written in: text unless `--log-format json` was installed.
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Writes a line meant for the person at the terminal on stderr: as it is in text mode;
/// with `--log-format json` as an info event, so every stderr line stays one JSON object.
pub fn say(line: std::fmt::Arguments<'_>) {
    match format() {
        LogFormat::Text => eprintln!("{line}"),
        LogFormat::Json => tracing::info!("{line}"),
    }
}
