//! HubSpot CRM v3/v4, pure: the requests Radar sends and what their answers mean.
//!
//! A deal is upserted by the unique deal property holding the opportunity id
//! (`POST /crm/v3/objects/deals/batch/upsert`, up to 100 a call), then associated with
//! its company (`POST /crm/v4/associations/deals/companies/batch/associate/default`).
//! The company is the one whose unique property (`company_field`) holds the account id,
//! read up to 100 accounts at a time (`batch_read`). A task is created on the
//! company with the opportunity id in a unique task property, so a repeat gets 409.

use std::collections::HashMap;
use std::time::Duration;

use radar_core::Opportunity;
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::config::CrmSettings;
use super::{Company, close_date};
use crate::error::{AnswerError, RequestError};
use crate::http::Answer;
use crate::payload::{HttpRequest, bearer, number, priority, summary, title};
use crate::retry::AttemptResult;

mod batch_read;

pub use batch_read::{READ_MAX, parse_read, read_companies};

/// HubSpot's association type id for task → company.
pub const TASK_TO_COMPANY: u32 = 192;

fn url(base: &Url, segments: &[&str]) -> Result<Url, RequestError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| RequestError::UrlCannotTakePath("HubSpot"))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

fn json_request(method: Method, url: Url, token: &SecretString, body: &Value) -> HttpRequest {
    HttpRequest {
        method,
        url,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            bearer(token),
        ],
        body: body.to_string().into_bytes(),
    }
}

/// `POST /crm/v3/objects/companies`: a company named for the account, with the account id
/// in its unique property (with `create_missing_company`).
pub fn create_company(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    account_id: &str,
) -> Result<HttpRequest, RequestError> {
    let body = json!({"properties": {
        "name": account_id,
        (settings.company_field.as_str()): account_id,
    }});
    Ok(json_request(
        Method::POST,
        url(base, &["crm", "v3", "objects", "companies"])?,
        token,
        &body,
    ))
}

#[derive(Deserialize)]
struct Object {
    id: String,
    #[serde(default)]
    properties: HashMap<String, Option<String>>,
    /// Echoed from the input in batch answers: the opportunity id.
    #[serde(default, rename = "objectWriteTraceId")]
    trace: Option<String>,
}

/// The company in a found or created company's answer.
pub fn parse_company(body: &[u8]) -> Result<Company, AnswerError> {
    let object: Object = serde_json::from_slice(body).map_err(|source| AnswerError {
        what: "HubSpot's company answer is not a company",
        source,
    })?;
    Ok(object.company())
}

impl Object {
    /// The company this object is, with its owner when it has one.
    fn company(self) -> Company {
        let owner = self
            .properties
            .get("hubspot_owner_id")
            .cloned()
            .flatten()
            .filter(|id| !id.is_empty());
        Company { id: self.id, owner }
    }
}

/// One input of a deal batch upsert.
pub fn deal_input(
    settings: &CrmSettings,
    opportunity: &Opportunity,
    owner: Option<&str>,
) -> Result<Value, RequestError> {
    let id = opportunity.opportunity_id.as_str();
    let mut properties = Map::new();
    let mut put = |name: &str, value: String| {
        properties.insert(name.to_owned(), Value::String(value));
    };
    put("dealname", title(opportunity));
    put("pipeline", settings.pipeline.clone());
    put("dealstage", settings.stage.clone());
    put("closedate", close_date(opportunity, settings.close_in)?);
    put("description", summary(opportunity));
    put(&settings.id_field, id.to_owned());
    put("radar_tier", opportunity.tier.as_str().to_owned());
    put("radar_score", number(opportunity.score));
    put(
        "radar_expansion_score",
        number(opportunity.expansion_score.value),
    );
    if let Some(arr) = opportunity.expansion_score.estimated_arr {
        put("amount", number(arr));
    }
    if let Some(owner) = owner {
        put("hubspot_owner_id", owner.to_owned());
    }
    Ok(json!({
        "idProperty": settings.id_field,
        "id": id,
        "objectWriteTraceId": id,
        "properties": properties,
    }))
}

