//! Delivering a batch of opportunities to one CRM destination: decode, find each
//! account's company (cached), choose owners, write the records, and give every delivery
//! its own result — so one refused record is dead-lettered alone while the rest of the
//! batch is delivered. Once an answer says the destination cannot take anything now (a
//! rate limit, a refused token, an outage), the rest of the batch is deferred: no other
//! call is made, and the deferred spend no attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use radar_core::Opportunity;
use reqwest::{Client, Url};
use secrecy::SecretString;

use super::allocation::{self, Allocation, Change};
use super::cache::TtlCache;
use super::config::{CrmObject, CrmSettings, Vendor};
use super::routing::Routed;
use super::{Company, hubspot, salesforce};
use crate::auth::credentials::Asker;
use crate::auth::{AuthError, Credentials};
use crate::clock::Clock;
use crate::error::RequestError;
use crate::guard::Guard;
use crate::http::{self, Answer};
use crate::observe::Observer;
use crate::payload::HttpRequest;
use crate::queue::Delivery;
use crate::retry::AttemptResult;
use crate::settings::{Destination, Target};

mod collections;
mod companies;
mod hubspot_deals;

/// A CRM destination's client, shared by its in-flight batches.
pub struct CrmClient {
    name: String,
    vendor: Vendor,
    credentials: Credentials,
    /// The destination's `url`: the API's base, unless the token names an instance.
    base: Url,
    settings: CrmSettings,
    timeout: std::time::Duration,
    client: Client,
    guard: Guard,
    companies: Mutex<TtlCache<Company>>,
    allocation: Allocation,
    observer: Arc<dyn Observer>,
    clock: Clock,
}

impl std::fmt::Debug for CrmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CrmClient")
            .field("name", &self.name)
            .field("vendor", &self.vendor)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Whether a result says the destination as a whole cannot take anything now.
fn halts(result: &AttemptResult) -> bool {
    match result {
        AttemptResult::Response { status, .. } => matches!(status, 429 | 500..),
        AttemptResult::Deferred(_)
        | AttemptResult::Timeout
        | AttemptResult::Connection(_)
        | AttemptResult::Refused(_) => true,
        _ => false,
    }
}

fn delivered() -> AttemptResult {
    AttemptResult::Response {
        status: 200,
        retry_after: None,
    }
}

fn bad_answer(reason: String) -> AttemptResult {
    AttemptResult::Transient {
        label: "crm_bad_answer",
        reason,
    }
}

/// One batch as it goes: each delivery's opportunity until its result is known.
struct Batch {
    deliveries: Vec<Delivery>,
    opportunities: Vec<Option<Opportunity>>,
    results: Vec<Option<AttemptResult>>,
    /// Set by the first answer that [`halts`].
    halted: Option<AttemptResult>,
}

impl Batch {
    /// The deliveries still waiting for a result.
    fn pending(&self) -> Vec<usize> {
        (0..self.results.len())
            .filter(|&i| self.results[i].is_none())
            .collect()
    }

    fn settle(&mut self, i: usize, result: AttemptResult) {
        if self.halted.is_none() && halts(&result) {
            self.halted = Some(result.clone());
        }
        self.results[i] = Some(result);
    }

    /// Gives the pending deliveries in `which` the halting answer's deferral, if an
    /// answer has halted the batch; says whether it had.
    fn defer_if_halted(&mut self, which: &[usize]) -> bool {
        let Some(halted) = &self.halted else {
            return false;
        };
        let deferred = AttemptResult::Deferred(halted.label().to_owned());
        for &i in which {
            if self.results[i].is_none() {
                self.results[i] = Some(deferred.clone());
            }
        }
        true
    }

    fn opportunity(&self, i: usize) -> Option<&Opportunity> {
        self.opportunities.get(i).and_then(Option::as_ref)
    }
}

