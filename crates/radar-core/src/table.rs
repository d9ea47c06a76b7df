//! Piecewise-linear tables: the one shape every score and priority part is made of.

/// Points `(x, y)` with strictly increasing `x`. Below the first point the table gives
/// the first `y`, above the last the last `y`, and in between it interpolates.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    points: Vec<(f64, f64)>,
    /// What evaluating needs, in one array walked once: each segment with its slope, so
    /// evaluating needs no division.
    segments: Vec<Segment>,
    /// The first point and the last `y`, kept beside the arrays: every evaluation reads
    /// them, and most stop there (an unknown or saturated input).
    first: (f64, f64),
    last_y: f64,
}

/// Why points are not a table; the messages follow the points' key in a config error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    #[error("needs at least one [x, y] point")]
    Empty,
    #[error("points must be finite numbers")]
    NotFinite,
    #[error("x values must be strictly increasing")]
    NotIncreasing,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    x0: f64,
    y0: f64,
    slope: f64,
    /// The segment holds the `x` below this (the next point's).
    end: f64,
}

impl Table {
    /// A table from its points, or why they are not one.
    pub fn new(points: Vec<(f64, f64)>) -> Result<Self, TableError> {
        if points.is_empty() {
            return Err(TableError::Empty);
        }
        if points.iter().any(|(x, y)| !x.is_finite() || !y.is_finite()) {
            return Err(TableError::NotFinite);
        }
        if points.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(TableError::NotIncreasing);
        }
        let segments = points
            .windows(2)
            .map(|w| Segment {
                x0: w[0].0,
                y0: w[0].1,
                slope: (w[1].1 - w[0].1) / (w[1].0 - w[0].0),
                end: w[1].0,
            })
            .collect();
        let first = points[0];
        let last_y = points[points.len() - 1].1;
        Ok(Table {
            points,
            segments,
            first,
            last_y,
        })
    }

    /// A linear scan: tables have a handful of points, and it is on the hot path.
    pub fn eval(&self, x: f64) -> f64 {
        let (first_x, first_y) = self.first;
        if x <= first_x {
            return first_y;
        }
        for s in &self.segments {
            if x < s.end {
                return s.y0 + s.slope * (x - s.x0);
            }
        }
        self.last_y
    }

    pub fn max_y(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(f64::MIN, f64::max)
    }

    pub fn min_y(&self) -> f64 {
        self.points.iter().map(|p| p.1).fold(f64::MAX, f64::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamps_and_interpolates() {
        let t = Table::new(vec![(0.0, 0.0), (10.0, 20.0), (20.0, 20.0)]).unwrap();
        assert_eq!(t.eval(-5.0), 0.0);
        assert_eq!(t.eval(5.0), 10.0);
        assert_eq!(t.eval(10.0), 20.0);
        assert_eq!(t.eval(99.0), 20.0);
        assert_eq!(t.max_y(), 20.0);
    }

    #[test]
    fn refuses_bad_points() {
        assert!(Table::new(vec![]).is_err());
        assert!(Table::new(vec![(1.0, 0.0), (1.0, 2.0)]).is_err());
        assert!(Table::new(vec![(f64::NAN, 0.0)]).is_err());
    }
}
