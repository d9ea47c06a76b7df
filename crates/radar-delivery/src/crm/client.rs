//! Delivering a batch of opportunities to one CRM destination: decode, find each
//! account's company (cached), choose owners, write the records, and give every delivery
//! its own result — so one refused record is dead-lettered alone while the rest of the
//! batch is delivered. Once an answer says the destination cannot take anything now (a
//! rate limit, a refused token, an outage), the rest of the batch is deferred: no other
//! call is made, and the deferred spend no attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use radar_core::Opportunity;
use reqwest::{Client, Url};
use secrecy::SecretString;

use super::cache::TtlCache;
use super::config::{CrmObject, CrmSettings, Routing, Vendor};
use super::routing::{Routed, route, routing_for};
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
            _ => self.one_by_one(&mut batch, &owners).await,
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

    /// Finds the companies the batch needs and routes each pending delivery; a delivery
    /// whose company cannot be had gets its result here.
    async fn owners(&self, batch: &mut Batch) -> HashMap<usize, (Routed, Option<Company>)> {
        let mut companies: HashMap<String, Result<Company, AttemptResult>> = HashMap::new();
        let mut owners = HashMap::new();
        for i in batch.pending() {
            let Some(opportunity) = batch.opportunity(i).cloned() else {
                continue;
            };
            // HubSpot associates every record with the company; Salesforce names the
            // Account by its external id and needs it read only for its owner.
            let needed = self.vendor == Vendor::HubSpot
                || *routing_for(&self.settings, &opportunity) == Routing::CompanyOwner;
            let company = if needed {
                let account = opportunity.account_id.as_str();
                if !companies.contains_key(account) {
                    if batch.defer_if_halted(&[i]) {
                        continue;
                    }
                    let found = self.company(account).await;
                    if let Err(result) = &found
                        && halts(result)
                    {
                        batch.halted = Some(result.clone());
                    }
                    companies.insert(account.to_owned(), found);
                }
                match &companies[account] {
                    Ok(company) => Some(company.clone()),
                    Err(result) => {
                        batch.results[i] = Some(result.clone());
                        continue;
                    }
                }
            } else {
                None
            };
            let routed = route(&self.settings, &opportunity, company.as_ref());
            owners.insert(i, (routed, company));
        }
        owners
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
            let answer = http::send(
                &self.client,
                &self.guard,
                self.timeout,
                request,
                true,
                self.clock,
            )
            .await?;
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

    /// When the destination's credentials are tried again, if they are degraded: nothing
    /// is sent before then.
    pub fn degraded_until(&self) -> Option<u64> {
        self.credentials.degraded_until()
    }

    /// What an answer that is not a success means, by vendor.
    fn failure(&self, answer: &Answer) -> AttemptResult {
        match self.vendor {
            Vendor::HubSpot => hubspot::failure(answer),
            Vendor::Salesforce => salesforce::classify(answer, &self.settings.id_field),
        }
    }

    /// The company (or Account) whose unique field holds `account`: cached, else looked
    /// up, else created when so configured, else `company_not_found`.
    async fn company(&self, account: &str) -> Result<Company, AttemptResult> {
        let cached = self
            .companies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(account, self.clock.now_ms());
        if let Some(company) = cached {
            return Ok(company);
        }
        let answer = self
            .call(|base, token| match self.vendor {
                Vendor::HubSpot => hubspot::find_company(base, token, &self.settings, account),
                Vendor::Salesforce => {
                    salesforce::find_account(base, token, &self.settings, account)
                }
            })
            .await?;
        let company = match answer.status {
            200 => self.parse_company(&answer.body)?,
            404 if self.settings.create_missing_company => self.create_company(account).await?,
            404 => {
                return Err(AttemptResult::Rejected {
                    label: "company_not_found",
                    reason: format!(
                        "no {} has {} = {account:?}",
                        match self.vendor {
                            Vendor::HubSpot => "HubSpot company",
                            Vendor::Salesforce => "Salesforce Account",
                        },
                        self.settings.company_field
                    ),
                });
            }
            _ => return Err(self.failure(&answer)),
        };
        let ttl = u64::try_from(self.settings.company_ttl.as_millis()).unwrap_or(u64::MAX);
        self.companies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account, company.clone(), self.clock.now_ms(), ttl);
        Ok(company)
    }

    fn parse_company(&self, body: &[u8]) -> Result<Company, AttemptResult> {
        match self.vendor {
            Vendor::HubSpot => hubspot::parse_company(body),
            Vendor::Salesforce => salesforce::parse_account(body),
        }
        .map_err(|e| bad_answer(e.to_string()))
    }

    async fn create_company(&self, account: &str) -> Result<Company, AttemptResult> {
        let answer = self
            .call(|base, token| hubspot::create_company(base, token, &self.settings, account))
            .await?;
        match answer.status {
            200 | 201 => {
                tracing::info!(destination = %self.name, account, "created the missing company");
                self.parse_company(&answer.body)
            }
            // Another batch created it meanwhile: retried, it will be found.
            409 => Err(AttemptResult::Transient {
                label: "crm_busy",
                reason: format!("the company for {account:?} was being created meanwhile"),
            }),
            _ => Err(self.failure(&answer)),
        }
    }

    /// HubSpot deals: one batch upsert, then one batch association with the companies.
    /// The same opportunity twice in a batch (a replay beside the original) is sent once
    /// and both get its result; a batch HubSpot refuses whole (one bad input makes a 400)
    /// is sent again one deal at a time, so only the bad one is dead-lettered.
    async fn hubspot_deals(
        &self,
        batch: &mut Batch,
        owners: &HashMap<usize, (Routed, Option<Company>)>,
    ) {
        let mut first: HashMap<String, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut unique = Vec::new();
        for i in batch.pending() {
            let Some(opportunity) = batch.opportunity(i) else {
                continue;
            };
            match first.get(opportunity.opportunity_id.as_str()) {
                Some(&original) => copies.push((i, original)),
                None => {
                    first.insert(opportunity.opportunity_id.to_string(), i);
                    unique.push(i);
                }
            }
        }
        if !self.upsert_deals(batch, owners, &unique).await && unique.len() > 1 {
            for i in unique {
                batch.results[i] = None;
                self.upsert_deals(batch, owners, &[i]).await;
            }
        }
        for (copy, original) in copies {
            batch.results[copy] = batch.results[original].clone();
        }
    }

    /// Upserts and associates the deals of `which`, settling each; false when HubSpot
    /// refused the batch as a whole (the results are then set, but worth a split).
    async fn upsert_deals(
        &self,
        batch: &mut Batch,
        owners: &HashMap<usize, (Routed, Option<Company>)>,
        which: &[usize],
    ) -> bool {
        if batch.defer_if_halted(which) {
            return true;
        }
        let mut sent = Vec::new();
        let mut inputs = Vec::new();
        for &i in which {
            let (Some(opportunity), Some((routed, _))) = (batch.opportunity(i), owners.get(&i))
            else {
                continue;
            };
            match hubspot::deal_input(&self.settings, opportunity, routed.owner.as_deref()) {
                Ok(input) => {
                    inputs.push(input);
                    sent.push(i);
                }
                Err(e) => batch.settle(i, AttemptResult::Unsendable(e.to_string())),
            }
        }
        if sent.is_empty() {
            return true;
        }
        let answer = self
            .call(|base, token| hubspot::upsert_deals(base, token, inputs.clone()))
            .await;
        let answer = match answer {
            Ok(answer) if matches!(answer.status, 200 | 201 | 207) => answer,
            Ok(answer) => {
                let result = self.failure(&answer);
                let refused_whole = matches!(result, AttemptResult::Rejected { .. });
                self.settle_all(batch, &sent, result);
                return !refused_whole;
            }
            Err(result) => {
                self.settle_all(batch, &sent, result);
                return true;
            }
        };
        let ids: Vec<String> = sent
            .iter()
            .filter_map(|&i| batch.opportunity(i).map(|o| o.opportunity_id.to_string()))
            .collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        let upserted = match hubspot::parse_upsert(&self.settings, &id_refs, &answer.body) {
            Ok(upserted) => upserted,
            Err(e) => {
                self.settle_all(batch, &sent, bad_answer(e.to_string()));
                return true;
            }
        };
        let mut pairs = Vec::new();
        let mut associated = Vec::new();
        for (&i, id) in sent.iter().zip(&ids) {
            let company = owners.get(&i).and_then(|(_, c)| c.as_ref());
            match (upserted.deals.get(id), company, upserted.refused.get(id)) {
                (Some(deal), Some(company), _) => {
                    pairs.push((deal.clone(), company.id.clone()));
                    associated.push(i);
                }
                (_, _, Some(reason)) => batch.settle(
                    i,
                    AttemptResult::Rejected {
                        label: "crm_refused",
                        reason: format!("HubSpot refused the deal: {reason}"),
                    },
                ),
                // Neither written nor refused by name: try again rather than guess.
                _ => batch.settle(
                    i,
                    bad_answer(format!(
                        "HubSpot's batch answer left this deal out{}",
                        upserted
                            .unattributed
                            .first()
                            .map(|e| format!(" (its errors: {e})"))
                            .unwrap_or_default()
                    )),
                ),
            }
        }
        if pairs.is_empty() {
            return true;
        }
        let answer = self
            .call(|base, token| hubspot::associate_deals(base, token, &pairs))
            .await;
        // The deals exist already: a failed association is retried whole, and upserting
        // them again on the retry changes nothing.
        let result = match answer {
            Ok(answer) if matches!(answer.status, 200 | 201) => delivered(),
            Ok(answer) if answer.status == 207 => {
                bad_answer("HubSpot associated only part of the batch".into())
            }
            Ok(answer) => self.failure(&answer),
            Err(result) => result,
        };
        self.settle_all(batch, &associated, result);
        true
    }

    /// Tasks, and Salesforce records: one request each.
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
