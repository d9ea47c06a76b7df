//! The stand-ins over real HTTP, as a client sees them: each test starts its own server on
//! a free loopback port.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use radar_standin::hubspot::{HubSpot, RateLimit};
use radar_standin::salesforce::{DEFAULT_USER, Salesforce};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::send;

const TOKEN: &str = "pat-test-token";

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

// ---------------------------------------------------------------------------------------
// HubSpot

async fn hubspot() -> HubSpot {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.add_owner("1001");
    hubspot
}

fn deal_input(id: &str, trace: Option<&str>, amount: &str) -> Value {
    let mut input = json!({
        "idProperty": "radar_opportunity_id",
        "id": id,
        "properties": {
            "dealname": format!("Expansion {id}"),
            "amount": amount,
            "closedate": "2026-03-31",
            "pipeline": "default",
            "dealstage": "qualifiedtobuy",
            "hubspot_owner_id": "1001",
            "radar_score": 0.87,
        },
    });
    if let Some(trace) = trace {
        input["objectWriteTraceId"] = trace.into();
    }
    input
}

async fn upsert(hubspot: &HubSpot, inputs: Vec<Value>) -> (StatusCode, Value) {
    send(
        client()
            .post(format!(
                "{}/crm/v3/objects/deals/batch/upsert",
                hubspot.url()
            ))
            .bearer_auth(TOKEN)
            .json(&json!({ "inputs": inputs })),
    )
    .await
}

