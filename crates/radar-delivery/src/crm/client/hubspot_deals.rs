//! HubSpot deals: one batch upsert by the unique opportunity property, then one batch
//! association with their companies.

use std::collections::HashMap;

use super::{Batch, CrmClient, bad_answer, delivered};
use crate::crm::routing::Routed;
use crate::crm::{Company, hubspot};
use crate::retry::AttemptResult;

impl CrmClient {
    /// HubSpot deals: one batch upsert, then one batch association with the companies.
    /// The same opportunity twice in a batch (a replay beside the original) is sent once
    /// and both get its result; a batch HubSpot refuses whole (one bad input makes a 400)
    /// is sent again one deal at a time, so only the bad one is dead-lettered.
    pub(super) async fn hubspot_deals(
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
}
