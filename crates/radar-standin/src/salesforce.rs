//! A stand-in of the Salesforce REST API
//! (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/>).
//!
//! Endpoints, under `/services/data/vNN.N/` (any version; every one requires
//! `Authorization: Bearer <token>`, the token given to [`Salesforce::start`] or one the
//! token endpoint issued and that has not expired):
//! - `GET sobjects/{Account|Opportunity|Task}/{ExternalIdField}/{value}?fields=..`;
//! - `PATCH sobjects/{Opportunity|Task}/{ExternalIdField}/{value}`: upsert;
//! - `PATCH composite/sobjects/{Opportunity|Task}/{ExternalIdField}`: upsert of up to 200
//!   records in one call (sObject Collections, v46.0 and later), with `allOrNone`.
//!
//! Every REST answer carries `Sforce-Limit-Info: api-usage=N/LIMIT`: each admitted call
//! (a collection of 200 records as much as a single GET) counts one toward the org's daily
//! allocation (15,000 unless [`Salesforce::set_api_usage`] says otherwise), and once it is
//! used up calls get 403 `REQUEST_LIMIT_EXCEEDED`. The stand-in's day never ends: usage
//! only resets through [`Salesforce::set_api_usage`].
//!
//! And, without a bearer token, the OAuth 2.0 token endpoint `POST /services/oauth2/token`
//! for the org's connected app ([`Salesforce::connect_app`]): JWT bearer, client
//! credentials and refresh token grants.
//!
//! What Salesforce documents and the stand-in does is written where it is done: `fields`
//! (the org's fields and ids), `handlers` (each endpoint), `collections` (sObject
//! Collections), `errors` (bodies), `oauth` (the token endpoint and what it issues). Faults
//! for tests are set through [`Salesforce`].

mod collections;
mod errors;
mod fields;
mod handlers;
mod oauth;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, patch, post};
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use self::fields::{SObjectType, id15, id18};
use crate::log::{self, RequestLog};
use crate::server;
pub use crate::{CrmRecord, Request};
pub use oauth::{ConnectedApp, KeyPair, generate_key_pair};

/// The user the token belongs to: it always exists, and owns what is created without an
/// `OwnerId`.
pub const DEFAULT_USER: &str = "005000000000001AAA";

/// The daily API request allocation reported in `Sforce-Limit-Info` unless a test sets
/// another.
const API_LIMIT: u64 = 15_000;

/// A running Salesforce stand-in. Clones share the server and its records.
#[derive(Clone, Debug)]
pub struct Salesforce {
    shared: Arc<SalesforceServer>,
}

/// The running server as its handlers and every [`Salesforce`] handle share it: its
/// address, the org's records and tokens, the request log and the opportunity feed.
#[derive(Debug)]
struct SalesforceServer {
    url: String,
    /// std `Mutex`: sections are short and never cross an `.await`.
    state: Mutex<State>,
    log: Arc<RequestLog>,
    opportunities: broadcast::Sender<CrmRecord>,
}

#[derive(Debug, Default)]
struct State {
    /// The static token the REST API accepts besides issued ones.
    token: String,
    /// The connected app, the tokens it issued, and the token endpoint's faults.
    oauth: oauth::Grants,
    /// Users by the 15-character form of their ids.
    users: BTreeSet<String>,
    accounts: Vec<SObject>,
    opportunities: Vec<SObject>,
    tasks: Vec<SObject>,
    issued: [u64; 3],
    /// API requests counted today, and the org's daily allocation.
    api_usage: u64,
    api_limit: u64,
    faults: Faults,
}

#[derive(Debug, Default)]
struct Faults {
    rate_limited: usize,
    expired: bool,
    duplicate_once: Vec<String>,
    /// External ID values whose upserts fail: value → (`errorCode`, message).
    refused: BTreeMap<String, (String, String)>,
}

/// A stored record; `fields` holds `Id` and every field set.
#[derive(Clone, Debug)]
struct SObject {
    id: String,
    fields: Map<String, Value>,
    created: bool,
}

impl SObject {
    fn record(&self) -> CrmRecord {
        CrmRecord {
            id: self.id.clone(),
            properties: self.fields.clone(),
            created: self.created,
        }
    }
}

impl State {
    fn records(&self, sobject: SObjectType) -> &[SObject] {
        match sobject {
            SObjectType::Account => &self.accounts,
            SObjectType::Opportunity => &self.opportunities,
            SObjectType::Task => &self.tasks,
            SObjectType::User => &[],
        }
    }

    fn records_mut(&mut self, sobject: SObjectType) -> Option<&mut Vec<SObject>> {
        match sobject {
            SObjectType::Account => Some(&mut self.accounts),
            SObjectType::Opportunity => Some(&mut self.opportunities),
            SObjectType::Task => Some(&mut self.tasks),
            SObjectType::User => None,
        }
    }

