//! Restoring a partition with a changelog (`state.store = "kafka"`): the local store is
//! only a cache of it, and what the changelog holds that cannot be used is set aside
//! (see [`crate::quarantine`]) instead of stopping the restore.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use radar_core::{AccountRecords, Engine, Settings};
use radar_store::LoadedState;

use super::CatchUp;
use crate::changelog::Changelog;
use crate::error::SourceError;
use crate::quarantine::{Quarantined, Unusable};

/// A partition's state as the changelog has it.
pub(super) struct FromChangelog {
    pub engine: Engine,
    /// The source offset to resume from (`None`: from the partition's start).
    pub resume_at: Option<i64>,
    /// Changelog records read; `None` when the local store was as new as the changelog.
    pub records: Option<u64>,
    /// Where this instance's view of the changelog ends.
    pub changelog_seen: i64,
    pub quarantined: usize,
    pub rebuilding: usize,
    pub catch_up: Option<CatchUp>,
}

/// The local state `found`, used as it is when it is as new as the changelog, brought up
/// to date from the changelog's tail when it is older, and ignored for the whole
/// changelog when it has none of it; then the partition claimed (see below), the
/// accounts whose changelog state could not be read dropped, to be rebuilt from the
/// source, and those ahead of the resume offset told apart ([`CatchUp`]).
pub(super) fn restore(
    settings: Arc<Settings>,
    found: Option<LoadedState<Engine>>,
    changelog: &Changelog,
    partition: i32,
) -> Result<FromChangelog, SourceError> {
    let end = changelog.end(partition)?;
    // The local state, if it is a cache of this changelog, and where it stands.
    let cached = found.and_then(|loaded| {
        let at = loaded.changelog.filter(|at| *at <= end)?;
        Some((at, loaded))
    });
    let (mut engine, from, cached_offset) = match cached {
        Some((at, loaded)) => (loaded.state, at, Some(loaded.offset)),
        None => (Engine::new(settings), 0, None),
    };
    let mut resume_at = cached_offset;
    let (mut changelog_seen, mut records) = (end, None);
    let mut unusable: Vec<Quarantined> = Vec::new();
    let mut ahead: HashMap<Vec<u8>, i64> = HashMap::new();
    // The local cache is as new as the changelog: this machine wrote last, so
    // no other instance has held the partition since and none needs fencing.
    let claim = from != end;
    if claim {
        let mut replayed = changelog.replay(partition, from, &mut engine)?;
        changelog.drop_completions_beyond_source(partition, &mut replayed)?;
        records = Some(replayed.records);
        changelog_seen = replayed.end;
        resume_at = replayed.resume_at.or(cached_offset);
        changelog.quarantine(partition, &replayed.unusable);
        unusable = replayed.unusable;
        ahead = replayed.ahead;
    }
    // The claim: a completion record of what was restored, so that an earlier
    // holder waking up finds the changelog moved past its view and writes
    // nothing (see `Changelog::write`); it also supersedes the unusable
    // records set aside above. Records another holder slipped in between the
    // read and the claim are read too, and the claim tried again.
    if let Some(offset) = resume_at.filter(|_| claim) {
        let mut tries = 0;
        loop {
            let nothing = AccountRecords {
                evicted: Vec::new(),
                updated: Vec::new(),
            };
            let foreign: Vec<&[u8]> = unusable
                .iter()
                .filter(|record| record.why == Unusable::Key)
                .map(|record| record.key.as_slice())
                .collect();
            match changelog.write(partition, &nothing, &foreign, offset, changelog_seen) {
                Ok(at) => {
                    changelog_seen = at;
                    break;
                }
                Err(SourceError::Fenced(_)) if tries < 3 => {
                    tries += 1;
                    let mut replayed = changelog.replay(partition, changelog_seen, &mut engine)?;
                    changelog.drop_completions_beyond_source(partition, &mut replayed)?;
                    changelog_seen = replayed.end;
                    resume_at = replayed.resume_at.or(resume_at);
                    changelog.quarantine(partition, &replayed.unusable);
                    unusable.extend(replayed.unusable);
                    ahead.extend(replayed.ahead);
                }
                Err(e) => return Err(e),
            }
        }
    }
    let quarantined = unusable.len();
    let accounts: HashSet<Vec<u8>> = unusable
        .into_iter()
        .filter(|record| record.why == Unusable::State)
        .map(|record| record.key)
        .collect();
    for account in &accounts {
        // Keys of unreadable states are UTF-8: others are `Unusable::Key`.
        engine.discard_account(&String::from_utf8_lossy(account));
    }
    let rebuilding = accounts.len();
    ahead.retain(|account, complete_to| {
        resume_at.is_none_or(|resume| *complete_to > resume) && !accounts.contains(account)
    });
    // Without a usable completion the whole partition is read again anyway.
    let rebuild = match resume_at {
        Some(resume) if rebuilding > 0 => {
            resume_at = None;
            Some((accounts, resume))
        }
        _ => None,
    };
    let until = rebuild
        .iter()
        .map(|(_, resume)| *resume)
        .chain(ahead.values().copied())
        .max();
    let catch_up = until.map(|until| CatchUp {
        ahead,
        rebuild,
        until,
    });
    Ok(FromChangelog {
        engine,
        resume_at,
        records,
        changelog_seen,
        quarantined,
        rebuilding,
        catch_up,
    })
}
