use proptest::prelude::*;

use super::*;

const T0: Millis = 1_780_000_000_000;

fn at_day(day: f64) -> Millis {
    T0 + (day * DAY as f64) as Millis
}

fn settings() -> PaceSettings {
    PaceSettings::default()
}

fn observed(series: &[(f64, f64)], resets: bool) -> Pace {
    let mut pace = Pace::default();
    for (day, value) in series {
        pace.observe(at_day(*day), *value, resets, &settings());
    }
    pace
}

/// Seats 30, 32, … 40 every other day against a limit of 50: one seat a day, so 14 days
/// to the limit on day 6.
#[test]
fn seats_growing_a_seat_a_day_reach_the_limit_in_fourteen_days_on_day_six() {
    let series: Vec<(f64, f64)> = (0..=5)
        .map(|i| (2.0 * i as f64, 30.0 + 2.0 * i as f64))
        .collect();
    let at = |upto: usize| observed(&series[..upto], false);
    assert_eq!(at(2).project(50.0, None, &settings()), None, "two points");
    let day4 = at(3).project(50.0, None, &settings()).unwrap();
    assert!((day4.rate_per_day - 1.0).abs() < 1e-9);
    assert!((day4.days_left - 16.0).abs() < 1e-9);
    let day6 = at(4).project(50.0, None, &settings()).unwrap();
    assert!((day6.days_left - 14.0).abs() < 1e-9, "{day6:?}");
    assert_eq!(day6.used, 36.0);
    assert_eq!(day6.reaches_limit_at, at_day(20.0));
}

#[test]
fn flat_falling_and_two_point_series_have_no_projection() {
    let flat = observed(&[(0.0, 40.0), (2.0, 40.0), (4.0, 40.0), (6.0, 40.0)], false);
    assert_eq!(flat.rate_per_day(&settings()), Some(0.0));
    assert_eq!(flat.project(50.0, None, &settings()), None);
    let falling = observed(&[(0.0, 40.0), (2.0, 38.0), (4.0, 35.0)], false);
    assert!(falling.rate_per_day(&settings()).unwrap() < 0.0);
    assert_eq!(falling.project(50.0, None, &settings()), None);
    let two = observed(&[(0.0, 10.0), (5.0, 40.0)], false);
    assert_eq!(two.rate_per_day(&settings()), None);
    let short = observed(&[(0.0, 10.0), (1.0, 20.0), (2.5, 30.0)], false);
    assert_eq!(
        short.rate_per_day(&settings()),
        None,
        "spans less than 3 days"
    );
}

#[test]
fn a_counter_that_drops_forgets_its_earlier_period() {
    let series = [
        (0.0, 100.0),
        (1.0, 200.0),
        (2.0, 300.0),
        (3.0, 10.0),
        (4.0, 60.0),
        (5.0, 110.0),
        (6.0, 160.0),
        (7.0, 210.0),
        (8.0, 260.0),
    ];
    let before = observed(&series[..3], true);
    assert_eq!(before.rate_per_day(&settings()), None, "spans 2 days");
    let pace = observed(&series, true);
    let rate = pace.rate_per_day(&settings()).unwrap();
    assert!((rate - 50.0).abs() < 1e-9, "{rate}");
    // A late observation from the earlier period changes nothing.
    let mut late = pace.clone();
    late.observe(at_day(2.5), 350.0, true, &settings());
    assert_eq!(late, pace);
    // Seats are not a counter: a drop is a drop.
    let seats = observed(&series, false);
    assert_eq!(seats.points[0].value, 100.0, "{seats:?}");
    assert!(seats.rate_per_day(&settings()).unwrap() < 50.0);
}

#[test]
fn a_projection_past_the_period_end_is_silent() {
    let pace = observed(&[(0.0, 100.0), (2.0, 300.0), (4.0, 500.0)], true);
    // 100 a day from 500 at day 4: 1,000 on day 9.
    let reached = pace
        .project(1_000.0, Some(at_day(10.0)), &settings())
        .unwrap();
    assert_eq!(reached.reaches_limit_at, at_day(9.0));
    assert_eq!(pace.project(1_000.0, Some(at_day(8.0)), &settings()), None);
}

