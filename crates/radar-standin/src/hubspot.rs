//! A stand-in of the HubSpot CRM API (<https://developers.hubspot.com/docs/api-reference>).
//!
//! CRM endpoints (every one requires `Authorization: Bearer <token>`, the token given to
//! [`HubSpot::start`] or an access token the token endpoint issued and that has not
//! expired):
//! - `GET /crm/v3/objects/{type}/{id}`, with `idProperty` (a unique property) and
//!   `properties`;
//! - `POST /crm/v3/objects/{type}/batch/read`: up to 100 records by id or by a unique
//!   property, 207 naming the ones not found;
//! - `POST /crm/v3/objects/{type}`: create, with inline `associations`;
//! - `POST /crm/v3/objects/{type}/batch/upsert`: create or update by a unique property;
//! - `POST /crm/v4/associations/{from}/{to}/batch/associate/default`.
//!
//! And, without a bearer token, the OAuth token endpoint for the installed app
//! ([`HubSpot::connect_app`]): `POST /oauth/2026-03/token` and the deprecated
//! `POST /oauth/v1/token`, refresh grants only.
//!
//! `{type}` is `companies`, `deals` or `tasks`. What HubSpot documents and the stand-in
//! does is written where it is done: `schema` (properties and their checks), `handlers`
//! (each endpoint), `batch_read`, `errors` (bodies), `oauth` (the token endpoint and what
//! it issues). Faults for tests are set through [`HubSpot`].
//!
//! Rate limits, as the usage guidelines and the developer changelog describe them
//! (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>):
//! - the burst limit over a rolling ten seconds, reported in `X-HubSpot-RateLimit-Max`,
//!   `-Remaining` and `-Interval-Milliseconds`; the stand-in enforces and reports it only
//!   once a test sets one ([`HubSpot::set_ten_second_limit`]);
//! - the account's daily limit, reported in `X-HubSpot-RateLimit-Daily` and
//!   `X-HubSpot-RateLimit-Daily-Remaining` on calls made with a private app's (or a
//!   service key's) static token. Calls with OAuth access tokens carry neither header, "as
//!   there is no daily limit for these calls" (changelog, "Rate limit headers will now
//!   appear for OAuth authenticated calls"), so here they neither count toward it nor are
//!   refused by it. The stand-in's day starts at 250,000 (the Free and Starter limit)
//!   with nothing used and never ends: [`HubSpot::set_daily_usage`] resets it. Each
//!   admitted call counts one, a batch of 100 as much as a single GET; once the day is used
//!   up, calls get 429 with the `DAILY` policy.

mod batch_read;
mod errors;
mod handlers;
mod oauth;
mod schema;

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use self::schema::ObjectType;
use crate::log::{self, RequestLog};
use crate::server;
pub use crate::{CrmRecord, Request};
pub use oauth::OAuthApp;

/// Which of HubSpot's rate-limit policies a 429 reports as exhausted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    /// The per-app burst limit over a rolling ten seconds (`TEN_SECONDLY_ROLLING`).
    TenSecondly,
    /// The account's daily limit (`DAILY`).
    Daily,
}

/// A running HubSpot stand-in. Clones share the server and its records.
#[derive(Clone, Debug)]
pub struct HubSpot {
    shared: Arc<HubSpotServer>,
}

/// The running server as its handlers and every [`HubSpot`] handle share it: its
/// address, the portal's records and tokens, the request log and the deal feed.
#[derive(Debug)]
struct HubSpotServer {
    url: String,
    /// std `Mutex`: sections are short and never cross an `.await`.
    state: Mutex<State>,
    log: Arc<RequestLog>,
    deals: broadcast::Sender<CrmRecord>,
    correlations: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// The static token the CRM endpoints accept besides issued ones.
    token: String,
    /// The installed app, the tokens it issued, and the token endpoint's faults.
    oauth: oauth::Grants,
    owners: BTreeSet<String>,
    companies: Vec<Object>,
    deals: Vec<Object>,
    tasks: Vec<Object>,
    /// `(from type, from id, company id)`, in the order they were made.
    associations: Vec<(ObjectType, String, String)>,
    issued: [u64; 3],
    /// Calls made today with the static token, and the account's daily limit.
    daily_used: u64,
    daily_limit: u64,
    faults: Faults,
}