    /// The record whose external ID `field` is `value` (field names match
    /// case-insensitively, values exactly).
    fn find(&self, sobject: SObjectType, field: &str, value: &str) -> Option<usize> {
        self.records(sobject).iter().position(|record| {
            record
                .fields
                .iter()
                .any(|(name, v)| name.eq_ignore_ascii_case(field) && v.as_str() == Some(value))
        })
    }

    /// Whether a record of `sobject` has this id (15- or 18-character).
    fn exists(&self, sobject: SObjectType, id: &str) -> bool {
        let Some(key) = id15(id) else {
            return false;
        };
        match sobject {
            SObjectType::User => self.users.contains(key),
            _ => self
                .records(sobject)
                .iter()
                .any(|record| record.id.starts_with(key)),
        }
    }

    fn insert(&mut self, sobject: SObjectType, fields: Map<String, Value>) -> Option<&SObject> {
        let slot = match sobject {
            SObjectType::Account => 0,
            SObjectType::Opportunity => 1,
            SObjectType::Task => 2,
            SObjectType::User => return None,
        };
        self.issued[slot] += 1;
        let id = id18(&format!(
            "{}{:012}",
            sobject.key_prefix(),
            self.issued[slot]
        ));
        let mut stored = Map::new();
        stored.insert("Id".into(), id.clone().into());
        stored.extend(fields);
        let records = self.records_mut(sobject)?;
        records.push(SObject {
            id,
            fields: stored,
            created: true,
        });
        records.last()
    }
}

impl SalesforceServer {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Authentication first, then injected limits, then the daily allocation; admitted
    /// requests count toward the usage reported in `Sforce-Limit-Info`. Returns the verdict
    /// and `(usage, limit)` for that header.
    fn admit(&self, token: Option<&str>) -> (Result<(), errors::SfError>, (u64, u64)) {
        let mut state = self.lock();
        let authenticated = match token {
            None => false,
            Some(token) if token == state.token => !state.faults.expired,
            Some(token) => state.oauth.accepts(token, Instant::now()),
        };
        let verdict = if !authenticated {
            Err(errors::SfError::invalid_session())
        } else if state.faults.rate_limited > 0 {
            state.faults.rate_limited -= 1;
            Err(errors::SfError::request_limit())
        } else if state.api_usage >= state.api_limit {
            Err(errors::SfError::request_limit())
        } else {
            state.api_usage += 1;
            Ok(())
        };
        (verdict, (state.api_usage, state.api_limit))
    }

    fn publish(&self, opportunity: CrmRecord) {
        // No subscriber is fine: the channel is for whoever watches (the demo).
        let _ = self.opportunities.send(opportunity);
    }
}

impl Salesforce {
    /// Binds 127.0.0.1 on a free port and serves on the current tokio runtime; REST
    /// requests must carry `Authorization: Bearer <token>` (or a token the token endpoint
    /// issued).
    pub async fn start(token: &str) -> std::io::Result<Salesforce> {
        let (listener, addr) = server::bind().await?;
        let log = Arc::new(RequestLog::default());
        let mut state = State {
            token: token.to_owned(),
            api_limit: API_LIMIT,
            ..State::default()
        };
        if let Some(key) = id15(DEFAULT_USER) {
            state.users.insert(key.to_owned());
        }
        let shared = Arc::new(SalesforceServer {
            url: format!("http://{addr}"),
            state: Mutex::new(state),
            log: Arc::clone(&log),
            opportunities: broadcast::channel(1024).0,
        });
        let router = Router::new()
            .route(
                "/services/data/{version}/sobjects/{sobject}/{field}/{value}",
                get(handlers::get_by_external_id).patch(handlers::upsert),
            )
            .route(
                "/services/data/{version}/composite/sobjects/{sobject}/{field}",
                patch(collections::upsert),
            )
            .fallback(handlers::unknown_route)
            .layer(from_fn_with_state(Arc::clone(&shared), handlers::gate))
            // Merged after the gate's layer: the token endpoint takes no bearer token and
            // counts toward no API usage, but is logged like everything else.
            .merge(Router::new().route(oauth::TOKEN_PATH, post(oauth::token)))
            .layer(from_fn_with_state(log, log::record))
            .with_state(Arc::clone(&shared));
        server::spawn(listener, router);
        Ok(Salesforce { shared })
    }

    /// The instance URL, `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    /// Makes `user_id` (a `005…` id, 15 or 18 characters) a valid `OwnerId`.
    pub fn add_user(&self, user_id: &str) {
        let key = id15(user_id).unwrap_or(user_id).to_owned();
        self.shared.lock().users.insert(key);
    }