#[tokio::test]
async fn hubspot_upsert_twice_updates_one_deal() {
    let hubspot = hubspot().await;
    let mut deals = hubspot.subscribe();

    let (status, body) = upsert(&hubspot, vec![deal_input("opp-1", Some("t1"), "1000")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    let first = &body["results"][0];
    assert_eq!(first["new"], true);
    assert_eq!(first["objectWriteTraceId"], "t1");
    assert_eq!(first["properties"]["amount"], "1000");
    assert_eq!(first["properties"]["radar_opportunity_id"], "opp-1");

    let (status, body) = upsert(&hubspot, vec![deal_input("opp-1", Some("t2"), "2500")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["new"], false);
    assert_eq!(body["results"][0]["id"], first["id"]);

    let stored = hubspot.deals();
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].created);
    assert_eq!(stored[0].properties["amount"], "2500");
    assert_eq!(stored[0].properties["dealname"], "Expansion opp-1");

    let created = deals.recv().await.unwrap();
    let updated = deals.recv().await.unwrap();
    assert!(created.created && !updated.created);
    assert_eq!(created.id, updated.id);
}

#[tokio::test]
async fn hubspot_company_lookup_by_unique_property() {
    let hubspot = hubspot().await;
    let id = hubspot.add_company("radar_account_id", "acme", Some("1001"));
    hubspot.add_company("domain", "acme.example", None);
    let base = format!("{}/crm/v3/objects/companies", hubspot.url());

    let (status, body) = send(
        client()
            .get(format!(
                "{base}/acme?idProperty=radar_account_id&properties=hubspot_owner_id,name"
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["properties"]["hubspot_owner_id"], "1001");
    assert_eq!(body["properties"]["name"], Value::Null);
    assert_eq!(body["properties"]["hs_object_id"], id.as_str());
    assert_eq!(body["archived"], false);

    let (status, body) = send(client().get(format!("{base}/{id}")).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = send(
        client()
            .get(format!("{base}/globex?idProperty=radar_account_id"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["category"], "OBJECT_NOT_FOUND");
    assert_eq!(body["status"], "error");
    assert!(body["correlationId"].is_string());

    // `domain` is not a unique property: HubSpot looks nothing up by it.
    let (status, body) = send(
        client()
            .get(format!("{base}/acme.example?idProperty=domain"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn hubspot_rate_limit_answers_429_with_the_policy() {
    let hubspot = hubspot().await;
    hubspot.rate_limit_next(1, RateLimit::TenSecondly, Some(3));

    let response = client()
        .post(format!(
            "{}/crm/v3/objects/deals/batch/upsert",
            hubspot.url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({ "inputs": [deal_input("opp-1", None, "1")] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(
        body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert!(hubspot.deals().is_empty());

    let (status, _) = upsert(&hubspot, vec![deal_input("opp-1", None, "1")]).await;
    assert_eq!(status, StatusCode::OK);

    hubspot.rate_limit_next(1, RateLimit::Daily, None);
    let response = client()
        .get(format!("{}/crm/v3/objects/deals/7000001", hubspot.url()))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["policyName"], "DAILY");

    let statuses: Vec<u16> = hubspot.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 200, 429]);
}

#[tokio::test]
async fn hubspot_rolling_ten_second_limit_is_enforced_and_reported() {
    let hubspot = hubspot().await;
    hubspot.set_ten_second_limit(Some(2));
    let url = format!("{}/crm/v3/objects/companies/1", hubspot.url());
    let mut seen = Vec::new();
    for _ in 0..3 {
        let response = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
        seen.push((
            response.status().as_u16(),
            response.headers()["x-hubspot-ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_owned(),
        ));
        assert_eq!(response.headers()["x-hubspot-ratelimit-max"], "2");
    }
    assert_eq!(
        seen,
        vec![
            (404, "1".to_owned()),
            (404, "0".to_owned()),
            (429, "0".to_owned())
        ]
    );
}

#[tokio::test]
async fn hubspot_expired_or_missing_token_is_401() {
    let hubspot = hubspot().await;
    let url = format!("{}/crm/v3/objects/companies/1", hubspot.url());

    let (status, body) = send(client().get(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");

    let (status, body) = send(client().get(&url).bearer_auth("someone-else")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");

    hubspot.expire_token();
    let (status, body) = upsert(&hubspot, vec![deal_input("opp-1", None, "1")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    assert_eq!(body["status"], "error");
    assert!(hubspot.deals().is_empty());
}

#[tokio::test]
async fn hubspot_batch_partial_failure_is_207() {
    let hubspot = hubspot().await;
    hubspot.fail_input_once("opp-b");

    let inputs = vec![
        deal_input("opp-a", Some("trace-a"), "1"),
        deal_input("opp-b", Some("trace-b"), "2"),
    ];
    let (status, body) = upsert(&hubspot, inputs.clone()).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(body["results"].as_array().unwrap().len(), 1);
    assert_eq!(body["results"][0]["objectWriteTraceId"], "trace-a");
    let error = &body["errors"][0];
    assert_eq!(error["status"], "error");
    assert_eq!(error["category"], "VALIDATION_ERROR");
    assert_eq!(error["context"]["objectWriteTraceId"], json!(["trace-b"]));
    assert_eq!(hubspot.deals().len(), 1);

    // The failure was once: the retry lands.
    let (status, body) = upsert(&hubspot, inputs).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(hubspot.deals().len(), 2);
}

#[tokio::test]
async fn hubspot_without_trace_ids_a_bad_input_fails_the_whole_batch() {
    let hubspot = hubspot().await;
    let mut bad = deal_input("opp-b", None, "2");
    bad["properties"]["colour"] = "red".into();
    bad["properties"]["dealstage"] = "Qualified To Buy".into();

    let (status, body) = upsert(&hubspot, vec![deal_input("opp-a", None, "1"), bad]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with("Property values were not valid"),
        "{message}"
    );
    assert!(message.contains("PROPERTY_DOESNT_EXIST"), "{message}");
    assert!(message.contains("INVALID_OPTION"), "{message}");
    assert!(hubspot.deals().is_empty());
}

#[tokio::test]
async fn hubspot_batch_shape_is_checked() {
    let hubspot = hubspot().await;

    let too_many = (0..101)
        .map(|i| deal_input(&format!("opp-{i}"), None, "1"))
        .collect();
    let (status, body) = upsert(&hubspot, too_many).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["category"], "VALIDATION_ERROR");

    let twice = vec![
        deal_input("opp-1", None, "1"),
        deal_input("opp-1", None, "2"),
    ];
    let (status, _) = upsert(&hubspot, twice).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut by_name = deal_input("opp-1", None, "1");
    by_name["idProperty"] = "dealname".into();
    let (status, _) = upsert(&hubspot, vec![by_name]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let mut unknown_owner = deal_input("opp-1", None, "1");
    unknown_owner["properties"]["hubspot_owner_id"] = "999".into();
    let (status, body) = upsert(&hubspot, vec![unknown_owner]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("INVALID_OWNER_ID")
    );
    assert!(hubspot.deals().is_empty());
}

#[tokio::test]
async fn hubspot_default_associations_are_idempotent() {
    let hubspot = hubspot().await;
    let company = hubspot.add_company("radar_account_id", "acme", None);
    let (_, body) = upsert(&hubspot, vec![deal_input("opp-1", None, "1")]).await;
    let deal = body["results"][0]["id"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/crm/v4/associations/deals/companies/batch/associate/default",
        hubspot.url()
    );
    let inputs = json!({ "inputs": [{ "from": { "id": deal }, "to": { "id": company } }] });

    for _ in 0..2 {
        let (status, body) = send(client().post(&url).bearer_auth(TOKEN).json(&inputs)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let spec = &body["results"][0]["associationSpec"];
        assert_eq!(spec["associationCategory"], "HUBSPOT_DEFINED");
        assert_eq!(spec["associationTypeId"], 341);
    }
    assert_eq!(hubspot.associated_companies(&deal), vec![company.clone()]);

    let unknown = json!({ "inputs": [
        { "from": { "id": deal }, "to": { "id": company } },
        { "from": { "id": deal }, "to": { "id": "9999999" } },
    ] });
    let (status, body) = send(client().post(&url).bearer_auth(TOKEN).json(&unknown)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["numErrors"], 1);
    assert_eq!(hubspot.associated_companies(&deal), vec![company]);
}

#[tokio::test]
async fn hubspot_tasks_are_unique_by_opportunity_and_associate_to_companies() {
    let hubspot = hubspot().await;
    let company = hubspot.add_company("radar_account_id", "acme", None);
    let url = format!("{}/crm/v3/objects/tasks", hubspot.url());
    let task = |type_id: u64| {
        json!({
            "properties": {
                "hs_timestamp": "2026-03-01T09:00:00Z",
                "hs_task_subject": "Call Acme about seats",
                "hs_task_status": "NOT_STARTED",
                "hs_task_priority": "HIGH",
                "hubspot_owner_id": "1001",
                "radar_opportunity_id": "opp-1",
            },
            "associations": [{
                "to": { "id": company },
                "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id }],
            }],
        })
    };

    // 204 is task → contact in HubSpot's table, not task → company.
    let (status, body) = send(client().post(&url).bearer_auth(TOKEN).json(&task(204))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(hubspot.tasks().is_empty());

    let (status, body) = send(client().post(&url).bearer_auth(TOKEN).json(&task(192))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(hubspot.associated_companies(&id), vec![company.clone()]);

    let (status, body) = send(client().post(&url).bearer_auth(TOKEN).json(&task(192))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["category"], "CONFLICT");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&format!("Existing ID: {id}"))
    );
    assert_eq!(hubspot.tasks().len(), 1);

    let mut undated = task(192);
    undated["properties"]
        .as_object_mut()
        .unwrap()
        .remove("hs_timestamp");
    undated["properties"]["radar_opportunity_id"] = "opp-2".into();
    let (status, _) = send(client().post(&url).bearer_auth(TOKEN).json(&undated)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

// ---------------------------------------------------------------------------------------
// Salesforce

fn opportunity_url(salesforce: &Salesforce, version: &str, value: &str) -> String {
    format!(
        "{}/services/data/{version}/sobjects/Opportunity/Radar_Opportunity_Id__c/{value}",
        salesforce.url()
    )
}

fn opportunity(account: &str) -> Value {
    json!({
        "Name": "Acme expansion",
        "StageName": "Qualification",
        "CloseDate": "2026-03-31",
        "Amount": 12000,
        "AccountId": account,
        "Radar_Score__c": 0.87,
    })
}

#[tokio::test]
async fn salesforce_upsert_creates_then_updates() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let mut opportunities = salesforce.subscribe();
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let url = opportunity_url(&salesforce, "v62.0", "opp-1");

    let (status, body) = send(
        client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .json(&opportunity(&account)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(body["success"], true);
    assert_eq!(body["errors"], json!([]));
    let id = body["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("006") && id.len() == 18, "{id}");

    let (status, body) = send(
        client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .json(&json!({ "StageName": "Negotiation/Review", "Amount": "15000" })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["id"], id.as_str());

    let stored = salesforce.opportunities();
    assert_eq!(stored.len(), 1);
    let fields = &stored[0].properties;
    assert_eq!(fields["Id"], id.as_str());
    assert_eq!(fields["Radar_Opportunity_Id__c"], "opp-1");
    assert_eq!(fields["StageName"], "Negotiation/Review");
    assert_eq!(fields["Amount"], 15000.0);
    assert_eq!(fields["AccountId"], account.as_str());
    assert_eq!(fields["OwnerId"], DEFAULT_USER);
    assert!(!stored[0].created);

    assert!(opportunities.recv().await.unwrap().created);
    assert!(!opportunities.recv().await.unwrap().created);

    // Before API version 46.0 an update answers 204 with no body.
    let (status, body) = send(
        client()
            .patch(opportunity_url(&salesforce, "v45.0", "opp-1"))
            .bearer_auth(TOKEN)
            .json(&json!({ "NextStep": "Call" })),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, Value::Null);
}

#[tokio::test]
async fn salesforce_account_by_external_id() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    salesforce.add_user("005000000000002");
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", Some("005000000000002AAA"));
    let base = format!(
        "{}/services/data/v62.0/sobjects/Account/Radar_Account_Id__c",
        salesforce.url()
    );

    let (status, body) = send(
        client()
            .get(format!("{base}/acme?fields=Id,OwnerId"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["Id"], account.as_str());
    assert_eq!(body["OwnerId"], "005000000000002AAA");
    assert_eq!(body["attributes"]["type"], "Account");
    assert!(body.get("Radar_Account_Id__c").is_none());

    let (status, body) = send(client().get(format!("{base}/globex")).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!([{ "errorCode": "NOT_FOUND", "message": "The requested resource does not exist" }])
    );
}

#[tokio::test]
async fn salesforce_request_limit_and_expired_session() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let url = format!(
        "{}/services/data/v62.0/sobjects/Account/Radar_Account_Id__c/acme",
        salesforce.url()
    );
    salesforce.rate_limit_next(1);

    let (status, body) = send(client().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body[0]["errorCode"], "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(body[0]["message"], "TotalRequests Limit exceeded.");

    let response = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["sforce-limit-info"], "api-usage=1/15000");

    let (status, body) = send(client().get(&url).bearer_auth("stale")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");

    salesforce.expire_token();
    let (status, body) = send(client().get(&url).bearer_auth(TOKEN)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
    let statuses: Vec<u16> = salesforce.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![403, 404, 401, 401]);
}

#[tokio::test]
async fn salesforce_upsert_refuses_what_salesforce_refuses() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let url = opportunity_url(&salesforce, "v62.0", "opp-1");
    let refused = |body: Value| {
        let request = client().patch(&url).bearer_auth(TOKEN).json(&body);
        async move {
            let (status, body) = send(request).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            (
                body[0]["errorCode"].as_str().unwrap().to_owned(),
                body[0]["message"].as_str().unwrap().to_owned(),
            )
        }
    };

    let mut body = opportunity(&account);
    body["Colour"] = "red".into();
    let (code, message) = refused(body).await;
    assert_eq!(code, "INVALID_FIELD");
    assert_eq!(
        message,
        "No such column 'Colour' on sobject of type Opportunity"
    );

    let (code, message) = refused(json!({ "Name": "Acme" })).await;
    assert_eq!(code, "REQUIRED_FIELD_MISSING");
    assert!(message.contains("StageName") && message.contains("CloseDate"));

    let mut body = opportunity(&account);
    body["Radar_Opportunity_Id__c"] = "opp-1".into();
    assert_eq!(refused(body).await.0, "INVALID_FIELD");

    let mut body = opportunity(&account);
    body["CloseDate"] = "31/03/2026".into();
    assert_eq!(refused(body).await.0, "JSON_PARSER_ERROR");

    assert_eq!(refused(opportunity("acme")).await.0, "MALFORMED_ID");
    assert_eq!(
        refused(opportunity("001000000000099AAA")).await.0,
        "INVALID_CROSS_REFERENCE_KEY"
    );

    let mut body = opportunity(&account);
    body["OwnerId"] = "005000000000077AAA".into();
    assert_eq!(refused(body).await.0, "INVALID_CROSS_REFERENCE_KEY");

    let mut body = opportunity(&account);
    body.as_object_mut().unwrap().remove("AccountId");
    body["Account"] = json!({ "Radar_Account_Id__c": "globex" });
    let (code, message) = refused(body).await;
    assert_eq!(code, "INVALID_FIELD");
    assert_eq!(
        message,
        "Foreign key external ID: globex not found for field Radar_Account_Id__c in entity Account"
    );
    assert!(salesforce.opportunities().is_empty());

    // The same relationship to an Account that exists resolves to its Id.
    let mut body = opportunity(&account);
    body.as_object_mut().unwrap().remove("AccountId");
    body["Account"] = json!({ "Radar_Account_Id__c": "acme" });
    let (status, _) = send(client().patch(&url).bearer_auth(TOKEN).json(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        salesforce.opportunities()[0].properties["AccountId"],
        account.as_str()
    );
}

#[tokio::test]
async fn salesforce_duplicate_value_then_retry_updates() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let url = opportunity_url(&salesforce, "v62.0", "opp-1");
    salesforce.duplicate_once("opp-1");

    let (status, body) = send(
        client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .json(&opportunity(&account)),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body[0]["errorCode"], "DUPLICATE_VALUE");
    assert_eq!(salesforce.opportunities().len(), 1);

    let (status, body) = send(
        client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .json(&opportunity(&account)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(salesforce.opportunities().len(), 1);
}

#[tokio::test]
async fn salesforce_task_upsert_with_a_polymorphic_what() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let url = format!(
        "{}/services/data/v62.0/sobjects/Task/Radar_Opportunity_Id__c/opp-1",
        salesforce.url()
    );
    let task = |what: Value| {
        json!({
            "Subject": "Call Acme about seats",
            "ActivityDate": "2026-03-01",
            "Priority": "High",
            "What": what,
        })
    };

    let (status, body) = send(
        client()
            .patch(&url)
            .bearer_auth(TOKEN)
            .json(&task(json!({ "Radar_Account_Id__c": "acme" }))),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body[0]["errorCode"], "INVALID_FIELD");

    let (status, body) = send(client().patch(&url).bearer_auth(TOKEN).json(&task(
        json!({ "attributes": { "type": "Account" }, "Radar_Account_Id__c": "acme" }),
    )))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tasks = salesforce.tasks();
    assert_eq!(tasks.len(), 1);
    assert!(tasks[0].id.starts_with("00T"));
    assert_eq!(tasks[0].properties["WhatId"], account.as_str());
    assert_eq!(tasks[0].properties["Status"], "Not Started");
    assert_eq!(tasks[0].properties["Priority"], "High");
}
