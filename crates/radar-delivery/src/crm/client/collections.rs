//! Salesforce Opportunities: up to 200 upserted by their external id in one sObject
//! Collections call (`allOrNone = false`), each settled by its own result, so a record
//! Salesforce refuses is dead-lettered alone with its error. A call refused whole (one
//! record it cannot even parse) is sent again one record at a time.

use std::collections::HashMap;

use super::{Batch, CrmClient, bad_answer};
use crate::crm::routing::Routed;
use crate::crm::{Company, salesforce};
use crate::retry::AttemptResult;

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
            let refused_whole = !self.upsert_chunk(batch, chunk_records, chunk_sent).await;
            if refused_whole && chunk_sent.len() > 1 {
                // One bad record can make Salesforce refuse the whole call: one by one,
                // only that one is dead-lettered.
                for (record, &i) in chunk_records.iter().zip(chunk_sent) {
                    batch.results[i] = None;
                    self.upsert_chunk(batch, std::slice::from_ref(record), &[i])
                        .await;
                }
            }
        }
        for (copy, original) in copies {
            batch.results[copy] = batch.results[original].clone();
        }
    }

    /// Upserts `records` (the deliveries `sent`) in one collection call and settles each;
    /// false when Salesforce refused the call as a whole (the results are then set, but
    /// worth a split).
    async fn upsert_chunk(
        &self,
        batch: &mut Batch,
        records: &[serde_json::Value],
        sent: &[usize],
    ) -> bool {
        if batch.defer_if_halted(sent) {
            return true;
        }
        let answer = self
            .call(|base, token| salesforce::upsert_collection(base, token, &self.settings, records))
            .await;
        match answer {
            Ok(answer) if answer.status == 200 => {
                match salesforce::parse_collection(
                    &answer.body,
                    sent.len(),
                    &self.settings.id_field,
                ) {
                    Ok(results) => {
                        for (&i, result) in sent.iter().zip(results) {
                            batch.settle(i, result);
                        }
                    }
                    Err(e) => self.settle_all(batch, sent, bad_answer(e.to_string())),
                }
                true
            }
            Ok(answer) => {
                let result = self.failure(&answer);
                let refused_whole = matches!(result, AttemptResult::Rejected { .. });
                self.settle_all(batch, sent, result);
                !refused_whole
            }
            Err(result) => {
                self.settle_all(batch, sent, result);
                true
            }
        }
    }
}