#[derive(Debug, Default)]
struct Faults {
    rate_limited: Option<Injected429>,
    expired_at: Option<DateTime<Utc>>,
    fail_inputs: Vec<String>,
    ten_second_limit: Option<usize>,
    /// Admission times within the last ten seconds, for the rolling limit.
    window: VecDeque<Instant>,
}

#[derive(Debug)]
struct Injected429 {
    remaining: usize,
    policy: RateLimit,
    retry_after: Option<u64>,
}

/// A stored CRM record.
#[derive(Clone, Debug)]
struct Object {
    id: String,
    /// Values as HubSpot stores them: strings.
    properties: Map<String, Value>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    created: bool,
}

impl Object {
    fn record(&self) -> CrmRecord {
        CrmRecord {
            id: self.id.clone(),
            properties: self.properties.clone(),
            created: self.created,
        }
    }

    fn value(&self, property: &str) -> Option<&str> {
        if property == "hs_object_id" {
            return Some(&self.id);
        }
        self.properties.get(property).and_then(Value::as_str)
    }
}

impl State {
    fn objects(&self, object_type: ObjectType) -> &Vec<Object> {
        match object_type {
            ObjectType::Company => &self.companies,
            ObjectType::Deal => &self.deals,
            ObjectType::Task => &self.tasks,
        }
    }

    fn objects_mut(&mut self, object_type: ObjectType) -> &mut Vec<Object> {
        match object_type {
            ObjectType::Company => &mut self.companies,
            ObjectType::Deal => &mut self.deals,
            ObjectType::Task => &mut self.tasks,
        }
    }

    /// The record of this type whose `property` (a unique one, or `hs_object_id`) is
    /// `value`.
    fn find(&self, object_type: ObjectType, property: &str, value: &str) -> Option<usize> {
        self.objects(object_type)
            .iter()
            .position(|object| object.value(property) == Some(value))
    }

    /// Another record of this type already holding one of `properties`' unique values:
    /// `(property, value, existing id)`.
    fn unique_conflict(
        &self,
        object_type: ObjectType,
        properties: &Map<String, Value>,
        except: Option<usize>,
    ) -> Option<(String, String, String)> {
        properties.iter().find_map(|(name, value)| {
            let value = value.as_str().filter(|v| !v.is_empty())?;
            if !object_type.is_unique(name) {
                return None;
            }
            let index = self.find(object_type, name, value)?;
            (Some(index) != except).then(|| {
                let existing = self.objects(object_type)[index].id.clone();
                (name.clone(), value.to_owned(), existing)
            })
        })
    }

    fn insert(&mut self, object_type: ObjectType, properties: Map<String, Value>) -> &Object {
        let slot = object_type as usize;
        let id = (object_type.first_id() + self.issued[slot]).to_string();
        self.issued[slot] += 1;
        let now = server::now();
        let objects = self.objects_mut(object_type);
        objects.push(Object {
            id,
            properties,
            created_at: now,
            updated_at: now,
            created: true,
        });
        &objects[objects.len() - 1]
    }

    /// Merges `properties` into the record at `index`, as an update does.
    fn update(
        &mut self,
        object_type: ObjectType,
        index: usize,
        properties: Map<String, Value>,
    ) -> &Object {
        let object = &mut self.objects_mut(object_type)[index];
        object.properties.extend(properties);
        object.updated_at = server::now();
        object.created = false;
        object
    }

    fn associate(&mut self, from: ObjectType, from_id: &str, company_id: &str) {
        let exists = self
            .associations
            .iter()
            .any(|(t, f, c)| *t == from && f == from_id && c == company_id);
        if !exists {
            self.associations
                .push((from, from_id.to_owned(), company_id.to_owned()));
        }
    }
}

