//! Any bytes through the event decoder: an event or a rejection reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // 2026-01-01T00:00:00Z as the record time, one hour of allowed skew.
    let _ = radar_core::event::decode(data, Some(1_767_225_600_000), 3_600_000);
});
