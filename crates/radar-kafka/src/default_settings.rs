//! The engine settings of the default configuration, for unit tests: read from
//! `config/radar.toml` as the binary reads it, without depending on the binary's crate.

use std::sync::Arc;

use radar_core::Settings;
use radar_core::settings::{self, ENGINE_SECTIONS};

pub(crate) fn default_settings() -> Arc<Settings> {
    let mut table: toml::Table = toml::from_str(include_str!("../../../config/radar.toml"))
        .expect("the default config is TOML");
    table.retain(|key, _| ENGINE_SECTIONS.contains(&key));
    let raw = toml::Value::Table(table)
        .try_into()
        .expect("the default config's engine sections");
    Arc::new(settings::build(raw).expect("the default config is valid"))
}
