//! sObject Collections upsert: `PATCH composite/sobjects/{type}/{ExternalIdField}`
//! (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_upsert.htm>).
//!
//! What Salesforce documents:
//! - the body is `{"allOrNone": bool (default false), "records": [..]}`; up to 200 records,
//!   all of the URL's type, each with an `attributes` map holding `type`, and the external
//!   ID field of the URL (never `Id`); available from API version 46.0;
//! - records are upserted in the order listed and the answer lists one UpsertResult per
//!   record in the same order: `{"id", "success": true, "errors": [], "created"}`, or
//!   `success: false` with `errors` of `{statusCode, message, fields}` (an error's `id` is
//!   null in the UpsertResult reference; the stand-in leaves it out, as the REST examples
//!   of failed records do);
//! - a well-formed request is 200 whatever became of its records; a malformed one 400
//!   (more than 200 records: `EXCEEDED_ID_LIMIT`);
//! - with `allOrNone`, one failure rolls the whole call back: the records that were valid
//!   get `ALL_OR_NONE_OPERATION_ROLLED_BACK`;
//! - the call is one API request, whatever the number of records.
//!
//! What the stand-in chose where the documentation is silent:
//! - a record without `attributes.type`, or of another type than the URL's, fails alone
//!   with `INVALID_TYPE`; without an external ID value it fails alone with
//!   `MISSING_ARGUMENT` ("{field} not specified", the SOAP upsert's words); two records with
//!   the same value both fail with `DUPLICATE_VALUE` "Duplicate external id specified";
//! - each record goes through exactly what the single upsert does ([`upsert_record`]):
//!   field checks, references, required fields, injected refusals and races;
//! - a rollback keeps what an injected race ([`super::Salesforce::duplicate_once`]) made:
//!   that record stands for another request's insert, which this call cannot undo. Ids a
//!   rolled-back insert took are not handed out again.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::errors::SfError;
use super::fields::{self, SObjectType};
use super::handlers::{Upserted, api_version, upsert_record};
use super::{SObject, SalesforceServer};
use crate::CrmRecord;

/// The most records one call takes.
const MAX_RECORDS: usize = 200;

/// The first API version that has the collections upsert.
const FIRST_VERSION: u32 = 46;

/// A record of the collection, ready to upsert (its external ID value and its other
/// fields), or why it fails on its own.
type Prepared = Result<(String, Map<String, Value>), Vec<SfError>>;

/// `PATCH composite/sobjects/{Opportunity|Task}/{field}`: see the module documentation.
pub(super) async fn upsert(
    State(shared): State<Arc<SalesforceServer>>,
    Path((version, sobject, field)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let sobject = SObjectType::parse(&sobject)
        .filter(|t| matches!(t, SObjectType::Opportunity | SObjectType::Task));
    let version = api_version(&version).filter(|major| *major >= FIRST_VERSION);
    let (Some(_), Some(sobject), true) = (version, sobject, fields::is_custom(&field)) else {
        return SfError::not_found().into_response();
    };
    let (all_or_none, records) = match request(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let mut prepared: Vec<Prepared> = records
        .iter()
        .map(|record| prepare(sobject, &field, record))
        .collect();
    refuse_duplicates(&mut prepared, &field);

    let mut state = shared.lock();
    let before = all_or_none.then(|| (state.opportunities.clone(), state.tasks.clone()));
    let mut outcomes: Vec<Result<(CrmRecord, bool), Vec<SfError>>> = Vec::new();
    let mut raced = Vec::new();
    for record in prepared {
        let outcome = match record {
            Err(errors) => Err(errors),
            Ok((value, body)) => match upsert_record(&mut state, sobject, &field, &value, &body) {
                Upserted::Written(record, created) => Ok((record, created)),
                Upserted::Refused(errors, race) => {
                    raced.extend(race);
                    Err(errors)
                }
            },
        };
        outcomes.push(outcome);
    }
    let failed = outcomes.iter().any(Result::is_err);
    let mut published = raced.clone();
    let results: Vec<Value> = match before {
        Some((opportunities, tasks)) if failed => {
            state.opportunities = opportunities;
            state.tasks = tasks;
            if let Some(records) = state.records_mut(sobject) {
                records.extend(raced.into_iter().map(|record| SObject {
                    id: record.id,
                    fields: record.properties,
                    created: true,
                }));
            }
            outcomes
                .iter()
                .map(|outcome| match outcome {
                    Ok(_) => failure(&[SfError::rolled_back()]),
                    Err(errors) => failure(errors),
                })
                .collect()
        }
        _ => outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Ok((record, created)) => {
                    let id = record.id.clone();
                    published.push(record);
                    json!({ "id": id, "success": true, "errors": [], "created": created })
                }
                Err(errors) => failure(&errors),
            })
            .collect(),
    };
    drop(state);
    if sobject == SObjectType::Opportunity {
        for record in published {
            shared.publish(record);
        }
    }
    Json(Value::Array(results)).into_response()
}

