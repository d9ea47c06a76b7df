//! HubSpot's companies batch read: the companies of up to 100 accounts in one call,
//! found by the unique property holding the account id
//! (`POST /crm/v3/objects/companies/batch/read` with `idProperty`). A 207 answer carries
//! the companies found beside an error naming the ids it did not find; they are kept.

use std::collections::HashMap;

use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::json;

use super::{Object, json_request, url};
use crate::crm::Company;
use crate::crm::config::CrmSettings;
use crate::error::{AnswerError, RequestError};
use crate::payload::HttpRequest;

/// Inputs per batch read at most.
pub const READ_MAX: usize = 100;

/// The batch read of the companies whose `company_field` holds one of `accounts`, with
/// their owners.
pub fn read_companies(
    base: &Url,
    token: &SecretString,
    settings: &CrmSettings,
    accounts: &[&str],
) -> Result<HttpRequest, RequestError> {
    let inputs: Vec<_> = accounts.iter().map(|id| json!({"id": id})).collect();
    let body = json!({
        "idProperty": settings.company_field,
        "inputs": inputs,
        "properties": ["hubspot_owner_id", settings.company_field],
    });
    Ok(json_request(
        Method::POST,
        url(
            base,
            &["crm", "v3", "objects", "companies", "batch", "read"],
        )?,
        token,
        &body,
    ))
}

#[derive(Deserialize)]
struct ReadAnswer {
    #[serde(default)]
    results: Vec<Object>,
}

/// The companies a 200 or 207 answer found, by the account id they hold.
pub fn parse_read(
    settings: &CrmSettings,
    body: &[u8],
) -> Result<HashMap<String, Company>, AnswerError> {
    let answer: ReadAnswer = serde_json::from_slice(body).map_err(|source| AnswerError {
        what: "HubSpot's batch read answer is not a list of companies",
        source,
    })?;
    Ok(answer
        .results
        .into_iter()
        .filter_map(|object| {
            let account = object
                .properties
                .get(&settings.company_field)
                .cloned()
                .flatten()?;
            Some((account, object.company()))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crm::config::{RawCrm, Vendor, build};

    #[test]
    fn a_partial_answer_keeps_the_companies_it_found() {
        let settings = build(Vendor::HubSpot, &RawCrm::default(), &mut |_, _| {});
        let body = br#"{"status":"COMPLETE","results":[
            {"id":"101","properties":{"radar_account_id":"acme","hubspot_owner_id":"77","hs_object_id":"101"}},
            {"id":"102","properties":{"radar_account_id":"globex","hubspot_owner_id":null}}],
            "numErrors":1,"errors":[{"status":"error","category":"OBJECT_NOT_FOUND",
            "message":"Could not get some COMPANY objects","context":{"ids":["initech"]}}]}"#;
        let found = parse_read(&settings, body).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            found["acme"],
            Company {
                id: "101".into(),
                owner: Some("77".into())
            }
        );
        assert_eq!(found["globex"].owner, None);
        assert!(!found.contains_key("initech"));
        let base = Url::parse("https://api.hubapi.com").unwrap();
        let request = read_companies(
            &base,
            &"t".to_owned().into(),
            &settings,
            &["acme", "globex"],
        )
        .unwrap();
        assert_eq!(
            request.url.as_str(),
            "https://api.hubapi.com/crm/v3/objects/companies/batch/read"
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["idProperty"], "radar_account_id");
        assert_eq!(body["inputs"][1]["id"], "globex");
    }
}
