//! Salesforce REST, pure: the requests Radar sends and what their answers mean.
//!
//! Opportunities are upserted by the external id field holding the opportunity id, up to
//! 200 in one sObject Collections call (`PATCH …/composite/sobjects/Opportunity/{field}`,
//! each record with its own result); a Task one at a time (`PATCH
//! …/sobjects/Task/{field}/{id}`). A repeat updates the same record. It points at its Account through the Account's
//! external id field holding the account id; the Account is read first
//! (`GET …/sobjects/Account/{field}/{account}?fields=Id,OwnerId`) only when the owner is
//! the account's owner. Errors come as `[{"errorCode": …, "message": …}]`.

use radar_core::Opportunity;
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{CrmObject, CrmSettings};
use super::{Company, close_date};
use crate::error::{AnswerError, RequestError};
use crate::http::Answer;
use crate::payload::{HttpRequest, bearer, priority, summary, title};
use crate::retry::AttemptResult;

pub const API: &str = "v62.0";

fn sobject_url(base: &Url, segments: &[&str]) -> Result<Url, RequestError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| RequestError::UrlCannotTakePath("Salesforce"))?
        .pop_if_empty()
        .extend(["services", "data", API, "sobjects"])
        .extend(segments);
    Ok(url)
}

/// `GET …/sobjects/Account/{company_field}/{account}?fields=Id,OwnerId`.
pub fn find_account(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    account_id: &str,
) -> Result<HttpRequest, RequestError> {
    let mut url = sobject_url(base, &["Account", &settings.company_field, account_id])?;
    url.query_pairs_mut().append_pair("fields", "Id,OwnerId");
    Ok(HttpRequest {
        method: Method::GET,
        url,
        headers: vec![bearer(token)],
        body: Vec::new(),
    })
}

#[derive(Deserialize)]
struct Account {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "OwnerId", default)]
    owner_id: Option<String>,
}

pub fn parse_account(body: &[u8]) -> Result<Company, AnswerError> {
    let account: Account = serde_json::from_slice(body).map_err(|source| AnswerError {
        what: "Salesforce's Account answer is not an Account",
        source,
    })?;
    Ok(Company {
        id: account.id,
        owner: account.owner_id.filter(|id| !id.is_empty()),
    })
}

/// The sObject an opportunity becomes, and its fields, owned by `owner` when given
/// (without the external id: the single upsert names it in its URL).
fn fields(
    settings: &CrmSettings,
    opportunity: &Opportunity,
    owner: Option<&str>,
) -> Result<(&'static str, Value), RequestError> {
    let account = json!({
        "attributes": {"type": "Account"},
        (settings.company_field.as_str()): opportunity.account_id.as_str(),
    });
    let (sobject, mut body) = match settings.object {
        CrmObject::Deal => {
            let mut body = json!({
                "Name": title(opportunity),
                "StageName": settings.stage,
                "CloseDate": close_date(opportunity, settings.close_in)?,
                "Type": settings.opportunity_type,
                "Description": summary(opportunity),
                "Account": account,
            });
            if let Some(arr) = opportunity.expansion_score.estimated_arr {
                body["Amount"] = json!(arr);
            }
            ("Opportunity", body)
        }
        CrmObject::Task => {
            let body = json!({
                "Subject": title(opportunity),
                "Description": summary(opportunity),
                "Status": "Not Started",
                "Priority": priority(opportunity.tier).1,
                "ActivityDate": opportunity.occurred_at.get(..10).unwrap_or_default(),
                "What": account,
            });
            ("Task", body)
        }
    };
    if let Some(owner) = owner {
        body["OwnerId"] = Value::String(owner.to_owned());
    }
    Ok((sobject, body))
}

/// The upsert of `opportunity` as the configured object, owned by `owner` when given.
pub fn upsert(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    opportunity: &Opportunity,
    owner: Option<&str>,
) -> Result<HttpRequest, RequestError> {
    let (sobject, body) = fields(settings, opportunity, owner)?;
    Ok(HttpRequest {
        method: Method::PATCH,
        url: sobject_url(
            base,
            &[
                sobject,
                &settings.id_field,
                opportunity.opportunity_id.as_str(),
            ],
        )?,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            bearer(token),
        ],
        body: body.to_string().into_bytes(),
    })
}

