//! Salesforce's sObject Collections upsert and API allocation (`Sforce-Limit-Info`) over
//! real HTTP, as a client sees them: each test starts its own stand-in.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use radar_standin::salesforce::Salesforce;
use reqwest::header::HeaderMap;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use support::{answer, header};

const TOKEN: &str = "pat-test-token";

const EXTERNAL_ID: &str = "Radar_Opportunity_Id__c";

fn collection_url(salesforce: &Salesforce, version: &str) -> String {
    format!(
        "{}/services/data/{version}/composite/sobjects/Opportunity/{EXTERNAL_ID}",
        salesforce.url()
    )
}

fn opportunity(value: &str, stage: &str) -> Value {
    json!({
        "attributes": { "type": "Opportunity" },
        EXTERNAL_ID: value,
        "Name": format!("Expansion {value}"),
        "StageName": stage,
        "CloseDate": "2026-03-31",
        "Amount": 12000,
        "Account": { "Radar_Account_Id__c": "acme" },
    })
}

async fn upsert_collection(
    salesforce: &Salesforce,
    all_or_none: bool,
    records: Vec<Value>,
) -> (StatusCode, HeaderMap, Value) {
    answer(
        Client::new()
            .patch(collection_url(salesforce, "v62.0"))
            .bearer_auth(TOKEN)
            .json(&json!({ "allOrNone": all_or_none, "records": records })),
    )
    .await
}

async fn salesforce() -> (Salesforce, String) {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", None);
    (salesforce, account)
}

fn stored_values(salesforce: &Salesforce) -> Vec<String> {
    salesforce
        .opportunities()
        .iter()
        .map(|o| o.properties[EXTERNAL_ID].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn salesforce_collection_upserts_each_record_in_order() {
    let (salesforce, account) = salesforce().await;
    let mut feed = salesforce.subscribe();
    salesforce.refuse_record(
        "opp-b",
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Close date must be in the future",
    );
    let records = vec![
        opportunity("opp-a", "Qualification"),
        opportunity("opp-b", "Qualification"),
        opportunity("opp-c", "Qualification"),
    ];

    let (status, _, body) = upsert_collection(&salesforce, false, records.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body.as_array().unwrap();
    assert_eq!(results.len(), 3);
    for i in [0, 2] {
        assert_eq!(results[i]["success"], true, "{body}");
        assert_eq!(results[i]["created"], true);
        assert_eq!(results[i]["errors"], json!([]));
        assert!(results[i]["id"].as_str().unwrap().starts_with("006"));
    }
    assert_eq!(results[1]["success"], false);
    assert!(results[1].get("id").is_none_or(Value::is_null), "{body}");
    assert_eq!(
        results[1]["errors"],
        json!([{
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Close date must be in the future",
            "fields": [],
        }])
    );
    assert_eq!(stored_values(&salesforce), vec!["opp-a", "opp-c"]);
    let stored = salesforce.opportunities();
    assert_eq!(stored[0].id, results[0]["id"].as_str().unwrap());
    assert_eq!(stored[0].properties["AccountId"], account.as_str());
    assert!(stored[0].properties.get("attributes").is_none());
    assert_eq!(feed.recv().await.unwrap().id, stored[0].id);
    assert_eq!(feed.recv().await.unwrap().id, stored[1].id);

    // The same call again updates the two it created.
    let mut again = records;
    again[0]["StageName"] = "Negotiation/Review".into();
    let (status, _, body) = upsert_collection(&salesforce, false, again).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body[0]["created"], false);
    assert_eq!(body[0]["id"], results[0]["id"]);
    assert_eq!(body[1]["success"], false);
    assert_eq!(body[2]["created"], false);
    assert_eq!(body[2]["id"], results[2]["id"]);
    let stored = salesforce.opportunities();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].properties["StageName"], "Negotiation/Review");
    assert!(!stored[0].created && !stored[1].created);

    // Two collections, two requests: each counts once, whatever it holds.
    let collections = salesforce
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/composite/sobjects/"))
        .count();
    assert_eq!(collections, 2);
}

