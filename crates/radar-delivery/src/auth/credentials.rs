//! A destination's token as it runs.
//!
//! - **Cached**, and renewed at 75% of its life: the life the vendor gave (`expires_in`),
//!   else `session_lifetime`. A renewal that fails while the token still works keeps it,
//!   and tries again after a backoff.
//! - **Single-flight**: one renewal at a time. A caller that waited for another's renewal
//!   takes its token (the generation it saw has moved on) instead of asking again, so 50
//!   calls that meet an expired token cause one token request.
//! - **Renewed once on a refusal**: the client that got a 401 asks for a new token
//!   ([`Credentials::refused`]) and calls again. A 401 with the renewed token, or a grant
//!   the endpoint refuses, makes the credentials **degraded**
//!   ([`Credentials::degrade`]).
//! - **Degraded** is a state, not a failure of deliveries: they stay queued and spend no
//!   attempt. Every `backoff` (5 s doubling, capped at `auth_retry_cap`) one caller
//!   probes: a new grant, or the static token read again from its file. The first call
//!   that succeeds with it ([`Credentials::worked`]) ends the degraded state, and
//!   everything held is delivered.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::{Client, Url};
use secrecy::{ExposeSecret, SecretString};

use super::grant::{self, GrantError, Issued};
use super::refresh_file;
use super::{AuthSettings, Grant};
use crate::clock::Clock;
use crate::guard::Guard;
use crate::http;
use crate::observe::Observer;

