//! Hot reload's hand-over to a running source: new engine settings, put in force by the
//! source loop between two poll rounds.

use std::sync::{Arc, Mutex, MutexGuard};

use radar_core::Settings;

/// Switches a running source to new engine settings between two poll rounds, every
/// account's state kept (hot reload). What may change live is for the caller to check
/// ([`radar_core::settings::live_change`]).
#[derive(Clone)]
pub struct SettingsSwitch {
    switched: Arc<Mutex<Switched>>,
}

struct Switched {
    /// The last settings switched to (or started with).
    latest: Arc<Settings>,
    /// Settings the loop has not put in force yet.
    pending: Option<Arc<Settings>>,
}

impl std::fmt::Debug for SettingsSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SettingsSwitch").finish_non_exhaustive()
    }
}

impl SettingsSwitch {
    pub(crate) fn new(settings: Arc<Settings>) -> SettingsSwitch {
        SettingsSwitch {
            switched: Arc::new(Mutex::new(Switched {
                latest: settings,
                pending: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Switched> {
        self.switched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The settings in force, or about to be: the last ones switched to.
    pub fn current(&self) -> Arc<Settings> {
        self.lock().latest.clone()
    }

    /// Puts `settings` in force from the next round on.
    pub fn switch(&self, settings: Arc<Settings>) {
        let mut switched = self.lock();
        switched.latest = settings.clone();
        switched.pending = Some(settings);
    }

    /// The settings to put in force now, if they changed.
    pub(crate) fn take_pending(&self) -> Option<Arc<Settings>> {
        self.lock().pending.take()
    }
}
