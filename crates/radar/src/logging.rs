//! Radar's logs: `tracing` events with fields, to stderr, filtered by `RUST_LOG` (default
//! `info`), as text for people or JSON lines for log pipelines (`--log-format json`: one
//! object per line with the time, level, target, message, fields and the span it is in).

use tracing_subscriber::EnvFilter;

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
    if installed.is_ok()
        && let Some((value, e)) = bad
    {
        tracing::warn!(rust_log = %value, error = %e, "RUST_LOG is not a filter; logging at info");
    }
}
