//! The numbers of a backtest, pure: given what the engine emitted and what really
//! happened (expansions), how right would the alerts have been?
//!
//! An opportunity is a *hit* when its account expanded after it, within the horizon; its
//! lead time is the time to the first such expansion. An expansion is *caught* by a group
//! of opportunities when one of them came for its account within the horizon before it.
//! For each group (each playbook, each tier, the tier rises, everything): precision (hits
//! over opportunities), recall (caught over expansions), lift (precision over the base
//! rate: the share of accounts that expanded), median and p90 lead time, and the
//! expansion ARR caught. Plus precision and recall of every opportunity at or above each
//! score threshold, and the histograms the HTML report draws.

use std::collections::HashMap;

use serde::Serialize;

/// What a backtest keeps of one opportunity.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub account: u32,
    /// Inline up to 24 bytes: no allocation per opportunity for usual names.
    pub playbook: compact_str::CompactString,
    pub tier: &'static str,
    pub tier_rise: bool,
    pub shadow: bool,
    pub score: f64,
    pub at_ms: i64,
}

/// One real expansion, its account interned like [`Emitted::account`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expansion {
    pub account: u32,
    pub at_ms: i64,
    pub arr_delta: f64,
}

/// The figures of one group of opportunities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFigures {
    /// `all`, `playbook`, `tier` or `tier_rise`.
    pub group: &'static str,
    pub name: String,
    /// A playbook in shadow mode (evaluated, never delivered).
    pub shadow: bool,
    pub opportunities: u64,
    pub hits: u64,
    pub precision: Option<f64>,
    pub expansions_caught: u64,
    pub recall: Option<f64>,
    pub lift: Option<f64>,
    pub lead_days_median: Option<f64>,
    pub lead_days_p90: Option<f64>,
    pub arr_caught: f64,
}

/// Precision and recall of the opportunities scoring at least `min_score`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    pub min_score: f64,
    pub opportunities: u64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
}

/// Opportunities by score bucket (`from` to `from + 10`), hits and misses apart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScoreBucket {
    pub from: f64,
    pub hits: u64,
    pub misses: u64,
}

/// Hits by lead time, a week a bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadBucket {
    pub from_days: u32,
    pub hits: u64,
}

/// A backtest's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub horizon_days: f64,
    /// Accounts with at least one accepted event.
    pub accounts: u64,
    /// Of them, how many expanded.
    pub accounts_expanded: u64,
    pub base_rate: Option<f64>,
    /// Expansions of those accounts.
    pub expansions: u64,
    pub expansion_arr: f64,
    pub groups: Vec<GroupFigures>,
    pub thresholds: Vec<Threshold>,
    pub score_histogram: Vec<ScoreBucket>,
    pub lead_histogram: Vec<LeadBucket>,
}

const DAY_MS: f64 = 86_400_000.0;

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The value at quantile `q` of `sorted`, by nearest rank (the median of an even count
/// is the lower middle value).
fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// What the events cover, and how the figures are cut.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scope {
    /// Accounts seen in the events: the base rate's denominator.
    pub accounts: u64,
    /// The first and last event time: only expansions from the first event to the horizon
    /// after the last could have followed an opportunity, so only they count.
    pub from_ms: i64,
    pub to_ms: i64,
    pub horizon_ms: i64,
    /// The highest score the model gives: thresholds and score buckets go up to it.
    pub max_score: f64,
}