    /// An Account whose external ID field `field` (e.g. `Radar_Account_Id__c`) is `value`,
    /// owned by `owner_id` ([`DEFAULT_USER`] when `None`); returns its 18-character `Id`
    /// ("001…"). Seeding, so nothing is validated; a value an Account already holds returns
    /// that Account's id.
    pub fn add_account(&self, field: &str, value: &str, owner_id: Option<&str>) -> String {
        let mut state = self.shared.lock();
        if let Some(index) = state.find(SObjectType::Account, field, value) {
            return state.accounts[index].id.clone();
        }
        let mut fields = Map::new();
        fields.insert(
            "OwnerId".into(),
            owner_id.unwrap_or(DEFAULT_USER).to_owned().into(),
        );
        fields.insert(field.to_owned(), value.into());
        state
            .insert(SObjectType::Account, fields)
            .map(|account| account.id.clone())
            .unwrap_or_default()
    }

    /// Opportunities in creation order; `properties` are the fields, `Id` included.
    pub fn opportunities(&self) -> Vec<CrmRecord> {
        let state = self.shared.lock();
        state.opportunities.iter().map(SObject::record).collect()
    }

    pub fn tasks(&self) -> Vec<CrmRecord> {
        self.shared
            .lock()
            .tasks
            .iter()
            .map(SObject::record)
            .collect()
    }

    /// Every request answered so far, refused ones included, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.log.snapshot()
    }

    /// The next `n` authenticated requests get 403
    /// `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
    /// Salesforce's answer when the org's API request limit is used up.
    pub fn rate_limit_next(&self, n: usize) {
        self.shared.lock().faults.rate_limited = n;
    }

    /// Sets the org's API usage today to `used` of a daily allocation of `limit` requests,
    /// as `Sforce-Limit-Info: api-usage=used/limit` reports them (e.g. 12,000 of 15,000 to
    /// put the org at 80%). Each admitted request counts one more; once `used` reaches
    /// `limit`, authenticated requests get 403 `REQUEST_LIMIT_EXCEEDED`, and the header
    /// keeps reporting `limit/limit`.
    pub fn set_api_usage(&self, used: u64, limit: u64) {
        let mut state = self.shared.lock();
        state.api_usage = used;
        state.api_limit = limit;
    }

    /// The API requests counted today: what `Sforce-Limit-Info` reports as used.
    pub fn api_usage(&self) -> u64 {
        self.shared.lock().api_usage
    }

    /// From now on every upsert of a record whose external ID value is
    /// `external_id_value` (any sObject, single or in a collection) fails with
    /// `status_code` and `message`, as a validation rule or trigger refusing it would
    /// (e.g. `FIELD_CUSTOM_VALIDATION_EXCEPTION`). A single upsert gets 400
    /// `[{"message", "errorCode", "fields": []}]`; in a collection, that record's result is
    /// `{"success": false, "errors": [{"statusCode", "message", "fields": []}]}`. Nothing of
    /// the record is written. A later call for the same value replaces the error.
    pub fn refuse_record(&self, external_id_value: &str, status_code: &str, message: &str) {
        self.shared.lock().faults.refused.insert(
            external_id_value.to_owned(),
            (status_code.to_owned(), message.to_owned()),
        );
    }

    /// From now on the session is expired: the static token, and every token the token
    /// endpoint issued so far, get 401
    /// `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`.
    /// Tokens issued afterwards, and a token given to [`Salesforce::set_token`], work.
    pub fn expire_token(&self) {
        let mut state = self.shared.lock();
        state.faults.expired = true;
        state.oauth.revoke_all();
    }

    /// Replaces the static token the REST API accepts, as a person rotating it would: the
    /// old one gets 401 `INVALID_SESSION_ID` from now on, the new one works (even after
    /// [`Salesforce::expire_token`]). Issued tokens are not affected.
    pub fn set_token(&self, token: &str) {
        let mut state = self.shared.lock();
        state.token = token.to_owned();
        state.faults.expired = false;
    }

    /// Configures the org's one connected app (replacing any earlier one), for the token
    /// endpoint `POST /services/oauth2/token`. Tokens already issued stay valid until
    /// they expire.
    pub fn connect_app(&self, app: ConnectedApp) {
        self.shared.lock().oauth.app = Some(app);
    }

    /// While `refuse` is set, every grant, of any type, gets 400
    /// `{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}`:
    /// the app's access revoked by an admin, until restored with `false`.
    pub fn refuse_grants(&self, refuse: bool) {
        self.shared.lock().oauth.refuse = refuse;
    }

    /// How many requests the token endpoint answered, whatever the outcome.
    pub fn token_requests(&self) -> usize {
        self.shared.lock().oauth.requests
    }

    /// The next upsert of an Opportunity by external ID `value` loses a race: as if another
    /// upsert of the same value inserted first, the record exists afterwards (made from
    /// this request's body when it did not exist yet) and this request gets 400
    /// `DUPLICATE_VALUE`. A retry then finds the record and updates it.
    pub fn duplicate_once(&self, value: &str) {
        self.shared
            .lock()
            .faults
            .duplicate_once
            .push(value.to_owned());
    }

    /// Opportunities as they are created or updated, for `radar demo` to print. A receiver
    /// that falls more than 1024 behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<CrmRecord> {
        self.shared.opportunities.subscribe()
    }
}
