//! The companies (HubSpot) or Accounts (Salesforce) a batch needs, and the owner of
//! each of its records: from the cache, else read — HubSpot's up to 100 at a time by
//! their unique account property, Salesforce's one by one (and only for the owner).

use std::collections::HashMap;
use std::sync::PoisonError;

use super::{Batch, CrmClient, bad_answer, halts};
use crate::crm::config::{Routing, Vendor};
use crate::crm::routing::{Routed, route, routing_for};
use crate::crm::{Company, hubspot, salesforce};
use crate::retry::AttemptResult;

impl CrmClient {
    /// Finds the companies the batch needs and routes each pending delivery; a delivery
    /// whose company cannot be had gets its result here (deferred, when an answer halted
    /// the batch before its company was read).
    pub(super) async fn owners(
        &self,
        batch: &mut Batch,
    ) -> HashMap<usize, (Routed, Option<Company>)> {
        // HubSpot associates every record with the company; Salesforce names the Account
        // by its external id and needs it read only for its owner.
        let needs_company = |i: usize, batch: &Batch| {
            batch.opportunity(i).is_some_and(|opportunity| {
                self.vendor == Vendor::HubSpot
                    || *routing_for(&self.settings, opportunity) == Routing::CompanyOwner
            })
        };
        let mut accounts: Vec<String> = Vec::new();
        for i in batch.pending() {
            if let Some(opportunity) = batch.opportunity(i)
                && needs_company(i, batch)
                && !accounts.contains(&opportunity.account_id.to_string())
            {
                accounts.push(opportunity.account_id.to_string());
            }
        }
        let companies = self.companies(&accounts, batch).await;
        let mut owners = HashMap::new();
        for i in batch.pending() {
            let Some(opportunity) = batch.opportunity(i).cloned() else {
                continue;
            };
            let company = if needs_company(i, batch) {
                match companies.get(opportunity.account_id.as_str()) {
                    Some(Ok(company)) => Some(company.clone()),
                    Some(Err(result)) => {
                        batch.settle(i, result.clone());
                        continue;
                    }
                    None => {
                        if !batch.defer_if_halted(&[i]) {
                            batch.settle(i, bad_answer("its company was not read".into()));
                        }
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

    /// The company of each of `accounts` that could be had, or why not; none for those
    /// not read because an answer halted the batch.
    async fn companies(
        &self,
        accounts: &[String],
        batch: &mut Batch,
    ) -> HashMap<String, Result<Company, AttemptResult>> {
        let mut found = HashMap::new();
        let mut missing = Vec::new();
        {
            let cache = self
                .companies
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let now = self.clock.now_ms();
            for account in accounts {
                match cache.get(account, now) {
                    Some(company) => {
                        found.insert(account.clone(), Ok(company));
                    }
                    None => missing.push(account.as_str()),
                }
            }
        }
        match self.vendor {
            Vendor::HubSpot => {
                for chunk in missing.chunks(hubspot::READ_MAX) {
                    if batch.halted.is_some() {
                        break;
                    }
                    for (account, result) in self.read_companies(chunk, batch).await {
                        if let Err(result) = &result
                            && halts(result)
                            && batch.halted.is_none()
                        {
                            batch.halted = Some(result.clone());
                        }
                        found.insert(account, result);
                    }
                }
            }
            Vendor::Salesforce => {
                for account in missing {
                    if batch.halted.is_some() {
                        break;
                    }
                    let result = self.account(account).await;
                    if let Err(result) = &result
                        && halts(result)
                    {
                        batch.halted = Some(result.clone());
                    }
                    found.insert(account.to_owned(), result);
                }
            }
        }
        found
    }

    /// HubSpot: the companies of up to 100 `accounts` in one batch read; those it did not
    /// find are created when so configured (until an answer halts the batch: the rest
    /// are left out, and their deliveries deferred), else `company_not_found`.
    async fn read_companies(
        &self,
        accounts: &[&str],
        batch: &mut Batch,
    ) -> Vec<(String, Result<Company, AttemptResult>)> {
        let answer = self
            .call(|base, token| hubspot::read_companies(base, token, &self.settings, accounts))
            .await;
        let read = match answer {
            Ok(answer) if matches!(answer.status, 200 | 207) => {
                hubspot::parse_read(&self.settings, &answer.body)
                    .map_err(|e| bad_answer(e.to_string()))
            }
            Ok(answer) => Err(self.failure(&answer)),
            Err(result) => Err(result),
        };
        let mut read = match read {
            Ok(read) => read,
            Err(result) => {
                return accounts
                    .iter()
                    .map(|a| ((*a).to_owned(), Err(result.clone())))
                    .collect();
            }
        };
        let mut companies = Vec::with_capacity(accounts.len());
        for &account in accounts {
            let company = match read.remove(account) {
                Some(company) => Ok(company),
                None if batch.halted.is_some() => continue,
                None if self.settings.create_missing_company => {
                    let created = self.create_company(account).await;
                    if let Err(result) = &created
                        && halts(result)
                    {
                        batch.halted = Some(result.clone());
                    }
                    created
                }
                None => Err(self.not_found(account)),
            };
            if let Ok(company) = &company {
                self.remember(account, company);
            }
            companies.push((account.to_owned(), company));
        }
        companies
    }

    fn remember(&self, account: &str, company: &Company) {
        let ttl = u64::try_from(self.settings.company_ttl.as_millis()).unwrap_or(u64::MAX);
        self.companies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(account, company.clone(), self.clock.now_ms(), ttl);
    }

    fn not_found(&self, account: &str) -> AttemptResult {
        AttemptResult::Rejected {
            label: "company_not_found",
            reason: format!(
                "no {} has {} = {account:?}",
                match self.vendor {
                    Vendor::HubSpot => "HubSpot company",
                    Vendor::Salesforce => "Salesforce Account",
                },
                self.settings.company_field
            ),
        }
    }

    /// Salesforce: the Account whose external id field holds `account`, or
    /// `company_not_found`.
    async fn account(&self, account: &str) -> Result<Company, AttemptResult> {
        let answer = self
            .call(|base, token| salesforce::find_account(base, token, &self.settings, account))
            .await?;
        let company = match answer.status {
            200 => self.parse_company(&answer.body)?,
            404 => return Err(self.not_found(account)),
            _ => return Err(self.failure(&answer)),
        };
        self.remember(account, &company);
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
}