/// Computes the figures. Expansions of accounts never seen, or outside the time the
/// events cover (plus the horizon), are left out. Shadow playbooks have their own rows;
/// every other row, the thresholds and the histograms count only what would have been
/// sent.
///
/// `expansions` is taken whole and sorted in place by account and time: each account's
/// are then a slice, found by binary search, with no copy of the (possibly millions of)
/// rows.
pub fn figures(emitted: &[Emitted], mut expansions: Vec<Expansion>, scope: Scope) -> Figures {
    let Scope {
        accounts,
        from_ms,
        to_ms,
        horizon_ms,
        max_score,
    } = scope;
    expansions.retain(|e| e.at_ms >= from_ms && e.at_ms <= to_ms.saturating_add(horizon_ms));
    expansions.sort_unstable_by_key(|e| (e.account, e.at_ms));
    expansions.shrink_to_fit();
    let of_account = |account: u32| {
        let start = expansions.partition_point(|e| e.account < account);
        let end = expansions.partition_point(|e| e.account <= account);
        &expansions[start..end]
    };
    let accounts_expanded = expansions.chunk_by(|a, b| a.account == b.account).count() as u64;
    let base_rate = ratio(accounts_expanded, accounts);
    // Each opportunity's lead to the first expansion after it within the horizon.
    let leads: Vec<Option<i64>> = emitted
        .iter()
        .map(|o| {
            of_account(o.account)
                .iter()
                .find(|e| e.at_ms > o.at_ms && e.at_ms <= o.at_ms.saturating_add(horizon_ms))
                .map(|e| e.at_ms - o.at_ms)
        })
        .collect();
    let group =
        |kind: &'static str, name: String, shadow: bool, members: &dyn Fn(&Emitted) -> bool| {
            let chosen: Vec<usize> = (0..emitted.len())
                .filter(|&i| members(&emitted[i]))
                .collect();
            let mut lead_days: Vec<f64> = chosen
                .iter()
                .filter_map(|&i| leads[i])
                .map(|ms| ms as f64 / DAY_MS)
                .collect();
            lead_days.sort_by(f64::total_cmp);
            let hits = lead_days.len() as u64;
            let (caught, arr_caught) =
                caught(&expansions, chosen.iter().map(|&i| &emitted[i]), horizon_ms);
            let precision = ratio(hits, chosen.len() as u64);
            GroupFigures {
                group: kind,
                name,
                shadow,
                opportunities: chosen.len() as u64,
                hits,
                precision,
                expansions_caught: caught,
                recall: ratio(caught, expansions.len() as u64),
                lift: precision
                    .zip(base_rate)
                    .and_then(|(p, b)| (b > 0.0).then(|| p / b)),
                lead_days_median: quantile(&lead_days, 0.5),
                lead_days_p90: quantile(&lead_days, 0.9),
                arr_caught,
            }
        };
    let mut groups = vec![group("all", "all".into(), false, &|o| !o.shadow)];
    let mut playbooks: Vec<(&str, bool)> = emitted
        .iter()
        .filter(|o| !o.tier_rise)
        .map(|o| (o.playbook.as_str(), o.shadow))
        .collect();
    playbooks.sort_unstable();
    playbooks.dedup();
    for (name, shadow) in playbooks {
        groups.push(group("playbook", name.to_owned(), shadow, &|o| {
            !o.tier_rise && o.playbook == name
        }));
    }
    groups.push(group("tier_rise", "tier rises".into(), false, &|o| {
        o.tier_rise
    }));
    for tier in ["cold", "warm", "hot", "critical"] {
        groups.push(group("tier", tier.to_owned(), false, &|o| {
            !o.shadow && o.tier == tier
        }));
    }
    let steps = ((max_score / 10.0).ceil() as u32).max(1);
    let thresholds = (0..steps)
        .map(|step| {
            let min_score = f64::from(step) * 10.0;
            let chosen: Vec<usize> = (0..emitted.len())
                .filter(|&i| !emitted[i].shadow && emitted[i].score >= min_score)
                .collect();
            let hits = chosen.iter().filter(|&&i| leads[i].is_some()).count() as u64;
            let (caught, _) = caught(&expansions, chosen.iter().map(|&i| &emitted[i]), horizon_ms);
            Threshold {
                min_score,
                opportunities: chosen.len() as u64,
                precision: ratio(hits, chosen.len() as u64),
                recall: ratio(caught, expansions.len() as u64),
            }
        })
        .collect();
    let mut score_histogram: Vec<ScoreBucket> = (0..steps)
        .map(|step| ScoreBucket {
            from: f64::from(step) * 10.0,
            hits: 0,
            misses: 0,
        })
        .collect();
    for (o, lead) in emitted.iter().zip(&leads).filter(|(o, _)| !o.shadow) {
        let bucket = ((o.score / 10.0).floor().max(0.0) as usize).min(steps as usize - 1);
        if lead.is_some() {
            score_histogram[bucket].hits += 1;
        } else {
            score_histogram[bucket].misses += 1;
        }
    }
    // A week a bucket over the horizon, at most a year's: longer leads share the last.
    let weeks = ((horizon_ms as f64 / DAY_MS / 7.0).ceil() as usize).clamp(1, 52);
    let mut lead_histogram: Vec<LeadBucket> = (0..weeks)
        .map(|w| LeadBucket {
            from_days: (w * 7) as u32,
            hits: 0,
        })
        .collect();
    for (_, lead) in emitted.iter().zip(&leads).filter(|(o, _)| !o.shadow) {
        let Some(lead) = lead else { continue };
        let week = ((*lead as f64 / DAY_MS / 7.0) as usize).min(weeks - 1);
        lead_histogram[week].hits += 1;
    }
    Figures {
        horizon_days: horizon_ms as f64 / DAY_MS,
        accounts,
        accounts_expanded,
        base_rate,
        expansions: expansions.len() as u64,
        expansion_arr: expansions.iter().map(|e| e.arr_delta).sum(),
        groups,
        thresholds,
        score_histogram,
        lead_histogram,
    }
}

