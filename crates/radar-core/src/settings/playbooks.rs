//! Playbooks and their conditions, as written, to [`Playbook`]s: every name, metric,
//! window and cooldown checked, with its key.

use std::collections::HashSet;

use super::models::{WindowCheck, metric_spec};
use super::{Errors, RawCondition, RawPlaybook};
use crate::opportunity::Kind;
use crate::playbook::{Cmp, Condition, Playbook};
use crate::scoring::Tier;
use crate::state::trigger_key;
use crate::time::Millis;
use crate::types::TypeRegistry;

pub(super) fn playbooks(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    default_cooldown: Option<Millis>,
    raw: Vec<RawPlaybook>,
) -> Option<Vec<Playbook>> {
    let mut names = HashSet::new();
    let mut built = Vec::new();
    let count = raw.len();
    for (i, p) in raw.into_iter().enumerate() {
        let key = format!("playbooks[{i}] ({})", p.name);
        if p.name.is_empty() || p.name.starts_with("tier:") || !names.insert(p.name.clone()) {
            errs.push(
                format!("{key}.name"),
                "must be unique, not empty and not start with \"tier:\"",
            );
        }
        let kind = match Kind::parse(&p.kind) {
            Some(Kind::TierRise) | None => {
                let kinds: Vec<&str> = Kind::ALL[..5].iter().map(|k| k.as_str()).collect();
                errs.push(
                    format!("{key}.kind"),
                    format!("{:?} is not one of {}", p.kind, kinds.join(", ")),
                );
                None
            }
            kind => kind,
        };
        let cooldown = match &p.cooldown {
            Some(text) => errs.duration(&format!("{key}.cooldown"), text),
            None => default_cooldown,
        };
        let shadow = match p.mode.as_deref() {
            None | Some("live") => false,
            Some("shadow") => true,
            Some(other) => {
                errs.push(
                    format!("{key}.mode"),
                    format!("{other:?} is not live or shadow"),
                );
                false
            }
        };
        if p.all.is_empty() && p.any.is_empty() {
            errs.push(&key, "needs at least one condition in `all` or `any`");
        }
        let mut conditions = |list: &str, raw: Vec<RawCondition>| -> Vec<Option<Condition>> {
            raw.into_iter()
                .enumerate()
                .map(|(j, c)| condition(errs, types, windows, &format!("{key}.{list}[{j}]"), c))
                .collect()
        };
        let all = conditions("all", p.all);
        let any = conditions("any", p.any);
        let all: Option<Vec<Condition>> = all.into_iter().collect();
        let any: Option<Vec<Condition>> = any.into_iter().collect();
        if let (Some(kind), Some(cooldown), Some(all), Some(any)) = (kind, cooldown, all, any) {
            // A shadow playbook's cooldowns are its own: when it goes live, the accounts
            // it fired for in shadow are not muted for a cooldown.
            let key = if shadow {
                trigger_key(&format!("shadow:{}", p.name))
            } else {
                trigger_key(&p.name)
            };
            built.push(Playbook {
                key,
                name: p.name.into(),
                kind,
                all,
                any,
                cooldown,
                shadow,
            });
        }
    }
    let mut keys: Vec<(u32, String)> = Tier::ALL
        .iter()
        .map(|t| format!("tier:{}", t.as_str()))
        .map(|name| (trigger_key(&name), name))
        .collect();
    for p in &built {
        if let Some((_, other)) = keys.iter().find(|(k, _)| *k == p.key) {
            errs.push(
                format!("playbooks ({})", p.name),
                format!("its name hashes to the same cooldown key as {other:?}; rename it"),
            );
        }
        keys.push((p.key, p.name.to_string()));
    }
    (built.len() == count).then_some(built)
}

fn condition(
    errs: &mut Errors,
    types: &mut TypeRegistry,
    windows: &mut WindowCheck,
    key: &str,
    c: RawCondition,
) -> Option<Condition> {
    let forms = [
        c.event.is_some(),
        c.metric.is_some() || c.count.is_some(),
        c.min_tier.is_some(),
    ];
    let extra = c.op.is_some() || c.value.is_some() || c.window.is_some();
    if (c.event.is_some() || c.min_tier.is_some()) && extra {
        errs.push(
            key,
            "`event` and `min_tier` conditions take no `op`, `value` or `window`",
        );
        return None;
    }
    if forms.iter().filter(|f| **f).count() != 1 {
        errs.push(
            key,
            "needs exactly one of `event`, `metric`, `count` or `min_tier`",
        );
        return None;
    }
    if let Some(event) = &c.event {
        let id = types.lookup(event);
        if id.is_none() {
            errs.push(
                format!("{key}.event"),
                format!("unknown event type {event:?}"),
            );
        }
        return id.map(Condition::EventIs);
    }
    if let Some(tier) = &c.min_tier {
        let t = Tier::parse(tier);
        if t.is_none() {
            errs.push(
                format!("{key}.min_tier"),
                format!("{tier:?} is not cold, warm, hot or critical"),
            );
        }
        return t.map(Condition::TierAtLeast);
    }
    let metric = metric_spec(
        errs,
        types,
        windows,
        key,
        c.metric.as_deref(),
        c.count.as_deref(),
        c.window.as_deref(),
    );
    let cmp = match c.op.as_deref() {
        Some(op) => {
            let cmp = Cmp::parse(op);
            if cmp.is_none() {
                errs.push(
                    format!("{key}.op"),
                    format!("{op:?} is not one of <, <=, >, >=, =="),
                );
            }
            cmp
        }
        None => {
            errs.push(format!("{key}.op"), "is missing");
            None
        }
    };
    let value = c.value.filter(|v| v.is_finite());
    if value.is_none() {
        errs.push(format!("{key}.value"), "is missing or not a finite number");
    }
    Some(Condition::Metric {
        metric: windows.metrics.add(metric?),
        cmp: cmp?,
        value: value?,
    })
}
