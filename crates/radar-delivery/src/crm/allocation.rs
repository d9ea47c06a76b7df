//! A CRM's daily API allocation, as its answers report it, and the pace that keeps a
//! destination inside it.
//!
//! Salesforce sends `Sforce-Limit-Info: api-usage=N/M` (requests in the last 24 hours of
//! the org's allocation); HubSpot sends `X-HubSpot-RateLimit-Daily` and
//! `X-HubSpot-RateLimit-Daily-Remaining` (with a service key or private-app token; OAuth
//! calls have no daily limit, and no such headers). Past `slow_down_at` of the allocation
//! (80% by default), the destination is paced: what is left is spread over a day, batches
//! started one `24 h / remaining` apart on average, so as not to run into
//! `REQUEST_LIMIT_EXCEEDED` and stop every other integration of the org. The gap is at
//! most a minute: with fewer than 1,440 calls left, the limit can still be reached, and
//! its answer then pauses the destination as any rate limit does.

use std::sync::{Mutex, PoisonError};

use reqwest::header::HeaderMap;

/// The allocation's window: both vendors count per day.
const WINDOW_MS: u64 = 24 * 3_600 * 1_000;
/// The longest pause between two calls while paced.
const SLOWEST_MS: u64 = 60_000;

/// Requests used of the allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub limit: u64,
}

impl Usage {
    fn share(self) -> f64 {
        if self.limit == 0 {
            1.0
        } else {
            self.used as f64 / self.limit as f64
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// `Sforce-Limit-Info: api-usage=25/15000` (other entries may follow, comma-separated).
pub fn salesforce(headers: &HeaderMap) -> Option<Usage> {
    let info = header(headers, "sforce-limit-info")?;
    let usage = info
        .split(',')
        .find_map(|part| part.trim().strip_prefix("api-usage="))?;
    let (used, limit) = usage.split_once('/')?;
    Some(Usage {
        used: used.trim().parse().ok()?,
        limit: limit.trim().parse().ok()?,
    })
}

/// HubSpot's daily limit and what remains of it.
pub fn hubspot(headers: &HeaderMap) -> Option<Usage> {
    let limit: u64 = header(headers, "x-hubspot-ratelimit-daily")?
        .trim()
        .parse()
        .ok()?;
    let remaining: u64 = header(headers, "x-hubspot-ratelimit-daily-remaining")?
        .trim()
        .parse()
        .ok()?;
    Some(Usage {
        used: limit.saturating_sub(remaining),
        limit,
    })
}

/// HubSpot's ten-second window (`X-HubSpot-RateLimit-Max` and `-Remaining`), sent on
/// every call, OAuth ones included: calls left in the window, and its size. Shown, not
/// paced on: a 429 there pauses the destination for the policy's ten seconds.
pub fn hubspot_burst(headers: &HeaderMap) -> Option<(u64, u64)> {
    let max: u64 = header(headers, "x-hubspot-ratelimit-max")?
        .trim()
        .parse()
        .ok()?;
    let remaining: u64 = header(headers, "x-hubspot-ratelimit-remaining")?
        .trim()
        .parse()
        .ok()?;
    Some((remaining, max))
}

/// What a report changed about the pace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Usage passed `slow_down_at`: calls are now spaced.
    Paced { every_ms: u64 },
    /// Usage fell back under it (the window moved on): calls go at full speed.
    Released,
}

#[derive(Debug, Default)]
struct State {
    usage: Option<Usage>,
    /// While paced, the gap between two calls.
    every_ms: Option<u64>,
    /// The earliest the next call may start.
    next_ms: u64,
}

/// A destination's allocation and pace.
#[derive(Debug)]
pub struct Allocation {
    slow_down_at: f64,
    state: Mutex<State>,
}

impl Allocation {
    pub fn new(slow_down_at: f64) -> Allocation {
        Allocation {
            slow_down_at,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes in the usage an answer reported; says when the pace changed.
    pub fn report(&self, usage: Usage) -> Option<Change> {
        let mut state = self.lock();
        state.usage = Some(usage);
        let every_ms = (usage.share() >= self.slow_down_at).then(|| {
            let remaining = usage.limit.saturating_sub(usage.used).max(1);
            (WINDOW_MS / remaining).min(SLOWEST_MS)
        });
        let before = state.every_ms;
        state.every_ms = every_ms;
        match (before, every_ms) {
            (None, Some(every_ms)) => Some(Change::Paced { every_ms }),
            (Some(_), None) => Some(Change::Released),
            _ => None,
        }
    }

    /// The earliest a call may start, if that is after `now_ms`.
    pub fn paced_until(&self, now_ms: u64) -> Option<u64> {
        let state = self.lock();
        (state.every_ms.is_some() && state.next_ms > now_ms).then_some(state.next_ms)
    }

    /// A call starts at `now_ms`: while paced, the next one waits its turn.
    pub fn take(&self, now_ms: u64) {
        let mut state = self.lock();
        if let Some(every_ms) = state.every_ms {
            state.next_ms = state.next_ms.max(now_ms).saturating_add(every_ms);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap_or_else(|_| unreachable!()));
        }
        map
    }

    #[test]
    fn both_vendors_headers_are_read() {
        assert_eq!(
            salesforce(&headers(&[(
                "sforce-limit-info",
                "api-usage=12000/15000, per-app-api-usage=17/250(appName=radar)"
            )])),
            Some(Usage {
                used: 12_000,
                limit: 15_000
            })
        );
        assert_eq!(
            salesforce(&headers(&[("sforce-limit-info", "nonsense")])),
            None
        );
        assert_eq!(
            hubspot(&headers(&[
                ("x-hubspot-ratelimit-daily", "250000"),
                ("x-hubspot-ratelimit-daily-remaining", "49999")
            ])),
            Some(Usage {
                used: 200_001,
                limit: 250_000
            })
        );
        assert_eq!(hubspot(&HeaderMap::new()), None);
        assert_eq!(
            hubspot_burst(&headers(&[
                ("x-hubspot-ratelimit-max", "190"),
                ("x-hubspot-ratelimit-remaining", "187"),
                ("x-hubspot-ratelimit-interval-milliseconds", "10000")
            ])),
            Some((187, 190))
        );
    }

    #[test]
    fn past_the_threshold_what_is_left_is_spread_over_the_day() {
        let allocation = Allocation::new(0.8);
        let usage = |used| Usage {
            used,
            limit: 15_000,
        };
        assert_eq!(allocation.report(usage(11_999)), None);
        allocation.take(0);
        assert_eq!(allocation.paced_until(0), None, "under 80%: full speed");
        // 3,000 calls left for a day: one every 28.8 s.
        assert_eq!(
            allocation.report(usage(12_000)),
            Some(Change::Paced { every_ms: 28_800 })
        );
        allocation.take(1_000);
        assert_eq!(allocation.paced_until(1_000), Some(29_800));
        assert_eq!(allocation.paced_until(29_800), None);
        allocation.take(29_800);
        assert_eq!(allocation.paced_until(30_000), Some(58_600));
        // Nearly spent: at most a minute apart, never stopped.
        assert_eq!(allocation.report(usage(14_999)), None);
        allocation.take(58_600);
        assert_eq!(allocation.paced_until(58_600), Some(118_600));
        assert_eq!(allocation.report(usage(100)), Some(Change::Released));
        assert_eq!(allocation.paced_until(60_000), None);
    }
}