/// How many of `expansions` (and their ARR) an opportunity of `chosen` came before, for
/// the same account, within the horizon.
fn caught<'a>(
    expansions: &[Expansion],
    chosen: impl Iterator<Item = &'a Emitted>,
    horizon_ms: i64,
) -> (u64, f64) {
    let mut times: HashMap<u32, Vec<i64>> = HashMap::new();
    for o in chosen {
        times.entry(o.account).or_default().push(o.at_ms);
    }
    for list in times.values_mut() {
        list.sort_unstable();
    }
    let mut count = 0;
    let mut arr = 0.0;
    for e in expansions {
        let Some(list) = times.get(&e.account) else {
            continue;
        };
        // The latest opportunity before the expansion decides.
        let before = list.partition_point(|&t| t < e.at_ms);
        if before > 0 && list[before - 1] >= e.at_ms.saturating_sub(horizon_ms) {
            count += 1;
            arr += e.arr_delta;
        }
    }
    (count, arr)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn emitted(account: u32, playbook: &str, score: f64, day: i64) -> Emitted {
        Emitted {
            account,
            playbook: playbook.into(),
            tier: if score >= 60.0 { "hot" } else { "warm" },
            tier_rise: false,
            shadow: false,
            score,
            at_ms: day * DAY,
        }
    }

    /// Events from day 0 to day 10, a 90-day horizon, scores up to 100.
    fn scope(accounts: u64) -> Scope {
        Scope {
            accounts,
            from_ms: 0,
            to_ms: 10 * DAY,
            horizon_ms: 90 * DAY,
            max_score: 100.0,
        }
    }

    fn expansion(account: u32, day: i64, arr_delta: f64) -> Expansion {
        Expansion {
            account,
            at_ms: day * DAY,
            arr_delta,
        }
    }

    #[test]
    fn precision_recall_lift_lead_and_arr_by_hand() {
        // Four accounts seen; 0 and 1 expand. Playbook a: two opportunities on account 0
        // (days 1 and 5) and one on account 2; playbook b: one on account 1, 100 days
        // before its expansion (outside a 90-day horizon).
        let opportunities = [
            emitted(0, "a", 70.0, 1),
            emitted(0, "a", 50.0, 5),
            emitted(2, "a", 80.0, 3),
            emitted(1, "b", 90.0, 0),
        ];
        let expansions = [
            expansion(0, 11, 1_000.0),
            expansion(1, 100, 500.0),
            expansion(3, 200, 1.0),
        ];
        let f = figures(&opportunities, expansions.to_vec(), scope(4));
        assert_eq!(
            (f.accounts_expanded, f.expansions),
            (2, 2),
            "day 200 is past the last event and the horizon"
        );
        assert_eq!(f.base_rate, Some(0.5));
        let a = f.groups.iter().find(|g| g.name == "a").unwrap();
        assert_eq!((a.opportunities, a.hits), (3, 2));
        assert_eq!(a.precision, Some(2.0 / 3.0));
        assert_eq!(a.lift, Some(4.0 / 3.0));
        assert_eq!(a.expansions_caught, 1);
        assert_eq!(a.recall, Some(0.5));
        assert_eq!(a.arr_caught, 1_000.0);
        // Leads: 10 days and 6 days.
        assert_eq!(a.lead_days_median, Some(6.0));
        assert_eq!(a.lead_days_p90, Some(10.0));
        let b = f.groups.iter().find(|g| g.name == "b").unwrap();
        assert_eq!((b.hits, b.expansions_caught, b.lift), (0, 0, Some(0.0)));
        let all = &f.groups[0];
        assert_eq!(
            (all.opportunities, all.hits, all.expansions_caught),
            (4, 2, 1)
        );
        // At 60 and above: the 70, 80 and 90 opportunities; one hit (the 70).
        let t60 = f.thresholds.iter().find(|t| t.min_score == 60.0).unwrap();
        assert_eq!((t60.opportunities, t60.precision), (3, Some(1.0 / 3.0)));
        assert_eq!(t60.recall, Some(0.5));
        assert_eq!(
            f.score_histogram[7],
            ScoreBucket {
                from: 70.0,
                hits: 1,
                misses: 0
            }
        );
        assert_eq!(
            f.score_histogram[5],
            ScoreBucket {
                from: 50.0,
                hits: 1,
                misses: 0
            }
        );
        assert_eq!(f.lead_histogram[0].hits, 1, "6 days");
        assert_eq!(f.lead_histogram[1].hits, 1, "10 days");
    }

    #[test]
    fn shadow_opportunities_have_their_own_row_and_count_nowhere_else() {
        let mut shadow = emitted(0, "s", 95.0, 1);
        shadow.shadow = true;
        let opportunities = [emitted(1, "a", 50.0, 1), shadow];
        let expansions = [expansion(0, 5, 100.0), expansion(1, 5, 100.0)];
        let mut wide = scope(2);
        wide.max_score = 140.0;
        let f = figures(&opportunities, expansions.to_vec(), wide);
        assert_eq!(f.groups[0].opportunities, 1, "all: live only");
        let s = f.groups.iter().find(|g| g.name == "s").unwrap();
        assert!(s.shadow && s.opportunities == 1 && s.hits == 1);
        assert_eq!(f.thresholds.len(), 14, "up to the model's maximum");
        assert_eq!(
            f.thresholds[9].opportunities, 0,
            "the shadow 95 is not among them"
        );
        assert_eq!(f.score_histogram[9].hits, 0);
        assert_eq!(f.lead_histogram[0].hits, 1);
    }

    #[test]
    fn a_huge_horizon_saturates_instead_of_overflowing() {
        let f = figures(
            &[emitted(0, "a", 50.0, 1)],
            vec![expansion(0, 5, 1.0)],
            Scope {
                horizon_ms: i64::MAX,
                ..scope(1)
            },
        );
        assert_eq!(f.groups[0].hits, 1);
    }

    #[test]
    fn an_empty_backtest_has_no_ratios_rather_than_nan() {
        let f = figures(&[], Vec::new(), scope(0));
        assert_eq!(f.base_rate, None);
        assert!(
            f.groups
                .iter()
                .all(|g| g.precision.is_none() && g.lift.is_none())
        );
        assert!(
            serde_json::to_string(&f)
                .unwrap()
                .contains("\"precision\":null")
        );
    }
}