/// What the gate decided for one request.
enum Verdict {
    Pass,
    Unauthenticated(&'static str),
    Expired(DateTime<Utc>),
    Limited(RateLimit, Option<u64>),
}

/// The ten-second window HubSpot reports in `X-HubSpot-RateLimit-*` headers.
const WINDOW: Duration = Duration::from_secs(10);

/// The daily limit the portal starts with: HubSpot's for Free and Starter accounts.
const DAILY_LIMIT: u64 = 250_000;

/// What an answer reports in `X-HubSpot-RateLimit-*` headers.
#[derive(Debug, Default)]
struct Limits {
    /// `(max, remaining)` of the ten-second window, while one is enforced.
    ten_second: Option<(usize, usize)>,
    /// `(limit, remaining)` of the day, for calls with the static token.
    daily: Option<(u64, u64)>,
}

impl Limits {
    fn write(&self, headers: &mut HeaderMap) {
        if let Some((max, remaining)) = self.ten_second {
            for (name, value) in [
                ("x-hubspot-ratelimit-max", max),
                ("x-hubspot-ratelimit-remaining", remaining),
                ("x-hubspot-ratelimit-interval-milliseconds", 10_000),
            ] {
                headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
            }
        }
        if let Some((limit, remaining)) = self.daily {
            for (name, value) in [
                ("x-hubspot-ratelimit-daily", limit),
                ("x-hubspot-ratelimit-daily-remaining", remaining),
            ] {
                headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
            }
        }
    }
}

impl HubSpotServer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn correlation_id(&self) -> String {
        let n = self.correlations.fetch_add(1, Ordering::Relaxed);
        format!("5a1e0000-0000-4000-8000-{n:012x}")
    }

    /// Authentication first, then injected 429s, then the daily limit (static token only),
    /// then the rolling ten-second limit; only admitted requests count toward the limits.
    /// Returns the verdict and what the rate-limit headers report.
    fn admit(&self, token: Option<&str>) -> (Verdict, Limits) {
        let mut state = self.lock();
        let private = token.is_some_and(|token| token == state.token);
        let refused = match token {
            None => Some(Verdict::Unauthenticated(
                "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
            )),
            Some(token) if token == state.token => state.faults.expired_at.map(Verdict::Expired),
            Some(token) => match state.oauth.check(token, server::now()) {
                oauth::Issued::Live => None,
                oauth::Issued::Expired(at) => Some(Verdict::Expired(at)),
                oauth::Issued::Unknown => Some(Verdict::Unauthenticated(
                    "Authentication credentials are invalid: the access token is not recognized.",
                )),
            },
        };
        let authenticated = refused.is_none();
        let daily_spent = private && state.daily_used >= state.daily_limit;
        let faults = &mut state.faults;
        let now = Instant::now();
        while faults
            .window
            .front()
            .is_some_and(|at| now.duration_since(*at) >= WINDOW)
        {
            faults.window.pop_front();
        }
        let verdict = match refused {
            Some(verdict) => verdict,
            None => {
                if let Some(injected) = faults.rate_limited.as_mut().filter(|i| i.remaining > 0) {
                    injected.remaining -= 1;
                    Verdict::Limited(injected.policy, injected.retry_after)
                } else if daily_spent {
                    Verdict::Limited(RateLimit::Daily, None)
                } else if faults
                    .ten_second_limit
                    .is_some_and(|max| faults.window.len() >= max)
                {
                    Verdict::Limited(RateLimit::TenSecondly, None)
                } else {
                    faults.window.push_back(now);
                    Verdict::Pass
                }
            }
        };
        let ten_second = faults
            .ten_second_limit
            .map(|max| (max, max.saturating_sub(faults.window.len())));
        if private && matches!(verdict, Verdict::Pass) {
            state.daily_used += 1;
        }
        let daily = (private && authenticated).then(|| {
            let limit = state.daily_limit;
            (limit, limit.saturating_sub(state.daily_used))
        });
        (verdict, Limits { ten_second, daily })
    }

    fn publish(&self, deals: Vec<CrmRecord>) {
        for deal in deals {
            // No subscriber is fine: the channel is for whoever watches (the demo).
            let _ = self.deals.send(deal);
        }
    }
}