/// Records per sObject Collections call at most.
pub const COLLECTION_MAX: usize = 200;

/// One record of an sObject Collections upsert: its fields, its type and its external id.
pub fn record(
    settings: &CrmSettings,
    opportunity: &Opportunity,
    owner: Option<&str>,
) -> Result<Value, RequestError> {
    let (sobject, mut body) = fields(settings, opportunity, owner)?;
    body["attributes"] = json!({"type": sobject});
    body[settings.id_field.as_str()] = json!(opportunity.opportunity_id.as_str());
    Ok(body)
}

/// `PATCH …/composite/sobjects/{sObject}/{id_field}` with `allOrNone = false`: up to
/// [`COLLECTION_MAX`] records upserted by their external id in one call, each with its
/// own result, so one refused record fails alone.
pub fn upsert_collection(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    records: &[Value],
) -> Result<HttpRequest, RequestError> {
    let sobject = match settings.object {
        CrmObject::Deal => "Opportunity",
        CrmObject::Task => "Task",
    };
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| RequestError::UrlCannotTakePath("Salesforce"))?
        .pop_if_empty()
        .extend(["services", "data", API, "composite", "sobjects"])
        .extend([sobject, settings.id_field.as_str()]);
    let body = json!({"allOrNone": false, "records": records});
    Ok(HttpRequest {
        method: Method::PATCH,
        url,
        headers: vec![
            ("content-type", "application/json".to_owned()),
            bearer(token),
        ],
        body: body.to_string().into_bytes(),
    })
}

#[derive(Deserialize)]
struct RecordResult {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<RecordError>,
}