/// `POST /crm/v3/objects/deals/batch/upsert` with `inputs` from [`deal_input`].
pub fn upsert_deals(
    base: &Url,
    token: &SecretString,
    inputs: Vec<Value>,
) -> Result<HttpRequest, RequestError> {
    Ok(json_request(
        Method::POST,
        url(base, &["crm", "v3", "objects", "deals", "batch", "upsert"])?,
        token,
        &json!({ "inputs": inputs }),
    ))
}

/// `POST /crm/v4/associations/deals/companies/batch/associate/default` for (deal id,
/// company id) pairs.
pub fn associate_deals(
    base: &Url,
    token: &SecretString,
    pairs: &[(String, String)],
) -> Result<HttpRequest, RequestError> {
    let inputs: Vec<Value> = pairs
        .iter()
        .map(|(deal, company)| json!({"from": {"id": deal}, "to": {"id": company}}))
        .collect();
    Ok(json_request(
        Method::POST,
        url(
            base,
            &[
                "crm",
                "v4",
                "associations",
                "deals",
                "companies",
                "batch",
                "associate",
                "default",
            ],
        )?,
        token,
        &json!({ "inputs": inputs }),
    ))
}

/// `POST /crm/v3/objects/tasks`: a to-do on the company, keyed by the opportunity id.
pub fn create_task(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    opportunity: &Opportunity,
    company: &Company,
    owner: Option<&str>,
) -> Result<HttpRequest, RequestError> {
    let mut properties = json!({
        "hs_timestamp": opportunity.occurred_at.as_str(),
        "hs_task_subject": title(opportunity),
        "hs_task_body": summary(opportunity),
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": priority(opportunity.tier).0,
        "hs_task_type": "TODO",
        (settings.id_field.as_str()): opportunity.opportunity_id.as_str(),
    });
    if let Some(owner) = owner {
        properties["hubspot_owner_id"] = Value::String(owner.to_owned());
    }
    let body = json!({
        "properties": properties,
        "associations": [{
            "to": {"id": company.id},
            "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_COMPANY}],
        }],
    });
    Ok(json_request(
        Method::POST,
        url(base, &["crm", "v3", "objects", "tasks"])?,
        token,
        &body,
    ))
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: String,
    #[serde(default, rename = "policyName")]
    policy_name: String,
}

fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

/// Whether HubSpot refused the token (401: expired or revoked), and what it said: the
/// destination's credentials decide what follows (a renewal, or degraded until they
/// work), not the delivery's retries. A 403 is not the token: the app lacks a scope for
/// that call, which a renewal cannot give (see [`failure`]).
pub fn refused_credentials(answer: &Answer) -> Option<String> {
    if answer.status != 401 {
        return None;
    }
    let body = error_body(&answer.body);
    Some(format!(
        "HubSpot answered {} {}: {}",
        answer.status, body.category, body.message
    ))
}

/// What a HubSpot answer that is not a success means. A refused token (see
/// [`refused_credentials`]) defers the delivery. A 403 (a scope missing for that call) is
/// retried on the schedule, so a person has a day and a half to grant it before the
/// deliveries are dead letters. A 429 pauses the destination for as long as its policy says when there is no
/// `Retry-After`: ten seconds for the rolling limit, an hour (at most the configured cap)
/// for the daily one.
pub fn failure(answer: &Answer) -> AttemptResult {
    if let Some(reason) = refused_credentials(answer) {
        return AttemptResult::Deferred(reason);
    }
    let body = error_body(&answer.body);
    match answer.status {
        403 => AttemptResult::Transient {
            label: "crm_forbidden",
            reason: format!(
                "HubSpot answered 403 {}: {}; the app needs the scope for this call",
                body.category, body.message
            ),
        },
        429 => AttemptResult::Response {
            status: 429,
            retry_after: answer.retry_after.or(Some(match body.policy_name.as_str() {
                "DAILY" => Duration::from_secs(3_600),
                "SECONDLY" => Duration::from_secs(1),
                _ => Duration::from_secs(10),
            })),
        },
        400 | 404 | 409 | 422 => AttemptResult::Rejected {
            label: "crm_refused",
            reason: format!(
                "HubSpot answered {} {}: {}",
                answer.status, body.category, body.message
            ),
        },
        _ => answer.result(),
    }
}