impl CrmClient {
    /// The client of `destination`, if it is a CRM.
    pub fn new(
        destination: &Destination,
        client: Client,
        guard: Guard,
        observer: Arc<dyn Observer>,
        clock: Clock,
    ) -> Option<CrmClient> {
        let (vendor, auth, settings) = match &destination.target {
            Target::HubSpot { auth, crm } => (Vendor::HubSpot, auth, crm),
            Target::Salesforce { auth, crm } => (Vendor::Salesforce, auth, crm),
            Target::Webhook { .. } | Target::Slack => return None,
        };
        let asker = Asker {
            client: client.clone(),
            guard: guard.clone(),
            timeout: destination.timeout,
            clock,
            observer: observer.clone(),
        };
        Some(CrmClient {
            name: destination.name.clone(),
            vendor,
            credentials: Credentials::new(&destination.name, auth.clone(), asker),
            base: destination.url.clone(),
            settings: settings.clone(),
            timeout: destination.timeout,
            client,
            guard,
            companies: Mutex::new(TtlCache::default()),
            allocation: Allocation::new(settings.slow_down_at),
            observer,
            clock,
        })
    }

    /// How many deliveries one call of [`CrmClient::deliver`] takes at most.
    pub fn batch_size(&self) -> usize {
        self.settings.batch_size
    }