#[derive(Deserialize)]
struct RecordError {
    #[serde(rename = "statusCode", default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Each record's result in a collection's 200 answer, in the order they were sent.
pub fn parse_collection(
    body: &[u8],
    sent: usize,
    id_field: &str,
) -> Result<Vec<AttemptResult>, AnswerError> {
    let results: Vec<RecordResult> =
        serde_json::from_slice(body).map_err(|source| AnswerError {
            what: "Salesforce's collection answer is not a list of results",
            source,
        })?;
    if results.len() != sent {
        return Err(AnswerError {
            what: "Salesforce's collection answer has another number of results than records",
            source: serde::de::Error::custom(format!("{} for {sent}", results.len())),
        });
    }
    Ok(results
        .into_iter()
        .map(|result| match result.errors.into_iter().next() {
            _ if result.success => AttemptResult::Response {
                status: 200,
                retry_after: None,
            },
            Some(error) => by_code(400, &error.code, &error.message, id_field, None),
            None => AttemptResult::Transient {
                label: "crm_bad_answer",
                reason: "Salesforce answered neither success nor an error for this record".into(),
            },
        })
        .collect())
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(rename = "errorCode", default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The first error of a Salesforce error answer (code, message), if it has one.
fn first_error(body: &[u8]) -> Option<(String, String)> {
    let errors: Vec<ApiError> = serde_json::from_slice(body).ok()?;
    errors.into_iter().next().map(|e| (e.code, e.message))
}

/// Whether Salesforce refused the session (401, or `INVALID_SESSION_ID` in any status),
/// and what it said: the destination's credentials decide what follows (a renewal, or
/// degraded until they work), not the delivery's retries.
pub fn refused_credentials(answer: &Answer) -> Option<String> {
    let (code, message) = first_error(&answer.body).unwrap_or_default();
    (answer.status == 401 || code == "INVALID_SESSION_ID")
        .then(|| format!("Salesforce answered {} {code}: {message}", answer.status))
}

/// What a Salesforce answer means for the delivery. An upsert's 200/201/204 is delivered;
/// `DUPLICATE_VALUE` on `id_field` means a concurrent upsert already inserted this
/// opportunity id, so it is there (on another field, nothing was written: a dead
/// letter); an expired session ([`refused_credentials`]) defers the delivery; the org's API request limit pauses the destination for its
/// `Retry-After`, else an hour (at most the configured cap), and a 429 for its
/// `Retry-After`, as HubSpot's does; a locked row is retried, an unavailable server too (and
/// counts against the breaker); an Account that does not exist is `company_not_found`;
/// other refusals are dead letters that say what Salesforce refused.
pub fn classify(answer: &Answer, id_field: &str) -> AttemptResult {
    if (200..300).contains(&answer.status) {
        return answer.result();
    }
    if let Some(reason) = refused_credentials(answer) {
        return AttemptResult::Deferred(reason);
    }
    let (code, message) = first_error(&answer.body).unwrap_or_default();
    by_code(answer.status, &code, &message, id_field, answer.retry_after)
}

/// What Salesforce's error `code` with `message`, in an answer of `status` (400 for a
/// record's error in a collection), means (see [`classify`]).
fn by_code(
    status: u16,
    code: &str,
    message: &str,
    id_field: &str,
    retry_after: Option<std::time::Duration>,
) -> AttemptResult {
    let said = format!("Salesforce answered {status} {code}: {message}");
    let plain = AttemptResult::Response {
        status,
        retry_after,
    };
    match (status, code) {
        (_, "DUPLICATE_VALUE") if message.contains(id_field) => AttemptResult::Response {
            status: 200,
            retry_after: None,
        },
        (_, "REQUEST_LIMIT_EXCEEDED") => AttemptResult::Response {
            status: 429,
            retry_after: retry_after.or(Some(std::time::Duration::from_secs(3_600))),
        },
        // Salesforce documents 403 for its API limit, but a gateway or proxy in front of
        // an org (or a concurrent-request limit) answers 429: a pause, never a refusal.
        (429, _) => plain,
        (_, "UNABLE_TO_LOCK_ROW") => AttemptResult::Transient {
            label: "crm_busy",
            reason: said,
        },
        (_, "SERVER_UNAVAILABLE") => AttemptResult::Response {
            status: 503,
            retry_after: None,
        },
        (_, "INVALID_FIELD") if message.contains("Foreign key external ID") => {
            AttemptResult::Rejected {
                label: "company_not_found",
                reason: said,
            }
        }
        (300 | 400..=499, _) => AttemptResult::Rejected {
            label: "crm_refused",
            reason: said,
        },
        _ => plain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::config::{RawCrm, Vendor, build};
    use crate::payload::tests::opportunity;

    fn settings(object: CrmObject) -> CrmSettings {
        let mut settings = build(Vendor::Salesforce, &RawCrm::default(), &mut |_, _| {});
        settings.object = object;
        settings
    }

    fn base() -> Url {
        "https://acme.my.salesforce.com/".parse().unwrap()
    }

    #[test]
    fn an_opportunity_is_upserted_by_external_id_on_its_account() {
        let token: SecretString = "00D!x".to_owned().into();
        let request = upsert(
            &base(),
            &token,
            &settings(CrmObject::Deal),
            &opportunity(),
            Some("005A"),
        )
        .unwrap();
        assert_eq!(request.method, Method::PATCH);
        assert_eq!(
            request.url.as_str(),
            "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Opportunity/Radar_Opportunity_Id__c/a20f7fb67498eb5773731d30d2baf5b3"
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["Name"],
            "Expansion: acme — seat_expansion (seat_expansion)"
        );
        assert_eq!(body["StageName"], "Prospecting");
        assert_eq!(body["CloseDate"], "2026-04-16");
        assert_eq!(body["Amount"], 24000.0);
        assert_eq!(body["Type"], "Existing Customer - Upgrade");
        assert_eq!(body["OwnerId"], "005A");
        assert_eq!(body["Account"]["Radar_Account_Id__c"], "acme");
        assert!(
            body["Description"]
                .as_str()
                .unwrap()
                .contains("seats_used_pct (0.95): +25 pts")
        );
        assert!(!format!("{request:?}").contains("00D!x"));
    }

    #[test]
    fn a_task_is_upserted_on_the_account() {
        let token: SecretString = "t".to_owned().into();
        let request = upsert(
            &base(),
            &token,
            &settings(CrmObject::Task),
            &opportunity(),
            None,
        )
        .unwrap();
        assert!(
            request.url.path().ends_with(
                "/sobjects/Task/Radar_Opportunity_Id__c/a20f7fb67498eb5773731d30d2baf5b3"
            )
        );
        let body: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["ActivityDate"], "2026-03-02");
        assert_eq!(body["Priority"], "High");
        assert_eq!(body["What"]["Radar_Account_Id__c"], "acme");
        assert!(body.get("OwnerId").is_none());
    }

    #[test]
    fn the_account_is_read_for_its_owner() {
        let token: SecretString = "t".to_owned().into();
        let request = find_account(&base(), &token, &settings(CrmObject::Deal), "acme").unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://acme.my.salesforce.com/services/data/v62.0/sobjects/Account/Radar_Account_Id__c/acme?fields=Id%2COwnerId"
        );
        let account =
            parse_account(br#"{"attributes":{"type":"Account"},"Id":"001A","OwnerId":"005B"}"#)
                .unwrap();
        assert_eq!(account.owner.as_deref(), Some("005B"));
    }

    #[test]
    fn documented_errors_map_to_what_a_user_expects() {
        let answer = |status: u16, code: &str, message: &str| Answer {
            status,
            retry_after: None,
            body: json!([{"errorCode": code, "message": message}])
                .to_string()
                .into_bytes(),
            headers: Default::default(),
        };
        const ID: &str = "Radar_Opportunity_Id__c";
        let label = |a: Answer| classify(&a, ID).label();
        assert_eq!(label(answer(201, "", "")), "success");
        let duplicate = |field: &str| {
            answer(
                400,
                "DUPLICATE_VALUE",
                &format!(
                    "duplicate value found: {field} duplicates value on record with id: 006000000000001AAA"
                ),
            )
        };
        assert_eq!(label(duplicate(ID)), "success");
        assert_eq!(label(duplicate("Other_Key__c")), "crm_refused");
        let expired = answer(401, "INVALID_SESSION_ID", "Session expired or invalid");
        assert!(refused_credentials(&expired).is_some());
        match classify(&expired, ID) {
            AttemptResult::Deferred(reason) => {
                assert!(reason.contains("Session expired or invalid"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(
                &answer(
                    403,
                    "REQUEST_LIMIT_EXCEEDED",
                    "TotalRequests Limit exceeded."
                ),
                ID
            ),
            AttemptResult::Response {
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(3_600))
            }
        );
        // A 429 (a gateway's, say) pauses for its Retry-After whatever the body says.
        let throttled = Answer {
            status: 429,
            retry_after: Some(std::time::Duration::from_secs(7)),
            body: b"<html>Too Many Requests</html>".to_vec(),
            headers: Default::default(),
        };
        assert_eq!(
            classify(&throttled, ID),
            AttemptResult::Response {
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(7))
            }
        );
        // A 404 on the upsert is a wrong object or field, not a missing Account (that one
        // is found missing by the Account lookup, or by the foreign key below).
        let missing = answer(404, "NOT_FOUND", "The requested resource does not exist");
        assert_eq!(label(missing), "crm_refused");
        let foreign = answer(
            400,
            "INVALID_FIELD",
            "Foreign key external ID: acme not found for field Radar_Account_Id__c in entity Account",
        );
        assert_eq!(label(foreign), "company_not_found");
        let column = answer(400, "INVALID_FIELD", "No such column 'Foo' on sobject");
        assert_eq!(label(column), "crm_refused");
        let locked = answer(
            400,
            "UNABLE_TO_LOCK_ROW",
            "unable to obtain exclusive access",
        );
        assert_eq!(label(locked), "crm_busy");
        let down = answer(503, "SERVER_UNAVAILABLE", "Server is unavailable");
        assert_eq!(label(down), "http_5xx");
        assert_eq!(label(answer(503, "", "")), "http_5xx");
    }
}