impl HubSpot {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime; CRM
    /// requests must carry `Authorization: Bearer <token>` (or an access token the token
    /// endpoint issued).
    pub async fn start(token: &str) -> std::io::Result<HubSpot> {
        let (listener, addr) = server::bind().await?;
        let log = Arc::new(RequestLog::default());
        let shared = Arc::new(HubSpotServer {
            url: format!("http://{addr}"),
            state: Mutex::new(State {
                token: token.to_owned(),
                daily_limit: DAILY_LIMIT,
                ..State::default()
            }),
            log: Arc::clone(&log),
            deals: broadcast::channel(1024).0,
            correlations: AtomicU64::new(1),
        });
        let router = Router::new()
            .route(
                "/crm/v3/objects/{object_type}",
                post(handlers::create_object),
            )
            .route(
                "/crm/v3/objects/{object_type}/{id}",
                get(handlers::get_object),
            )
            .route(
                "/crm/v3/objects/{object_type}/batch/upsert",
                post(handlers::batch_upsert),
            )
            .route(
                "/crm/v3/objects/{object_type}/batch/read",
                post(batch_read::batch_read),
            )
            .route(
                "/crm/v4/associations/{from}/{to}/batch/associate/default",
                post(handlers::associate_default),
            )
            .fallback(handlers::unknown_route)
            .layer(from_fn_with_state(Arc::clone(&shared), handlers::gate))
            // Merged after the gate's layer: the token endpoint takes no bearer token and
            // counts toward no rate limit, but is logged like everything else.
            .merge(
                Router::new()
                    .route(oauth::TOKEN_PATH, post(oauth::token))
                    .route(oauth::TOKEN_PATH_V1, post(oauth::token)),
            )
            .layer(from_fn_with_state(log, log::record))
            .with_state(Arc::clone(&shared));
        server::spawn(listener, router);
        Ok(HubSpot { shared })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// Makes `owner_id` a valid `hubspot_owner_id`. The portal starts with no owners.
    pub fn add_owner(&self, owner_id: &str) {
        self.shared.lock().owners.insert(owner_id.to_owned());
    }

    /// A company whose `property` is `value` (e.g. `radar_account_id`, or `domain`, which
    /// HubSpot does not treat as unique), optionally owned by `owner_id`; returns its
    /// HubSpot id ("9000001", "9000002", ...).
    ///
    /// Seeding, so nothing is validated; a unique value that a company already holds
    /// returns that company's id instead of making a duplicate.
    pub fn add_company(&self, property: &str, value: &str, owner_id: Option<&str>) -> String {
        let mut state = self.shared.lock();
        if ObjectType::Company.is_unique(property) {
            if let Some(index) = state.find(ObjectType::Company, property, value) {
                return state.companies[index].id.clone();
            }
        }
        let mut properties = Map::new();
        properties.insert(property.to_owned(), value.into());
        if let Some(owner) = owner_id {
            properties.insert("hubspot_owner_id".into(), owner.into());
        }
        state.insert(ObjectType::Company, properties).id.clone()
    }

    pub fn companies(&self) -> Vec<CrmRecord> {
        self.shared
            .lock()
            .companies
            .iter()
            .map(Object::record)
            .collect()
    }

    /// Deals in creation order.
    pub fn deals(&self) -> Vec<CrmRecord> {
        self.shared
            .lock()
            .deals
            .iter()
            .map(Object::record)
            .collect()
    }

    pub fn tasks(&self) -> Vec<CrmRecord> {
        self.shared
            .lock()
            .tasks
            .iter()
            .map(Object::record)
            .collect()
    }

    /// HubSpot ids of the companies associated with the deal or task `object_id`, in the
    /// order the associations were made. (Deal and task ids come from separate ranges.)
    pub fn associated_companies(&self, object_id: &str) -> Vec<String> {
        self.shared
            .lock()
            .associations
            .iter()
            .filter(|(_, from, _)| from == object_id)
            .map(|(_, _, company)| company.clone())
            .collect()
    }

    /// Every request answered so far, refused ones included, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.snapshot()
    }