    /// Delivers `deliveries`; returns each with its result, in order.
    pub async fn deliver(&self, deliveries: Vec<Delivery>) -> Vec<(Delivery, AttemptResult)> {
        let mut batch = Batch {
            opportunities: Vec::with_capacity(deliveries.len()),
            results: vec![None; deliveries.len()],
            halted: None,
            deliveries,
        };
        for i in 0..batch.deliveries.len() {
            match serde_json::from_slice::<Opportunity>(&batch.deliveries[i].opportunity) {
                Ok(o) => batch.opportunities.push(Some(o)),
                Err(e) => {
                    batch.opportunities.push(None);
                    batch.results[i] = Some(AttemptResult::Unsendable(
                        crate::error::RequestError::Opportunity(e).to_string(),
                    ));
                }
            }
        }
        let owners = self.owners(&mut batch).await;
        match (self.vendor, self.settings.object) {
            (Vendor::HubSpot, CrmObject::Deal) => self.hubspot_deals(&mut batch, &owners).await,
            (Vendor::Salesforce, CrmObject::Deal) => {
                self.salesforce_records(&mut batch, &owners).await
            }
            (_, CrmObject::Task) => self.one_by_one(&mut batch, &owners).await,
        }
        for (i, (routed, _)) in &owners {
            if batch.results[*i]
                .as_ref()
                .is_some_and(|r| r.label() == "success")
            {
                self.observer
                    .routed(&self.name, routed.team, routed.routing);
            }
        }
        let results = batch
            .results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| bad_answer("no result for this record".to_owned())));
        batch.deliveries.into_iter().zip(results).collect()
    }

    /// Sends the request `build` makes with the destination's token and base URL (the
    /// instance Salesforce named, when it did). A refused token is renewed once and the
    /// request sent again, within the same attempt; refused again, the credentials are
    /// degraded. Degraded credentials defer the delivery: it spends no attempt.
    async fn call(
        &self,
        build: impl Fn(&Url, &SecretString) -> Result<HttpRequest, RequestError>,
    ) -> Result<Answer, AttemptResult> {
        let held = |e: AuthError| AttemptResult::Deferred(e.to_string());
        let mut token = self.credentials.token().await.map_err(held)?;
        let mut renewed = false;
        loop {
            let base = token.instance_url.as_ref().unwrap_or(&self.base);
            let request =
                build(base, &token.access).map_err(|e| AttemptResult::Unsendable(e.to_string()))?;
            self.allocation.take(self.clock.now_ms());
            let answer = http::send(
                &self.client,
                &self.guard,
                self.timeout,
                request,
                true,
                self.clock,
            )
            .await?;
            self.note_usage(&answer);
            let refused = match self.vendor {
                Vendor::HubSpot => hubspot::refused_credentials(&answer),
                Vendor::Salesforce => salesforce::refused_credentials(&answer),
            };
            match refused {
                None => {
                    // An answer past the vendor's authentication proves the token.
                    if answer.status < 500 && answer.status != 429 {
                        self.credentials.worked(&token);
                    }
                    return Ok(answer);
                }
                Some(reason) if !renewed => {
                    renewed = true;
                    token = self
                        .credentials
                        .refused(&token, &reason)
                        .await
                        .map_err(held)?;
                }
                Some(reason) => return Err(held(self.credentials.degrade(&token, &reason))),
            }
        }
    }

    /// The tokens the destination holds now, for the redactor.
    pub fn secrets_in_use(&self) -> Vec<String> {
        self.credentials.secrets_in_use()
    }

    /// When the destination may be called again, if not now: its credentials are
    /// degraded until they are tried again, or its calls are paced to stay inside the
    /// daily API allocation.
    pub fn wait_until(&self, now_ms: u64) -> Option<u64> {
        let degraded = self.credentials.degraded_until().filter(|&t| t > now_ms);
        degraded.max(self.allocation.paced_until(now_ms))
    }

    /// Takes in the API allocation an answer reported, and paces or frees the
    /// destination when it crosses `slow_down_at`.
    fn note_usage(&self, answer: &Answer) {
        if self.vendor == Vendor::HubSpot
            && let Some((remaining, max)) = allocation::hubspot_burst(&answer.headers)
        {
            self.observer.api_burst(&self.name, remaining, max);
        }
        let usage = match self.vendor {
            Vendor::HubSpot => allocation::hubspot(&answer.headers),
            Vendor::Salesforce => allocation::salesforce(&answer.headers),
        };
        let Some(usage) = usage else {
            return;
        };
        self.observer.api_usage(&self.name, usage.used, usage.limit);
        match self.allocation.report(usage) {
            Some(Change::Paced { every_ms }) => {
                tracing::warn!(
                    destination = %self.name,
                    used = usage.used,
                    limit = usage.limit,
                    slow_down_at = self.settings.slow_down_at,
                    every = ?std::time::Duration::from_millis(every_ms),
                    "the CRM's daily API allocation is past slow_down_at; pacing calls"
                );
                self.observer.api_paced(&self.name, true);
            }
            Some(Change::Released) => {
                tracing::info!(destination = %self.name, used = usage.used, limit = usage.limit, "the CRM's API allocation has room again; calls go at full speed");
                self.observer.api_paced(&self.name, false);
            }
            None => {}
        }
    }

    /// What an answer that is not a success means, by vendor.
    fn failure(&self, answer: &Answer) -> AttemptResult {
        match self.vendor {
            Vendor::HubSpot => hubspot::failure(answer),
            Vendor::Salesforce => salesforce::classify(answer, &self.settings.id_field),
        }
    }

    /// Tasks: one request each.
    async fn one_by_one(
        &self,
        batch: &mut Batch,
        owners: &HashMap<usize, (Routed, Option<Company>)>,
    ) {
        for i in batch.pending() {
            if batch.defer_if_halted(&[i]) {
                continue;
            }
            let (Some(opportunity), Some((routed, company))) =
                (batch.opportunity(i), owners.get(&i))
            else {
                continue;
            };
            let owner = routed.owner.as_deref();
            let answer = self
                .call(|base, token| match (self.vendor, company) {
                    (Vendor::HubSpot, Some(company)) => hubspot::create_task(
                        base,
                        token,
                        &self.settings,
                        opportunity,
                        company,
                        owner,
                    ),
                    (Vendor::HubSpot, None) => Err(RequestError::NoCompany),
                    (Vendor::Salesforce, _) => {
                        salesforce::upsert(base, token, &self.settings, opportunity, owner)
                    }
                })
                .await;
            let result = match answer {
                // HubSpot: the unique opportunity id is already on a task.
                Ok(answer) if self.vendor == Vendor::HubSpot && answer.status == 409 => delivered(),
                Ok(answer) if (200..300).contains(&answer.status) => delivered(),
                Ok(answer) => self.failure(&answer),
                Err(result) => result,
            };
            batch.settle(i, result);
        }
    }

    fn settle_all(&self, batch: &mut Batch, which: &[usize], result: AttemptResult) {
        for &i in which {
            batch.settle(i, result.clone());
        }
    }
}
