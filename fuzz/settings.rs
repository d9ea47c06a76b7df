//! The default engine settings, from `config/radar.toml`'s engine sections, without the
//! `radar` crate (and so without librdkafka): the fuzz targets build in seconds.

use std::sync::{Arc, OnceLock};

use radar_core::Settings;
use radar_core::settings::{ENGINE_SECTIONS, RawSettings};

pub fn default() -> Arc<Settings> {
    static SETTINGS: OnceLock<Arc<Settings>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| {
            let mut table: toml::Table =
                toml::from_str(include_str!("../config/radar.toml")).expect("radar.toml parses");
            table.retain(|key, _| ENGINE_SECTIONS.contains(&key));
            let raw: RawSettings = toml::Value::Table(table)
                .try_into()
                .expect("the engine sections are complete");
            Arc::new(radar_core::settings::build(raw).expect("the default config is valid"))
        })
        .clone()
}