    /// The next `n` authenticated requests get 429 with HubSpot's body for `policy` and,
    /// if given, `Retry-After: <secs>`.
    pub fn rate_limit_next(&self, n: usize, policy: RateLimit, retry_after: Option<u64>) {
        self.shared.lock().faults.rate_limited = Some(Injected429 {
            remaining: n,
            policy,
            retry_after,
        });
    }

    /// Enforces HubSpot's rolling ten-second limit at `limit` requests (`None`: no limit,
    /// the default). While set, responses carry `X-HubSpot-RateLimit-Max`, `-Remaining`
    /// and `-Interval-Milliseconds`.
    pub fn set_ten_second_limit(&self, limit: Option<usize>) {
        let mut state = self.shared.lock();
        state.faults.ten_second_limit = limit;
        state.faults.window.clear();
    }

    /// Sets the account's daily API usage to `used` calls of a daily limit of `limit`, as
    /// `X-HubSpot-RateLimit-Daily` and `-Daily-Remaining` report them on calls with the
    /// static token. Each admitted call counts one more; once `used` reaches `limit`, such
    /// calls get 429 with the `DAILY` policy (`Daily-Remaining: 0`). OAuth access tokens
    /// have no daily limit, as with HubSpot.
    pub fn set_daily_usage(&self, used: u64, limit: u64) {
        let mut state = self.shared.lock();
        state.daily_used = used;
        state.daily_limit = limit;
    }

    /// Calls counted toward today's limit so far.
    pub fn daily_usage(&self) -> u64 {
        self.shared.lock().daily_used
    }

    /// From now on the token is expired: the static token, and every access token the
    /// token endpoint issued so far, get 401 `EXPIRED_AUTHENTICATION`. Tokens issued
    /// afterwards, and a token given to [`HubSpot::set_token`], work.
    pub fn expire_token(&self) {
        let now = server::now();
        let mut state = self.shared.lock();
        state.faults.expired_at = Some(now);
        state.oauth.expire_all(now);
    }

    /// Replaces the static token the CRM endpoints accept, as a person rotating a private
    /// app's token would: the old one gets 401 (not recognized) from now on, the new one
    /// works (even after [`HubSpot::expire_token`]). Issued tokens are not affected.
    pub fn set_token(&self, token: &str) {
        let mut state = self.shared.lock();
        state.token = token.to_owned();
        state.faults.expired_at = None;
    }

    /// Installs the portal's one OAuth app (replacing any earlier one): its refresh token
    /// becomes the one the token endpoint accepts. Access tokens already issued stay valid
    /// until they expire.
    pub fn connect_app(&self, app: OAuthApp) {
        self.shared.lock().oauth.connect(app);
    }

    /// While `refuse` is set, every grant gets 400 `BAD_REFRESH_TOKEN` (`invalid_grant`),
    /// as after the app was uninstalled; `false` restores it, refresh token unchanged.
    pub fn refuse_grants(&self, refuse: bool) {
        self.shared.lock().oauth.refuse = refuse;
    }

    /// How many requests the token endpoint answered (both paths), whatever the outcome.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().oauth.requests
    }

    /// The refresh token the token endpoint accepts now: the app's, or the last one a
    /// rotating refresh answered; `None` before [`HubSpot::connect_app`].
    pub fn refresh_token(&self) -> Option<String> {
        self.shared.lock().oauth.refresh_token()
    }

    /// The next batch upsert with an input whose `id` (its `idProperty` value) is `value`
    /// refuses that input only: HTTP 207 with results for the others and an `errors` entry
    /// (category `VALIDATION_ERROR`, `context.objectWriteTraceId`) for it, as HubSpot's
    /// multi-status responses do. As with HubSpot, that needs the input to carry an
    /// `objectWriteTraceId`; without one the whole batch fails with 400 and nothing is
    /// written.
    pub fn fail_input_once(&self, value: &str) {
        self.shared.lock().faults.fail_inputs.push(value.to_owned());
    }

    /// Deals as they are created or updated, for `radar demo` to print. A receiver that
    /// falls more than 1024 deals behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<CrmRecord> {
        self.shared.deals.subscribe()
    }
}
