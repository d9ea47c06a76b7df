//! HubSpot's batch read and daily limit headers over real HTTP, as a client sees them:
//! each test starts its own stand-in.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use radar_standin::hubspot::HubSpot;
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{answer, header};

const TOKEN: &str = "pat-test-token";

async fn hubspot() -> HubSpot {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.add_owner("1001");
    hubspot
}

async fn batch_read(
    hubspot: &HubSpot,
    object_type: &str,
    body: Value,
) -> (StatusCode, HeaderMap, Value) {
    answer(
        Client::new()
            .post(format!(
                "{}/crm/v3/objects/{object_type}/batch/read",
                hubspot.url()
            ))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await
}

fn by_account(ids: &[&str]) -> Value {
    let inputs: Vec<Value> = ids.iter().map(|id| json!({ "id": id })).collect();
    json!({
        "idProperty": "radar_account_id",
        "inputs": inputs,
        "properties": ["hubspot_owner_id", "radar_account_id"],
    })
}

/// `id` → `properties` of each result, whatever their order.
fn results_by_id(body: &Value) -> Vec<(String, Value)> {
    let mut results: Vec<(String, Value)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["properties"].clone(),
            )
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(&b.0));
    results
}

#[tokio::test]
async fn hubspot_batch_read_by_unique_property() {
    let hubspot = hubspot().await;
    let acme = hubspot.add_company("radar_account_id", "acme", Some("1001"));
    let globex = hubspot.add_company("radar_account_id", "globex", None);

    let (status, _, body) =
        batch_read(&hubspot, "companies", by_account(&["acme", "globex"])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert!(body["startedAt"].is_string() && body["completedAt"].is_string());
    assert!(body.get("errors").is_none() && body.get("numErrors").is_none());
    let results = results_by_id(&body);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].0, acme);
    assert_eq!(results[0].1["hubspot_owner_id"], "1001");
    assert_eq!(results[0].1["radar_account_id"], "acme");
    assert_eq!(results[0].1["hs_object_id"], acme.as_str());
    assert!(results[0].1["createdate"].is_string());
    assert!(results[0].1["hs_lastmodifieddate"].is_string());
    assert_eq!(results[1].0, globex);
    assert_eq!(results[1].1["hubspot_owner_id"], Value::Null);
    let first = &body["results"][0];
    assert_eq!(first["archived"], false);
    assert!(first["createdAt"].is_string() && first["updatedAt"].is_string());

    // Some missing: 207, the found ones, and one error naming every missing id.
    let (status, _, body) = batch_read(
        &hubspot,
        "companies",
        by_account(&["missing-1", "acme", "missing-2"]),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["status"], "COMPLETE");
    assert_eq!(results_by_id(&body).len(), 1);
    assert_eq!(body["results"][0]["id"], acme.as_str());
    assert_eq!(body["numErrors"], 1);
    let error = &body["errors"][0];
    assert_eq!(error["status"], "error");
    assert_eq!(error["category"], "OBJECT_NOT_FOUND");
    assert_eq!(
        error["message"],
        "Could not get some COMPANY objects, they may be deleted or not exist. Check that ids are valid."
    );
    let mut missing: Vec<&str> = error["context"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap())
        .collect();
    missing.sort_unstable();
    assert_eq!(missing, vec!["missing-1", "missing-2"]);

    // None found is 207 too, with no results.
    let (status, _, body) = batch_read(&hubspot, "companies", by_account(&["initech"])).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["results"], json!([]));
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["initech"]));
}

