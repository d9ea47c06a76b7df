use super::*;
use radar_delivery::Observer;

/// Each configured destination's delivery series are there at zero from the start.
#[test]
fn a_known_destination_shows_its_delivery_counters_at_zero() {
    let metrics = Metrics::new(Vec::new());
    metrics.known("hook");
    let text = metrics.render();
    for series in [
        "radar_delivery_dead_lettered_total{destination=\"hook\"} 0",
        "radar_delivery_park_failures_total{destination=\"hook\"} 0",
        "radar_delivery_repeats_total{destination=\"hook\"} 0",
        "radar_delivery_unacknowledged{destination=\"hook\"} 0",
        "radar_delivery_overdue_seconds{destination=\"hook\"} 0",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}
