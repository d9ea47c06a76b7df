//! Configuration loading: the built-in `config/radar.toml`, then the file given with
//! `--config`, then `RADAR__SECTION__KEY` environment variables, through the `config`
//! crate; then `radar_core::settings::build` checks everything and names each bad key.

use std::fmt;
use std::path::Path;

use config::{Config, Environment, File, FileFormat};
use radar_core::settings::{self, RawSettings, Settings, SettingsError};

/// The default configuration, compiled in so `radar` runs from any directory.
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/radar.toml");

/// Why a configuration cannot be used: one or more problems, each naming its key.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid configuration ({} problem{}):",
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl From<Vec<SettingsError>> for ConfigError {
    fn from(errors: Vec<SettingsError>) -> Self {
        ConfigError {
            problems: errors.iter().map(ToString::to_string).collect(),
        }
    }
}

/// Reads the layers into raw settings; a syntax or type error names its key and file.
pub fn load_raw(path: Option<&Path>) -> Result<RawSettings, ConfigError> {
    let mut builder =
        Config::builder().add_source(File::from_str(DEFAULT_CONFIG, FileFormat::Toml));
    if let Some(path) = path {
        if !path.is_file() {
            return Err(ConfigError {
                problems: vec![format!("--config {}: no such file", path.display())],
            });
        }
        builder = builder.add_source(File::from(path).format(FileFormat::Toml));
    }
    builder = builder.add_source(
        Environment::with_prefix("RADAR")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    let one = |e: config::ConfigError| ConfigError {
        problems: vec![e.to_string()],
    };
    builder.build().map_err(one)?.try_deserialize().map_err(one)
}

/// Loads and validates the engine settings.
pub fn load(path: Option<&Path>) -> Result<Settings, ConfigError> {
    Ok(settings::build(load_raw(path)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_valid() {
        let settings = load(None).unwrap();
        assert_eq!(settings.model.components.len(), 11);
        assert_eq!(settings.model.max_score(), 140.0);
        assert_eq!(settings.playbooks.len(), 6);
    }

    /// DESIGN.md's anchors for the default priority tables: $5,000 of estimated expansion
    /// ARR scores 80 on potential, 60 days to renewal scores 90 on timing.
    #[test]
    fn the_default_priority_tables_hit_the_design_anchors() {
        let priority = load(None).unwrap().priority;
        assert_eq!(priority.tables[0].eval(5_000.0), 80.0);
        assert_eq!(priority.tables[2].eval(60.0), 90.0);
        assert_eq!(priority.weights, [0.40, 0.30, 0.20, 0.10]);
        assert_eq!(priority.neutral, 50.0);
    }
}