#[tokio::test]
async fn salesforce_all_or_none_writes_nothing_when_one_record_fails() {
    let (salesforce, _) = salesforce().await;
    let (status, _, _) = upsert_collection(
        &salesforce,
        false,
        vec![opportunity("opp-a", "Prospecting")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    salesforce.refuse_record("opp-c", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No");

    let records = vec![
        opportunity("opp-a", "Closed Won"),
        opportunity("opp-b", "Qualification"),
        opportunity("opp-c", "Qualification"),
    ];
    let (status, _, body) = upsert_collection(&salesforce, true, records).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            assert_eq!(result["success"], false, "{body}");
            result["errors"][0]["statusCode"].as_str().unwrap()
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        ]
    );
    assert_eq!(
        body[0]["errors"][0]["message"],
        "Record rolled back because not all records were valid and the request was using AllOrNone header"
    );
    let stored = salesforce.opportunities();
    assert_eq!(stored_values(&salesforce), vec!["opp-a"]);
    assert_eq!(stored[0].properties["StageName"], "Prospecting");

    // Without the refused record, the same all-or-none call lands whole.
    let records = vec![
        opportunity("opp-a", "Closed Won"),
        opportunity("opp-b", "Qualification"),
    ];
    let (_, _, body) = upsert_collection(&salesforce, true, records).await;
    assert_eq!(body[0]["created"], false, "{body}");
    assert_eq!(body[1]["created"], true);
    assert_eq!(stored_values(&salesforce), vec!["opp-a", "opp-b"]);
}

#[tokio::test]
async fn salesforce_collection_refuses_bad_records_one_by_one() {
    let (salesforce, _) = salesforce().await;
    let mut untyped = opportunity("opp-b", "Qualification");
    untyped.as_object_mut().unwrap().remove("attributes");
    let mut unnamed = opportunity("opp-c", "Qualification");
    unnamed.as_object_mut().unwrap().remove(EXTERNAL_ID);
    let mut no_account = opportunity("opp-d", "Qualification");
    no_account["Account"] = json!({ "Radar_Account_Id__c": "globex" });
    let mut unowned = opportunity("opp-e", "Qualification");
    unowned["OwnerId"] = "005000000000077AAA".into();
    let records = vec![
        opportunity("opp-a", "Qualification"),
        untyped,
        unnamed,
        no_account,
        unowned,
        opportunity("opp-f", "Qualification"),
        opportunity("opp-f", "Qualification"),
    ];

    let (status, _, body) = upsert_collection(&salesforce, false, records).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let codes: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|result| {
            result["errors"][0]["statusCode"]
                .as_str()
                .unwrap_or("success")
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            "success",
            "INVALID_TYPE",
            "MISSING_ARGUMENT",
            "INVALID_FIELD",
            "INVALID_CROSS_REFERENCE_KEY",
            "DUPLICATE_VALUE",
            "DUPLICATE_VALUE",
        ]
    );
    assert_eq!(stored_values(&salesforce), vec!["opp-a"]);

    // The single upsert refuses a refused record too.
    salesforce.refuse_record("opp-z", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Locked");
    let mut body = opportunity("opp-z", "Qualification");
    let body = body.as_object_mut().unwrap();
    body.remove("attributes");
    body.remove(EXTERNAL_ID);
    let (status, _, body) = answer(
        Client::new()
            .patch(format!(
                "{}/services/data/v62.0/sobjects/Opportunity/{EXTERNAL_ID}/opp-z",
                salesforce.url()
            ))
            .bearer_auth(TOKEN)
            .json(&body),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!([{
            "message": "Locked",
            "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "fields": [],
        }])
    );
    assert_eq!(salesforce.opportunities().len(), 1);
}

#[tokio::test]
async fn salesforce_collection_records_can_lose_a_race() {
    let (salesforce, _) = salesforce().await;
    salesforce.duplicate_once("opp-b");
    let records = vec![
        opportunity("opp-a", "Qualification"),
        opportunity("opp-b", "Qualification"),
    ];

    // allOrNone rolls back this call's writes, not the record the other writer made.
    let (status, _, body) = upsert_collection(&salesforce, true, records.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(body[1]["errors"][0]["statusCode"], "DUPLICATE_VALUE");
    assert_eq!(stored_values(&salesforce), vec!["opp-b"]);

    // The retry finds it and updates it.
    let (_, _, body) = upsert_collection(&salesforce, true, records).await;
    assert_eq!(body[0]["created"], true, "{body}");
    assert_eq!(body[1]["created"], false);
    assert_eq!(body[1]["id"], salesforce.opportunities()[0].id.as_str());
    assert_eq!(stored_values(&salesforce), vec!["opp-b", "opp-a"]);
}

#[tokio::test]
async fn salesforce_collection_shape_is_checked() {
    let (salesforce, _) = salesforce().await;
    let records: Vec<Value> = (0..201)
        .map(|i| opportunity(&format!("opp-{i}"), "Qualification"))
        .collect();
    let (status, _, body) = upsert_collection(&salesforce, false, records).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!([{
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }])
    );
    assert!(salesforce.opportunities().is_empty());

    // 200 is the limit, not past it.
    let records: Vec<Value> = (0..200)
        .map(|i| opportunity(&format!("opp-{i}"), "Qualification"))
        .collect();
    let (status, _, body) = upsert_collection(&salesforce, false, records).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().unwrap().len(), 200);
    assert_eq!(salesforce.opportunities().len(), 200);

    let client = Client::new();
    let (status, _, body) = answer(
        client
            .patch(collection_url(&salesforce, "v62.0"))
            .bearer_auth(TOKEN)
            .json(&json!({ "allOrNone": false })),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body[0]["errorCode"], "JSON_PARSER_ERROR");

    // The resource exists from API version 46.0.
    let (status, _, _) = answer(
        client
            .patch(collection_url(&salesforce, "v45.0"))
            .bearer_auth(TOKEN)
            .json(&json!({ "records": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _, body) = answer(
        client
            .patch(collection_url(&salesforce, "v62.0"))
            .json(&json!({ "records": [] })),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body[0]["errorCode"], "INVALID_SESSION_ID");
}

#[tokio::test]
async fn salesforce_api_usage_counts_calls_and_stops_at_the_limit() {
    let (salesforce, _) = salesforce().await;
    let records: Vec<Value> = (0..3)
        .map(|i| opportunity(&format!("opp-{i}"), "Qualification"))
        .collect();

    let (_, headers, _) = upsert_collection(&salesforce, false, records.clone()).await;
    assert_eq!(header(&headers, "sforce-limit-info"), "api-usage=1/15000");
    assert_eq!(salesforce.api_usage(), 1);

    // 80% of the day's allocation used: calls still pass, and say so.
    salesforce.set_api_usage(11_998, 15_000);
    let (status, headers, _) = upsert_collection(&salesforce, false, records.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "sforce-limit-info"),
        "api-usage=11999/15000"
    );

    // One call left, then none.
    salesforce.set_api_usage(14_999, 15_000);
    let (status, headers, _) = upsert_collection(&salesforce, false, records.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        header(&headers, "sforce-limit-info"),
        "api-usage=15000/15000"
    );
    let (status, headers, body) = upsert_collection(&salesforce, false, records).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!([{ "message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED" }])
    );
    assert_eq!(
        header(&headers, "sforce-limit-info"),
        "api-usage=15000/15000"
    );
    assert_eq!(salesforce.api_usage(), 15_000);

    // A new allocation (the next day, or a bigger one) lets calls through again.
    salesforce.set_api_usage(0, 100);
    let (status, headers, _) = answer(
        Client::new()
            .get(format!(
                "{}/services/data/v62.0/sobjects/Account/Radar_Account_Id__c/acme",
                salesforce.url()
            ))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "sforce-limit-info"), "api-usage=1/100");
}
