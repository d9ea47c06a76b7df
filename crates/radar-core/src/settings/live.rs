//! Which settings may change under a running engine (`radar run` reloads), and which
//! would misread the state it holds.

use super::Settings;
use crate::time::Millis;

/// Why `new` cannot replace `old` under a running engine without losing or misreading
/// state; empty when it can. Playbooks, the score model, tiers, gates, priority, the
/// owner threshold, cooldowns, the idle TTL and the future skew apply live. What the
/// accounts' state is built on cannot change under it: the bucket, the lateness, the
/// event types, which types are counted and how much history is kept. A longer window
/// or a newly counted type would count from nothing as if it counted everything; a
/// shorter history or a type no longer counted would leave gaps in the state that
/// checkpoints carry to other instances and to restarts under the old configuration.
pub fn live_change(old: &Settings, new: &Settings) -> Vec<String> {
    let mut refused = Vec::new();
    let hours = |ms: Millis| ms as f64 / crate::time::HOUR as f64;
    if new.bucket != old.bucket {
        refused.push(format!(
            "engine.bucket changes from {}h to {}h: every window's buckets would change meaning",
            hours(old.bucket),
            hours(new.bucket)
        ));
    }
    if new.allowed_lateness != old.allowed_lateness {
        refused.push(format!(
            "engine.allowed_lateness changes from {}h to {}h: the state and the duplicate filter keep what the old lateness needs",
            hours(old.allowed_lateness),
            hours(new.allowed_lateness)
        ));
    }
    let names = |s: &Settings| -> Vec<String> {
        s.types
            .ids()
            .map(|id| s.types.name(id).to_owned())
            .collect()
    };
    if names(new) != names(old) {
        refused.push(
            "the declared event types change: type ids and their counters are fixed while radar runs"
                .into(),
        );
    } else {
        for id in new.types.ids() {
            match (old.types.key(id).is_some(), new.types.key(id).is_some()) {
                (false, true) => refused.push(format!(
                    "a window counts {:?}, which the state has not counted so far: its history is not there",
                    new.types.name(id)
                )),
                (true, false) => refused.push(format!(
                    "no window counts {:?} any more: the state would stop keeping its history, which checkpoints carry to other instances and restarts",
                    new.types.name(id)
                )),
                _ => {}
            }
        }
    }
    if new.horizon_buckets != old.horizon_buckets && new.bucket == old.bucket {
        refused.push(format!(
            "the longest window plus the lateness changes from {}h to {}h: the state keeps (and checkpoints carry) {}h of history",
            hours(Millis::from(old.horizon_buckets) * old.bucket),
            hours(Millis::from(new.horizon_buckets) * new.bucket),
            hours(Millis::from(old.horizon_buckets) * old.bucket)
        ));
    }
    refused
}
