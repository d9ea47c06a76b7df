//! Salesforce Opportunities: up to 200 upserted by their external id in one sObject
//! Collections call (`allOrNone = false`), each settled by its own result, so a record
//! Salesforce refuses is dead-lettered alone with its error.

use std::collections::HashMap;

use super::{Batch, CrmClient, bad_answer};
use crate::crm::routing::Routed;
use crate::crm::{Company, salesforce};

impl CrmClient {
    /// The same opportunity twice in a batch (a replay beside the original) is sent once
    /// and both get its result.
    pub(super) async fn salesforce_records(
        &self,
        batch: &mut Batch,
        owners: &HashMap<usize, (Routed, Option<Company>)>,
    ) {
        let mut first: HashMap<String, usize> = HashMap::new();
        let mut copies: Vec<(usize, usize)> = Vec::new();
        let mut records = Vec::new();
        let mut sent = Vec::new();
        for i in batch.pending() {
            let (Some(opportunity), Some((routed, _))) = (batch.opportunity(i), owners.get(&i))
            else {
                continue;
            };
            if let Some(&original) = first.get(opportunity.opportunity_id.as_str()) {
                copies.push((i, original));
                continue;
            }
            first.insert(opportunity.opportunity_id.to_string(), i);
            match salesforce::record(&self.settings, opportunity, routed.owner.as_deref()) {
                Ok(record) => {
                    records.push(record);
                    sent.push(i);
                }
                Err(e) => batch.settle(i, crate::retry::AttemptResult::Unsendable(e.to_string())),
            }
        }
        for (chunk_records, chunk_sent) in records
            .chunks(salesforce::COLLECTION_MAX)
            .zip(sent.chunks(salesforce::COLLECTION_MAX))
        {
            if batch.defer_if_halted(chunk_sent) {
                continue;
            }
            let answer = self
                .call(|base, token| {
                    salesforce::upsert_collection(base, token, &self.settings, chunk_records)
                })
                .await;
            match answer {
                Ok(answer) if answer.status == 200 => {
                    match salesforce::parse_collection(
                        &answer.body,
                        chunk_sent.len(),
                        &self.settings.id_field,
                    ) {
                        Ok(results) => {
                            for (&i, result) in chunk_sent.iter().zip(results) {
                                batch.settle(i, result);
                            }
                        }
                        Err(e) => self.settle_all(batch, chunk_sent, bad_answer(e.to_string())),
                    }
                }
                Ok(answer) => {
                    let result = self.failure(&answer);
                    self.settle_all(batch, chunk_sent, result);
                }
                Err(result) => self.settle_all(batch, chunk_sent, result),
            }
        }
        for (copy, original) in copies {
            batch.results[copy] = batch.results[original].clone();
        }
    }
}
