//! The retry policy, pure and separate from the HTTP call: it classifies what an attempt
//! got and says what to do next — done, try again after a delay, give up into the
//! dead-letter store, or disable the destination.
//!
//! The first attempt is immediate. Retries follow a schedule (the delay before attempt
//! n+1 is at most `schedule[n-1]`) with full jitter: a uniform draw in [0, ceiling], so
//! a fleet of retries after an
//! outage does not come back in one wave. A `Retry-After` from the server is a floor,
//! capped so a misbehaving server cannot park a delivery for a year.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A response, with its `Retry-After` already turned into a delay.
    Response {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// No response within the destination's timeout.
    Timeout,
    /// Connecting or sending failed (refused, reset, DNS, TLS).
    Connection(String),
    /// The SSRF guard refused the address: an internal one that is not allow-listed.
    Refused(String),
    /// The request could not be built (e.g. an opportunity the payload cannot express).
    Unsendable(String),
    /// The receiver answered that this delivery can never succeed as it is, for a reason
    /// it named (a CRM's company that does not exist, a field it refuses): into the
    /// dead-letter store at once. `label` is the low-cardinality reason for metrics.
    Rejected { label: &'static str, reason: String },
    /// The receiver answered that it cannot take this delivery now (a locked row, a
    /// server briefly unavailable), in a body rather than a status: retried.
    Transient { label: &'static str, reason: String },
    /// Not sent: an earlier call of the same batch got an answer that stops the
    /// destination for now (a rate limit, an outage), or the destination's credentials
    /// are degraded (see [`crate::auth`]). It spends no attempt and waits until the
    /// destination may be called again.
    Deferred(String),
}

impl AttemptResult {
    /// A low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            AttemptResult::Response { status, .. } => match status {
                200..=299 => "success",
                300..=399 => "http_3xx",
                429 => "http_429",
                400..=499 => "http_4xx",
                500..=599 => "http_5xx",
                // 1xx never ends an exchange, and nothing past 599 is HTTP.
                _ => "http_invalid_status",
            },
            AttemptResult::Timeout => "timeout",
            AttemptResult::Connection(_) => "connection",
            AttemptResult::Refused(_) => "refused",
            AttemptResult::Unsendable(_) => "unsendable",
            AttemptResult::Rejected { label, .. } | AttemptResult::Transient { label, .. } => label,
            AttemptResult::Deferred(_) => "deferred",
        }
    }

    /// What happened, in words, for logs and dead letters.
    pub fn describe(&self) -> String {
        match self {
            AttemptResult::Response { status, .. } if !(200..=599).contains(status) => {
                format!("HTTP {status}, not a valid final status")
            }
            AttemptResult::Response { status, .. } => format!("HTTP {status}"),
            AttemptResult::Timeout => "timed out".to_owned(),
            AttemptResult::Connection(e) => format!("connection failed: {e}"),
            AttemptResult::Refused(e) => format!("refused by the SSRF guard: {e}"),
            AttemptResult::Unsendable(e) => format!("cannot build the request: {e}"),
            AttemptResult::Rejected { label, reason }
            | AttemptResult::Transient { label, reason } => format!("{label}: {reason}"),
            AttemptResult::Deferred(why) => format!("not sent: {why}"),
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Delivered,
    Retry {
        after: Duration,
        reason: String,
    },
    /// Permanent failure, or retries exhausted: into the dead-letter store.
    GiveUp {
        reason: String,
    },
    /// HTTP 410 Gone: the receiver asks never to be called again.
    Disable {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay ceilings before each retry: `schedule[n-1]` before attempt n+1. One attempt
    /// plus one per entry is the whole budget.
    pub schedule: Vec<Duration>,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
}

impl Default for RetryPolicy {
    /// Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over
    /// about a day and a half, long enough to ride out a CRM outage.
    fn default() -> RetryPolicy {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        RetryPolicy {
            schedule: vec![
                Duration::from_secs(5),
                minutes(5),
                minutes(30),
                minutes(120),
                minutes(300),
                minutes(600),
                minutes(600),
            ],
            retry_after_cap: minutes(60),
        }
    }
}

impl RetryPolicy {
    /// The longest any retry may wait: the longest delay of the schedule, or the cap of
    /// `Retry-After` if that is longer. A due time read back from the retry topic is
    /// held to it, so no record can make a delivery wait longer than configured.
    pub fn longest_wait(&self) -> Duration {
        self.schedule
            .iter()
            .copied()
            .max()
            .unwrap_or_default()
            .max(self.retry_after_cap)
    }

    /// Decides after attempt number `attempts` (1 for the first) got `result`. `jitter`
    /// is a uniform draw in [0, 1): the caller owns the randomness, so this stays pure.
    pub fn decide(&self, attempts: u32, result: &AttemptResult, jitter: f64) -> Action {
        let retryable = match result {
            AttemptResult::Response { status, .. } => match status {
                200..=299 => return Action::Delivered,
                410 => {
                    return Action::Disable {
                        reason: "HTTP 410 Gone: the receiver asked to stop".to_owned(),
                    };
                }
                300..=399 => {
                    return Action::GiveUp {
                        reason: format!("HTTP {status}: redirects are not followed"),
                    };
                }
                408 | 429 | 500..=599 => true,
                _ => false,
            },
            AttemptResult::Timeout
            | AttemptResult::Connection(_)
            | AttemptResult::Transient { .. }
            | AttemptResult::Deferred(_) => true,
            AttemptResult::Refused(_) | AttemptResult::Unsendable(_) => false,
            AttemptResult::Rejected { .. } => {
                return Action::GiveUp {
                    reason: result.describe(),
                };
            }
        };
        let reason = result.describe();
        if !retryable {
            return Action::GiveUp {
                reason: format!("{reason} (permanent)"),
            };
        }
        let Some(ceiling) = self.schedule.get(attempts.saturating_sub(1) as usize) else {
            return Action::GiveUp {
                reason: format!("{reason}; gave up after {attempts} attempts"),
            };
        };
        let mut after = ceiling.mul_f64(jitter.clamp(0.0, 1.0));
        if let AttemptResult::Response {
            retry_after: Some(asked),
            ..
        } = result
        {
            after = after.max((*asked).min(self.retry_after_cap));
        }
        Action::Retry { after, reason }
    }
}

/// Reads a `Retry-After` header: delay-seconds or an HTTP-date (RFC 9110), relative to
/// `now`. A date in the past means now; anything unreadable is ignored.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn status(code: u16) -> AttemptResult {
        AttemptResult::Response {
            status: code,
            retry_after: None,
        }
    }

    /// A status no HTTP server sends is labelled for what it is, not as a server error.
    #[test]
    fn labels_name_the_status_class() {
        let labels: Vec<&str> = [204, 302, 404, 429, 503, 600, 999, 101]
            .into_iter()
            .map(|code| status(code).label())
            .collect();
        assert_eq!(
            labels,
            [
                "success",
                "http_3xx",
                "http_4xx",
                "http_429",
                "http_5xx",
                "http_invalid_status",
                "http_invalid_status",
                "http_invalid_status"
            ]
        );
        let Action::GiveUp { reason } = RetryPolicy::default().decide(1, &status(600), 0.5) else {
            panic!("600 is no status to retry on");
        };
        assert_eq!(reason, "HTTP 600, not a valid final status (permanent)");
    }

    #[test]
    fn responses_are_classified_as_the_contract_says() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.decide(1, &status(200), 0.5), Action::Delivered);
        assert_eq!(policy.decide(1, &status(204), 0.5), Action::Delivered);
        for retryable in [429, 500, 502, 503, 504, 408] {
            assert!(
                matches!(
                    policy.decide(1, &status(retryable), 0.5),
                    Action::Retry { .. }
                ),
                "{retryable}"
            );
        }
        for permanent in [301, 302, 307, 400, 401, 403, 404, 422, 600, 999] {
            assert!(
                matches!(
                    policy.decide(1, &status(permanent), 0.5),
                    Action::GiveUp { .. }
                ),
                "{permanent}"
            );
        }
        assert!(matches!(
            policy.decide(1, &status(410), 0.5),
            Action::Disable { .. }
        ));
        assert!(matches!(
            policy.decide(1, &AttemptResult::Timeout, 0.5),
            Action::Retry { .. }
        ));
        assert!(matches!(
            policy.decide(1, &AttemptResult::Connection("refused".into()), 0.5),
            Action::Retry { .. }
        ));
        assert!(matches!(
            policy.decide(1, &AttemptResult::Refused("10.0.0.1".into()), 0.5),
            Action::GiveUp { .. }
        ));
    }

    #[test]
    fn the_schedule_bounds_attempts_and_full_jitter_spans_zero_to_the_ceiling() {
        let policy = RetryPolicy::default();
        let retry = |attempts, jitter| match policy.decide(attempts, &status(503), jitter) {
            Action::Retry { after, .. } => Some(after),
            _ => None,
        };
        assert_eq!(retry(1, 0.0), Some(Duration::ZERO));
        assert_eq!(policy.schedule.len(), 7, "eight attempts in all");
        assert_eq!(retry(1, 0.5), Some(Duration::from_millis(2_500)));
        assert_eq!(retry(2, 1.0), Some(Duration::from_secs(300)));
        assert_eq!(retry(7, 1.0), Some(Duration::from_secs(36_000)));
        let Action::GiveUp { reason } = policy.decide(8, &status(503), 0.5) else {
            panic!("the ninth attempt must not be scheduled");
        };
        assert!(reason.contains("after 8 attempts"), "{reason}");
    }

    #[test]
    fn retry_after_is_a_floor_with_a_cap() {
        let policy = RetryPolicy::default();
        let asked = |secs| AttemptResult::Response {
            status: 429,
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(
            policy.decide(1, &asked(30), 0.1),
            Action::Retry {
                after: Duration::from_secs(30),
                reason: "HTTP 429".into()
            }
        );
        // A jittered delay already past Retry-After stands.
        let Action::Retry { after, .. } = policy.decide(2, &asked(30), 1.0) else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(300));
        // A year is capped at the configured hour.
        let Action::Retry { after, .. } = policy.decide(1, &asked(31_536_000), 0.0) else {
            panic!()
        };
        assert_eq!(after, Duration::from_secs(3_600));
    }

    #[test]
    fn the_longest_wait_is_the_schedules_or_the_retry_after_cap() {
        let mut policy = RetryPolicy::default();
        assert_eq!(policy.longest_wait(), Duration::from_secs(36_000));
        policy.retry_after_cap = Duration::from_secs(86_400);
        assert_eq!(policy.longest_wait(), Duration::from_secs(86_400));
        policy.schedule.clear();
        policy.retry_after_cap = Duration::ZERO;
        assert_eq!(policy.longest_wait(), Duration::ZERO);
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 08:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_retry_after("Tue, 24 Nov 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    proptest! {
        #[test]
        fn delays_never_exceed_the_larger_of_ceiling_and_capped_retry_after(
            attempts in 1u32..8,
            jitter in 0.0f64..1.0,
            asked in proptest::option::of(0u64..1_000_000),
        ) {
            let policy = RetryPolicy::default();
            let result = AttemptResult::Response {
                status: 503,
                retry_after: asked.map(Duration::from_secs),
            };
            let Action::Retry { after, .. } = policy.decide(attempts, &result, jitter) else {
                panic!("503 within the schedule is retried");
            };
            let ceiling = policy.schedule[attempts as usize - 1];
            let floor = asked.map_or(Duration::ZERO, |s| Duration::from_secs(s).min(policy.retry_after_cap));
            prop_assert!(after <= ceiling.max(floor));
            prop_assert!(after >= floor);
        }
    }
}