#[test]
fn the_limit_reached_already_is_zero_days_away() {
    let pace = observed(&[(0.0, 40.0), (2.0, 48.0), (4.0, 56.0)], false);
    let projection = pace.project(50.0, None, &settings()).unwrap();
    assert_eq!(projection.days_left, 0.0);
    assert_eq!(projection.reaches_limit_at, at_day(4.0));
}

/// One point per slot (14 days / 8): the latest observation of a slot wins, whatever the
/// order, and points older than the window are forgotten.
#[test]
fn a_slot_keeps_its_latest_observation_and_the_window_its_latest_points() {
    let mut forward = Pace::default();
    let mut backward = Pace::default();
    for (day, value) in [(0.1, 10.0), (0.5, 12.0)] {
        forward.observe(at_day(day), value, false, &settings());
    }
    for (day, value) in [(0.5, 12.0), (0.1, 10.0)] {
        backward.observe(at_day(day), value, false, &settings());
    }
    assert_eq!(forward, backward);
    assert_eq!(
        forward.latest(),
        Some(Point {
            at: at_day(0.5),
            value: 12.0
        })
    );
    forward.observe(at_day(20.0), 30.0, false, &settings());
    assert_eq!(forward.latest().unwrap().value, 30.0);
    assert_eq!(
        forward.points.len(),
        1,
        "the first is more than 14 days older"
    );
}

#[test]
fn every_day_of_a_long_series_keeps_at_most_nine_points() {
    let mut pace = Pace::default();
    for hour in 0..24 * 60 {
        pace.observe(
            T0 + hour * crate::time::HOUR,
            hour as f64,
            false,
            &settings(),
        );
        assert!(
            pace.points.len() <= 9,
            "{} points at hour {hour}",
            pace.points.len()
        );
    }
    let rate = pace.rate_per_day(&settings()).unwrap();
    assert!((rate - 24.0).abs() < 1e-6, "{rate}");
}

proptest! {
    /// A linear series gives its exact slope, however its points fall.
    #[test]
    fn a_linear_series_gives_its_exact_slope(
        slope in -1_000.0f64..1_000.0,
        start in 0.0f64..10_000.0,
        gaps in prop::collection::vec(1u32..(48 * 60), 3..60),
    ) {
        let mut pace = Pace::default();
        let mut minute: i64 = 0;
        for gap in gaps {
            minute += i64::from(gap);
            let day = minute as f64 / 1_440.0;
            pace.observe(T0 + minute * 60_000, start + slope * day, false, &settings());
        }
        if let Some(rate) = pace.rate_per_day(&settings()) {
            prop_assert!((rate - slope).abs() < 1e-6 * (1.0 + slope.abs()), "{} for {}", rate, slope);
        }
    }

    /// The order observations arrive in does not change what a quantity that does not
    /// reset keeps, so neither its pace.
    #[test]
    fn reordering_gives_the_same_pace(
        points in prop::collection::btree_map(0i64..(30 * 24 * 60), 0.0f64..500.0, 1..40),
        order in prop::collection::vec(any::<prop::sample::Index>(), 40),
    ) {
        let points: Vec<(i64, f64)> = points.into_iter().collect();
        let mut shuffled = points.clone();
        for (i, pick) in order.iter().enumerate().take(shuffled.len()) {
            let j = pick.index(shuffled.len());
            shuffled.swap(i, j);
        }
        let keep = |series: &[(i64, f64)]| {
            let mut pace = Pace::default();
            for (minute, value) in series {
                pace.observe(T0 + minute * 60_000, *value, false, &settings());
            }
            pace
        };
        let (in_order, reordered) = (keep(&points), keep(&shuffled));
        prop_assert_eq!(&in_order, &reordered);
        prop_assert_eq!(in_order.rate_per_day(&settings()), reordered.rate_per_day(&settings()));
    }
}