/// The first wait after credentials fail; it doubles with each failure, up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// A token to call the vendor with.
#[derive(Clone)]
pub struct Token {
    pub access: SecretString,
    /// Where Salesforce said the org's REST API is, when it said.
    pub instance_url: Option<Url>,
    /// Which token this is: each renewal makes the next.
    pub generation: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// Why there is no token to call with now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credentials degraded: {reason}")]
pub struct AuthError {
    /// What the vendor (or the token file) said, without any secret.
    pub reason: String,
    /// When the credentials are tried again (Unix ms).
    pub retry_at_ms: u64,
}

/// Why a renewal is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Renewal<'a> {
    /// The token is near the end of its life.
    Expiring,
    /// The vendor refused the token, saying this.
    Refused(&'a str),
    /// The credentials are degraded and it is time to try them again.
    Probe,
}

#[derive(Debug)]
struct Degraded {
    reason: String,
    retry_at_ms: u64,
    /// A caller is trying the credentials again: what it meets counts as a new failure.
    probing: bool,
}

struct State {
    token: Option<Token>,
    /// When the token in use is to be renewed (Unix ms).
    renew_at_ms: u64,
    generation: u64,
    /// The refresh token in use: HubSpot's rotated ones replace the configured one.
    refresh_token: Option<SecretString>,
    /// The refresh token in use is not in its file yet (its write failed, or is to come).
    refresh_unsaved: bool,
    /// Failures of the credentials since a call last worked with them.
    failures: u32,
    degraded: Option<Degraded>,
}

/// What a [`Credentials`] needs to ask for tokens.
#[derive(Clone)]
pub struct Asker {
    pub client: Client,
    pub guard: Guard,
    pub timeout: Duration,
    pub clock: Clock,
    pub observer: Arc<dyn Observer>,
}

impl std::fmt::Debug for Asker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asker")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A destination's credentials (see the module doc).
pub struct Credentials {
    destination: String,
    settings: AuthSettings,
    asker: Asker,
    state: Mutex<State>,
    /// Held while a renewal runs: the single flight.
    renewal: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("destination", &self.destination)
            .field("grant", &self.settings.grant)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    pub fn new(destination: &str, settings: AuthSettings, asker: Asker) -> Credentials {
        let (token, refresh_token) = match &settings.grant {
            Grant::Static { token, .. } => (
                Some(Token {
                    access: token.clone(),
                    instance_url: None,
                    generation: 0,
                }),
                None,
            ),
            Grant::RefreshToken { refresh_token, .. } => (None, Some(refresh_token.clone())),
            Grant::JwtBearer { .. } | Grant::ClientCredentials { .. } => (None, None),
        };
        Credentials {
            destination: destination.to_owned(),
            settings,
            asker,
            state: Mutex::new(State {
                // A static token is not renewed by age: only when it is refused.
                renew_at_ms: if token.is_some() { u64::MAX } else { 0 },
                token,
                generation: 0,
                refresh_token,
                refresh_unsaved: false,
                failures: 0,
                degraded: None,
            }),
            renewal: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        self.asker.clock.now_ms()
    }

    /// When degraded credentials are tried next (Unix ms); `None` when they are not
    /// degraded. Nothing is sent to the destination before then.
    pub fn degraded_until(&self) -> Option<u64> {
        self.lock().degraded.as_ref().map(|d| d.retry_at_ms)
    }

    /// The secrets held now: the access token in use and the refresh token (renewed and
    /// rotated ones are in no configuration, so the redactor learns them here).
    pub fn secrets_in_use(&self) -> Vec<String> {
        let state = self.lock();
        let access = state.token.iter().map(|t| t.access.expose_secret());
        let refresh = state.refresh_token.iter().map(|t| t.expose_secret());
        access.chain(refresh).map(str::to_owned).collect()
    }

    /// The token to call with: the cached one, or a renewed one.
    pub async fn token(&self) -> Result<Token, AuthError> {
        let now = self.now_ms();
        let (seen, why) = {
            let mut guard = self.lock();
            let state = &mut *guard;
            let backoff = self.backoff(state.failures.saturating_add(1));
            match (&mut state.degraded, &state.token) {
                (Some(degraded), _) if now < degraded.retry_at_ms => {
                    return Err(AuthError {
                        reason: degraded.reason.clone(),
                        retry_at_ms: degraded.retry_at_ms,
                    });
                }
                (Some(degraded), _) => {
                    // This caller probes; the others wait for the next try.
                    degraded.retry_at_ms = now.saturating_add(millis(backoff));
                    degraded.probing = true;
                    (state.generation, Renewal::Probe)
                }
                (None, Some(token)) if now < state.renew_at_ms => return Ok(token.clone()),
                (None, _) => (state.generation, Renewal::Expiring),
            }
        };
        self.renew(seen, why).await
    }

    /// The vendor refused `used`, saying `reason`: a renewed token to call again with
    /// (another caller's renewal, if one came meanwhile), or why there is none.
    pub async fn refused(&self, used: &Token, reason: &str) -> Result<Token, AuthError> {
        self.renew(used.generation, Renewal::Refused(reason)).await
    }

    /// The vendor refused `used` again, right after a renewal: the credentials are
    /// degraded with `reason`. Calls refused together with the same token count as one
    /// failure (a probe's refusal always counts).
    pub fn degrade(&self, used: &Token, reason: &str) -> AuthError {
        let mut state = self.lock();
        self.degrade_locked(&mut state, used.generation, reason)
    }

    /// A call with `used` worked: degraded credentials are well again.
    pub fn worked(&self, used: &Token) {
        let mut state = self.lock();
        if state.generation != used.generation {
            return;
        }
        state.failures = 0;
        if let Some(degraded) = state.degraded.take() {
            tracing::info!(
                destination = %self.destination,
                was = %degraded.reason,
                "credentials work again; delivering what was held"
            );
            self.asker.observer.auth(&self.destination, None);
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let doubled = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        doubled.min(self.settings.retry_cap)
    }

    fn degrade_locked(&self, state: &mut State, generation: u64, reason: &str) -> AuthError {
        let now = self.now_ms();
        if let Some(degraded) = &state.degraded
            && !degraded.probing
            && state.generation == generation
            && degraded.retry_at_ms > now
        {
            return AuthError {
                reason: degraded.reason.clone(),
                retry_at_ms: degraded.retry_at_ms,
            };
        }
        state.failures = state.failures.saturating_add(1);
        let wait = self.backoff(state.failures);
        let retry_at_ms = now.saturating_add(millis(wait));
        let first = state.degraded.is_none();
        state.degraded = Some(Degraded {
            reason: reason.to_owned(),
            retry_at_ms,
            probing: false,
        });
        if first {
            tracing::warn!(
                destination = %self.destination,
                auth = self.settings.grant.name(),
                %reason,
                retry_in = ?wait,
                "credentials refused; the destination is degraded and keeps its queue"
            );
        } else {
            tracing::debug!(destination = %self.destination, %reason, retry_in = ?wait, "credentials still refused");
        }
        self.asker.observer.auth(&self.destination, Some(reason));
        AuthError {
            reason: reason.to_owned(),
            retry_at_ms,
        }
    }

    /// Renews the token `seen` was the generation of, one renewal at a time.
    async fn renew(&self, seen: u64, why: Renewal<'_>) -> Result<Token, AuthError> {
        let _flight = self.renewal.lock().await;
        {
            // What the renewal this caller waited for (if any) left: it decides for this
            // caller too, whether it worked or not.
            let state = self.lock();
            let now = self.now_ms();
            if let Some(d) = &state.degraded
                && why != Renewal::Probe
                && now < d.retry_at_ms
            {
                return Err(AuthError {
                    reason: d.reason.clone(),
                    retry_at_ms: d.retry_at_ms,
                });
            }
            if let Some(token) = &state.token
                && (state.generation != seen
                    || (why == Renewal::Expiring && now < state.renew_at_ms))
            {
                return Ok(token.clone());
            }
        }
        let asked = match &self.settings.grant {
            Grant::Static { file, .. } => self.reread(file.as_deref(), why),
            _ => self.ask().await,
        };
        let mut rotated = None;
        let result = self.settle_renewal(asked, seen, why, &mut rotated);
        if let Some(rotated) = rotated {
            self.store_refresh_token(&rotated);
        }
        result
    }

    /// What a renewal's answer makes of the state (under its lock; no I/O).
    fn settle_renewal(
        &self,
        asked: Result<Option<Issued>, GrantError>,
        seen: u64,
        why: Renewal<'_>,
        rotated: &mut Option<SecretString>,
    ) -> Result<Token, AuthError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        match asked {
            Ok(Some(issued)) => {
                let (token, new_refresh) = self.install(state, issued);
                *rotated = new_refresh;
                Ok(token)
            }
            // A static token unchanged in its file, tried again as it is.
            Ok(None) => match (&state.token, why) {
                (Some(token), Renewal::Expiring | Renewal::Probe) => {
                    // A static token has no life to renew at: only a refusal renews it.
                    state.renew_at_ms = u64::MAX;
                    Ok(token.clone())
                }
                (_, Renewal::Refused(reason)) => {
                    let reason = format!(
                        "{reason}; put a new token in the destination's secret_file (read again \
                         at each try; a secret_env needs a restart)"
                    );
                    Err(self.degrade_locked(state, seen, &reason))
                }
                (None, _) => Err(self.degrade_locked(state, seen, "no token")),
            },
            Err(e) => {
                let now = self.now_ms();
                match (state.token.clone(), why) {
                    // The token in use may still work: keep it, and try again later.
                    (Some(token), Renewal::Expiring) => {
                        state.failures = state.failures.saturating_add(1);
                        let wait = self.backoff(state.failures);
                        state.renew_at_ms = now.saturating_add(millis(wait));
                        tracing::warn!(
                            destination = %self.destination,
                            reason = %e,
                            retry_in = ?wait,
                            "renewing the token failed; the current one is used meanwhile"
                        );
                        Ok(token)
                    }
                    _ => Err(self.degrade_locked(state, seen, &e.to_string())),
                }
            }
        }
    }

    /// Makes `issued` the token in use; returns it, and the refresh token the vendor
    /// rotated to, which is to be stored (outside the lock).
    fn install(&self, state: &mut State, issued: Issued) -> (Token, Option<SecretString>) {
        let now = self.now_ms();
        state.generation += 1;
        let token = Token {
            access: issued.access_token,
            instance_url: issued.instance_url,
            generation: state.generation,
        };
        state.token = Some(token.clone());
        if let Grant::Static { .. } = self.settings.grant {
            // A static token has no life to renew at: only a refusal renews it.
            state.renew_at_ms = u64::MAX;
            return (token, None);
        }
        let life = issued
            .expires_in
            .map_or(self.settings.session_lifetime, Duration::from_secs);
        state.renew_at_ms = now.saturating_add(millis(life) / 4 * 3);
        tracing::info!(
            destination = %self.destination,
            auth = self.settings.grant.name(),
            generation = state.generation,
            renew_in = ?life / 4 * 3,
            "token renewed"
        );
        let rotated = issued.refresh_token.filter(|rotated| {
            state
                .refresh_token
                .as_ref()
                .is_none_or(|ours| ours.expose_secret() != rotated.expose_secret())
        });
        if let Some(rotated) = &rotated {
            state.refresh_token = Some(rotated.clone());
            // Until it is in the file, the file holds a spent one: not to be taken up.
            state.refresh_unsaved = true;
        }
        (token, rotated)
    }

    /// A static token read again from its file: `Some` when it changed. Without a file
    /// (an environment variable), it cannot change while radar runs.
    fn reread(
        &self,
        file: Option<&std::path::Path>,
        why: Renewal<'_>,
    ) -> Result<Option<Issued>, GrantError> {
        let Some(path) = file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| GrantError::Unavailable(format!("reading {}: {e}", path.display())))?;
        let text = text.trim();
        let same = self
            .lock()
            .token
            .as_ref()
            .is_some_and(|t| t.access.expose_secret() == text);
        if same || text.is_empty() {
            return Ok(None);
        }
        tracing::info!(destination = %self.destination, ?why, "read a new token from secret_file");
        Ok(Some(Issued {
            access_token: text.to_owned().into(),
            instance_url: None,
            expires_in: None,
            refresh_token: None,
        }))
    }