#[tokio::test]
async fn hubspot_batch_read_by_record_id_and_of_deals() {
    let hubspot = hubspot().await;
    let acme = hubspot.add_company("radar_account_id", "acme", None);
    let body = json!({ "inputs": [{ "id": acme }, { "id": 9_999_999 }] });
    let (status, _, body) = batch_read(&hubspot, "companies", body).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["results"][0]["id"], acme.as_str());
    assert_eq!(body["results"][0]["properties"]["radar_account_id"], "acme");
    assert_eq!(body["errors"][0]["context"]["ids"], json!(["9999999"]));

    let (status, _, body) = batch_read(
        &hubspot,
        "deals",
        json!({ "idProperty": "radar_opportunity_id", "inputs": [{ "id": "opp-1" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        body["errors"][0]["message"],
        "Could not get some DEAL objects, they may be deleted or not exist. Check that ids are valid."
    );
}

#[tokio::test]
async fn hubspot_batch_read_shape_is_checked() {
    let hubspot = hubspot().await;
    let ids: Vec<String> = (0..101).map(|i| format!("acct-{i}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (status, _, body) = batch_read(&hubspot, "companies", by_account(&ids)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "error");
    assert_eq!(body["category"], "VALIDATION_ERROR");
    assert!(body["correlationId"].is_string());

    let (status, _, _) = batch_read(&hubspot, "companies", by_account(&ids[..100])).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);

    // Only unique properties identify records, as in the single GET.
    for id_property in ["domain", "no_such_property"] {
        let body = json!({ "idProperty": id_property, "inputs": [{ "id": "acme" }] });
        let (status, _, body) = batch_read(&hubspot, "companies", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["category"], "VALIDATION_ERROR");
    }

    let (status, _, body) = answer(
        Client::new()
            .post(format!(
                "{}/crm/v3/objects/companies/batch/read",
                hubspot.url()
            ))
            .json(&by_account(&["acme"])),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION");
}

#[tokio::test]
async fn hubspot_daily_limit_is_reported_and_enforced() {
    let hubspot = hubspot().await;
    hubspot.add_company("radar_account_id", "acme", None);
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let (status, headers, _) = batch_read(&hubspot, "companies", by_account(&["acme"])).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(header(&headers, "x-hubspot-ratelimit-daily"), "250000");
        remaining.push(header(&headers, "x-hubspot-ratelimit-daily-remaining"));
    }
    assert_eq!(remaining, vec!["249999", "249998", "249997"]);
    assert_eq!(hubspot.daily_usage(), 3);

    // Unauthenticated calls count toward nothing and report no allocation.
    let (status, headers, _) =
        answer(Client::new().get(format!("{}/crm/v3/objects/companies/1", hubspot.url()))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none());

    hubspot.set_daily_usage(999, 1000);
    let (status, headers, _) = batch_read(&hubspot, "companies", by_account(&["acme"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "x-hubspot-ratelimit-daily"), "1000");
    assert_eq!(header(&headers, "x-hubspot-ratelimit-daily-remaining"), "0");

    let (status, headers, body) = batch_read(&hubspot, "companies", by_account(&["acme"])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["policyName"], "DAILY");
    assert_eq!(body["errorType"], "RATE_LIMIT");
    assert_eq!(body["message"], "You have reached your daily limit.");
    assert_eq!(header(&headers, "x-hubspot-ratelimit-daily-remaining"), "0");
    assert_eq!(hubspot.daily_usage(), 1000);

    // Writes are refused as well, and nothing is written.
    let (status, _, _) = answer(
        Client::new()
            .post(format!("{}/crm/v3/objects/companies", hubspot.url()))
            .bearer_auth(TOKEN)
            .json(&json!({ "properties": { "radar_account_id": "globex" } })),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hubspot.companies().len(), 1);

    let statuses: Vec<u16> = hubspot.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 401, 200, 429, 429]);

    hubspot.set_daily_usage(0, 1000);
    let (status, headers, _) = batch_read(&hubspot, "companies", by_account(&["acme"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "x-hubspot-ratelimit-daily-remaining"),
        "999"
    );
}

#[tokio::test]
async fn hubspot_oauth_calls_have_no_daily_limit() {
    use radar_standin::hubspot::OAuthApp;
    let hubspot = hubspot().await;
    hubspot.add_company("radar_account_id", "acme", None);
    hubspot.connect_app(OAuthApp {
        client_id: "client".into(),
        client_secret: "secret".into(),
        refresh_token: "refresh".into(),
        token_lifetime: std::time::Duration::from_secs(600),
        rotate_refresh_tokens: false,
    });
    let (status, _, body) = answer(
        Client::new()
            .post(format!("{}/oauth/v1/token", hubspot.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=refresh_token&client_id=client&client_secret=secret&refresh_token=refresh"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access_token = body["access_token"].as_str().unwrap().to_owned();

    hubspot.set_daily_usage(1000, 1000);
    let (status, headers, body) = answer(
        Client::new()
            .post(format!(
                "{}/crm/v3/objects/companies/batch/read",
                hubspot.url()
            ))
            .bearer_auth(&access_token)
            .json(&by_account(&["acme"])),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(headers.get("x-hubspot-ratelimit-daily").is_none());
    assert!(headers.get("x-hubspot-ratelimit-daily-remaining").is_none());
    assert_eq!(hubspot.daily_usage(), 1000);

    // The private app's token, in the same portal, is out of calls for the day.
    let (status, _, body) = batch_read(&hubspot, "companies", by_account(&["acme"])).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["policyName"], "DAILY");
}