/// What a batch upsert's answer (200 or 207) says about each input.
#[derive(Debug, Default, PartialEq)]
pub struct Upserted {
    /// Deal id by opportunity id.
    pub deals: HashMap<String, String>,
    /// The refusal of each input HubSpot named in an error, by opportunity id.
    pub refused: HashMap<String, String>,
    /// Errors that named no input.
    pub unattributed: Vec<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    #[serde(default)]
    results: Vec<Object>,
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Deserialize)]
struct BatchError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    context: HashMap<String, Value>,
}

/// Reads a batch upsert's answer. Results name their input by the `objectWriteTraceId`
/// sent with it (the opportunity id), else by the id property; errors by the values in
/// their context (HubSpot puts the failed inputs' trace ids there, and answers 207 only
/// when every input carries one — otherwise one bad input fails the whole batch).
pub fn parse_upsert(
    settings: &CrmSettings,
    sent: &[&str],
    body: &[u8],
) -> Result<Upserted, AnswerError> {
    let answer: BatchAnswer = serde_json::from_slice(body).map_err(|source| AnswerError {
        what: "HubSpot's batch answer does not decode",
        source,
    })?;
    let mut upserted = Upserted::default();
    for result in answer.results {
        let named = result
            .trace
            .clone()
            .or_else(|| result.properties.get(&settings.id_field).cloned().flatten());
        if let Some(id) = named {
            upserted.deals.insert(id, result.id);
        }
    }
    for error in answer.errors {
        let text = format!("{}: {}", error.category, error.message);
        let named: Vec<&str> = sent
            .iter()
            .copied()
            .filter(|id| error.context.values().any(|v| mentions(v, id)))
            .collect();
        for id in &named {
            upserted.refused.insert((*id).to_owned(), text.clone());
        }
        if named.is_empty() {
            upserted.unattributed.push(text);
        }
    }
    Ok(upserted)
}

