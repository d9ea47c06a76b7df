//! Any bytes, split into lines, through an engine with the default config: whatever the
//! stream, every line gets an outcome and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radar_core::Engine;

#[path = "../settings.rs"]
mod settings;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(settings::default());
    let mut out = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        engine.process(line, None, &mut out);
    }
    assert_eq!(engine.stats().read, data.split(|b| *b == b'\n').count() as u64);
});