/// `allOrNone` and `records`, or the 400 a malformed request gets.
fn request(body: &[u8]) -> Result<(bool, Vec<Value>), SfError> {
    let body = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(body)) => body,
        Ok(other) => {
            return Err(SfError::json_parser(format!(
                "Cannot deserialize instance of SObjectCollection from {other}"
            )));
        }
        Err(err) => return Err(SfError::json_parser(err.to_string())),
    };
    let all_or_none = match body.get("allOrNone") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => return Err(SfError::cannot_deserialize("boolean", other)),
    };
    let records = match body.get("records") {
        Some(Value::Array(records)) => records.clone(),
        Some(other) => return Err(SfError::cannot_deserialize("records", other)),
        None => {
            return Err(SfError::json_parser(
                "The request body needs `records`: the list of sObjects to upsert",
            ));
        }
    };
    if records.len() > MAX_RECORDS {
        return Err(SfError::exceeded_id_limit());
    }
    Ok((all_or_none, records))
}

/// Checks what the collection adds to a single upsert's body: the record's type, and its
/// external ID value, which the single upsert takes from the URL.
fn prepare(sobject: SObjectType, field: &str, record: &Value) -> Prepared {
    let Value::Object(record) = record else {
        return Err(vec![SfError::cannot_deserialize(sobject.name(), record)]);
    };
    let declared = record
        .get("attributes")
        .and_then(|attributes| attributes.get("type"))
        .and_then(Value::as_str);
    match declared {
        None => {
            return Err(vec![SfError::invalid_type(
                "Must send a concrete entity type.",
            )]);
        }
        Some(declared) if !declared.eq_ignore_ascii_case(sobject.name()) => {
            return Err(vec![SfError::invalid_type(format!(
                "The records of this call must all be of type {}: found {declared}",
                sobject.name()
            ))]);
        }
        Some(_) => {}
    }
    let mut body = Map::new();
    let mut value = None;
    for (name, field_value) in record {
        if name.eq_ignore_ascii_case(field) {
            value = Some(field_value);
        } else {
            body.insert(name.clone(), field_value.clone());
        }
    }
    let value = match value {
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(vec![SfError::missing_argument(field)]);
        }
        Some(other) => return Err(vec![SfError::cannot_deserialize(field, other)]),
    };
    Ok((value, body))
}

/// Every record whose external ID value another record of the call has fails.
fn refuse_duplicates(prepared: &mut [Prepared], field: &str) {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (value, _) in prepared.iter().flatten() {
        *seen.entry(value.clone()).or_default() += 1;
    }
    for record in prepared.iter_mut() {
        let duplicate = match record {
            Ok((value, _)) if seen.get(value.as_str()).is_some_and(|n| *n > 1) => {
                Some(value.clone())
            }
            _ => None,
        };
        if let Some(value) = duplicate {
            *record = Err(vec![SfError::duplicate_external_id(field, &value)]);
        }
    }
}

/// A failed record's UpsertResult.
fn failure(errors: &[SfError]) -> Value {
    let errors: Vec<Value> = errors.iter().map(SfError::result_entry).collect();
    json!({ "success": false, "errors": errors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_need_their_type_and_external_id() {
        let field = "Radar_Opportunity_Id__c";
        let ok = json!({
            "attributes": { "type": "Opportunity" },
            "radar_opportunity_id__c": 42,
            "Name": "Acme",
        });
        let (value, body) = prepare(SObjectType::Opportunity, field, &ok).unwrap();
        assert_eq!(value, "42");
        assert!(body.contains_key("Name") && body.contains_key("attributes"));
        assert!(!body.contains_key("radar_opportunity_id__c"));

        let code = |record: Value| {
            let errors = prepare(SObjectType::Opportunity, field, &record).unwrap_err();
            errors[0].result_entry()["statusCode"].clone()
        };
        assert_eq!(code(json!({ field: "opp-1" })), "INVALID_TYPE");
        assert_eq!(
            code(json!({ "attributes": { "type": "Task" }, field: "opp-1" })),
            "INVALID_TYPE"
        );
        assert_eq!(
            code(json!({ "attributes": { "type": "Opportunity" } })),
            "MISSING_ARGUMENT"
        );
        assert_eq!(
            code(json!({ "attributes": { "type": "Opportunity" }, field: "" })),
            "MISSING_ARGUMENT"
        );
        assert_eq!(code(json!("opp-1")), "JSON_PARSER_ERROR");
    }

    #[test]
    fn duplicate_values_fail_every_record_holding_them() {
        let mut prepared: Vec<Prepared> = ["a", "b", "a"]
            .into_iter()
            .map(|value| Ok((value.to_owned(), Map::new())))
            .collect();
        refuse_duplicates(&mut prepared, "X__c");
        let ok: Vec<bool> = prepared.iter().map(Result::is_ok).collect();
        assert_eq!(ok, vec![false, true, false]);
    }

    #[test]
    fn malformed_requests_are_refused_whole() {
        assert!(request(b"[]").is_err());
        assert!(request(b"{\"allOrNone\": \"yes\", \"records\": []}").is_err());
        assert!(request(b"{}").is_err());
        assert_eq!(request(b"{\"records\": []}").unwrap(), (false, Vec::new()));
    }
}