    /// Asks the token endpoint; a refresh token another instance rotated into the shared
    /// file is taken up and tried once.
    async fn ask(&self) -> Result<Option<Issued>, GrantError> {
        let answer = self.grant().await;
        if let (
            Err(GrantError::Refused(_)),
            Grant::RefreshToken {
                file: Some(path), ..
            },
        ) = (&answer, &self.settings.grant)
            && let Ok(text) = std::fs::read_to_string(path)
        {
            let text = text.trim();
            let taken_up = {
                let mut state = self.lock();
                let ours = state
                    .refresh_token
                    .as_ref()
                    .map(ExposeSecret::expose_secret);
                let newer = !text.is_empty() && ours != Some(text) && !state.refresh_unsaved;
                if newer {
                    state.refresh_token = Some(text.to_owned().into());
                }
                newer
            };
            if taken_up {
                return self.grant().await.map(Some);
            }
        }
        answer.map(Some)
    }

    /// One token request.
    async fn grant(&self) -> Result<Issued, GrantError> {
        let Some(url) = &self.settings.token_url else {
            return Err(GrantError::Refused("no token endpoint".into()));
        };
        let now_s = self.now_ms() / 1_000;
        let assertion;
        let refresh;
        let form: Vec<(&str, &str)> = match &self.settings.grant {
            Grant::Static { .. } => return Err(GrantError::Refused("a static token".into())),
            Grant::JwtBearer {
                client_id,
                username,
                login_url,
                key,
            } => {
                let audience = grant::audience(login_url);
                assertion = grant::assertion(client_id, username, audience, now_s, key)
                    .map_err(|e| GrantError::Refused(format!("signing the assertion: {e}")))?;
                vec![("grant_type", grant::JWT_BEARER), ("assertion", &assertion)]
            }
            Grant::ClientCredentials {
                client_id, secret, ..
            } => vec![
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", secret.expose_secret()),
            ],
            Grant::RefreshToken {
                client_id, secret, ..
            } => {
                refresh = self
                    .lock()
                    .refresh_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned())
                    .unwrap_or_default();
                vec![
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", secret.expose_secret()),
                    ("refresh_token", &refresh),
                ]
            }
        };
        let request = grant::request(url, &form);
        let asker = &self.asker;
        let answer = http::send(
            &asker.client,
            &asker.guard,
            asker.timeout,
            request,
            true,
            asker.clock,
        )
        .await;
        let result = match answer {
            Ok(answer) => grant::parse(answer.status, &answer.body),
            Err(result) => Err(GrantError::Unavailable(result.describe())),
        };
        let outcome = match &result {
            Ok(_) => "issued",
            Err(GrantError::Refused(_)) => "refused",
            Err(GrantError::Unavailable(_)) => "unavailable",
        };
        asker.observer.token_request(&self.destination, outcome);
        result
    }

    /// Stores a refresh token the vendor rotated in its file, so a restart uses it.
    fn store_refresh_token(&self, rotated: &SecretString) {
        let Grant::RefreshToken {
            file: Some(path), ..
        } = &self.settings.grant
        else {
            return;
        };
        match refresh_file::replace(path, rotated.expose_secret()) {
            Ok(()) => {
                self.lock().refresh_unsaved = false;
                tracing::info!(
                    destination = %self.destination,
                    file = %path.display(),
                    "the vendor rotated the refresh token; the new one is stored"
                );
            }
            Err(e) => tracing::error!(
                destination = %self.destination,
                file = %path.display(),
                error = %e,
                "the vendor rotated the refresh token and storing the new one failed; \
                 a restart will need a new one"
            ),
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