fn mentions(value: &Value, id: &str) -> bool {
    match value {
        Value::String(s) => s == id,
        Value::Array(items) => items.iter().any(|v| mentions(v, id)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::config::{RawCrm, Vendor, build};
    use crate::payload::tests::opportunity;

    fn settings() -> CrmSettings {
        build(Vendor::HubSpot, &RawCrm::default(), &mut |_, _| {})
    }

    #[test]
    fn a_created_company_is_read_with_its_owner() {
        let company = parse_company(
            br#"{"id":"9001","properties":{"hubspot_owner_id":"77","hs_object_id":"9001"}}"#,
        )
        .unwrap();
        assert_eq!(
            company,
            Company {
                id: "9001".into(),
                owner: Some("77".into())
            }
        );
        let unowned =
            parse_company(br#"{"id":"9002","properties":{"hubspot_owner_id":null}}"#).unwrap();
        assert_eq!(unowned.owner, None);
    }

    #[test]
    fn a_deal_carries_amount_close_date_stage_scores_reasons_and_owner() {
        let input = deal_input(&settings(), &opportunity(), Some("77")).unwrap();
        assert_eq!(input["idProperty"], "radar_opportunity_id");
        assert_eq!(input["id"], "a20f7fb67498eb5773731d30d2baf5b3");
        let p = &input["properties"];
        assert_eq!(
            p["dealname"],
            "Expansion: acme — seat_expansion (seat_expansion)"
        );
        assert_eq!(p["amount"], "24000");
        assert_eq!(p["closedate"], "2026-04-16");
        assert_eq!(
            (&p["pipeline"], &p["dealstage"]),
            (&json!("default"), &json!("appointmentscheduled"))
        );
        assert_eq!(p["hubspot_owner_id"], "77");
        assert_eq!(p["radar_tier"], "hot");
        assert_eq!(p["radar_score"], "72.50");
        assert_eq!(p["radar_expansion_score"], "61");
        assert_eq!(
            p["radar_opportunity_id"],
            "a20f7fb67498eb5773731d30d2baf5b3"
        );
        assert!(
            p["description"]
                .as_str()
                .unwrap()
                .contains("seats_used_pct (0.95): +25 pts")
        );
        let mut unpriced = opportunity();
        unpriced.expansion_score.estimated_arr = None;
        let input = deal_input(&settings(), &unpriced, None).unwrap();
        assert!(input["properties"].get("amount").is_none());
        assert!(input["properties"].get("hubspot_owner_id").is_none());
    }

    #[test]
    fn a_partial_batch_names_the_refused_inputs() {
        let body = br#"{"status":"COMPLETE","results":[{"id":"501","properties":{"radar_opportunity_id":"a"}},{"id":"503","objectWriteTraceId":"c","properties":{}}],
            "numErrors":2,"errors":[
              {"status":"error","category":"VALIDATION_ERROR","message":"Property values were not valid","context":{"objectWriteTraceId":["b"]}},
              {"status":"error","category":"VALIDATION_ERROR","message":"something else","context":{}}]}"#;
        let upserted = parse_upsert(&settings(), &["a", "b", "c"], body).unwrap();
        assert_eq!(
            upserted.deals,
            HashMap::from([("a".into(), "501".into()), ("c".into(), "503".into())])
        );
        assert_eq!(
            upserted.refused,
            HashMap::from([(
                "b".into(),
                "VALIDATION_ERROR: Property values were not valid".into()
            )])
        );
        assert_eq!(upserted.unattributed, ["VALIDATION_ERROR: something else"]);
    }

    fn answer(status: u16, retry_after: Option<u64>, body: &str) -> Answer {
        Answer {
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: body.as_bytes().to_vec(),
            headers: Default::default(),
        }
    }

    #[test]
    fn rate_limits_pause_for_their_policy_and_a_bad_token_says_so() {
        let daily = r#"{"status":"error","errorType":"RATE_LIMIT","policyName":"DAILY","message":"You have reached your daily limit."}"#;
        let rolling =
            r#"{"status":"error","errorType":"RATE_LIMIT","policyName":"TEN_SECONDLY_ROLLING"}"#;
        let paused = |a: &Answer| match failure(a) {
            AttemptResult::Response {
                status: 429,
                retry_after,
            } => retry_after,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            paused(&answer(429, None, daily)),
            Some(Duration::from_secs(3_600))
        );
        assert_eq!(
            paused(&answer(429, None, rolling)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            paused(&answer(429, Some(3), rolling)),
            Some(Duration::from_secs(3))
        );
        let expired = failure(&answer(
            401,
            None,
            r#"{"status":"error","message":"The OAuth token used to make this call expired 2 hour(s) ago.","category":"EXPIRED_AUTHENTICATION"}"#,
        ));
        match expired {
            AttemptResult::Deferred(reason) => {
                assert!(reason.contains("EXPIRED_AUTHENTICATION"), "{reason}");
                assert!(reason.contains("expired 2 hour(s) ago"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let forbidden = answer(
            403,
            None,
            r#"{"status":"error","message":"This app hasn't been granted all required scopes","category":"MISSING_SCOPES"}"#,
        );
        assert_eq!(
            refused_credentials(&forbidden),
            None,
            "a renewal cannot add a scope"
        );
        assert_eq!(failure(&forbidden).label(), "crm_forbidden");
        assert_eq!(failure(&answer(502, None, "")).label(), "http_5xx");
        assert_eq!(failure(&answer(400, None, "{}")).label(), "crm_refused");
    }
}
