//! Contract tests of the CRM destinations against local stand-ins of HubSpot and
//! Salesforce (`radar-standin`, written from the vendors' documentation, not from these
//! clients): the records land on the right company, owned by the right person, a repeat
//! updates instead of duplicating, and each documented failure gets the outcome a user
//! expects — through the same delivery service `radar run` uses.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use radar_delivery::DeliveryStore;
use radar_delivery::Observer;
use radar_delivery::breaker::BreakerState;
use radar_delivery::settings::RawDestination;
use radar_standin::hubspot::{HubSpot, RateLimit};
use radar_standin::salesforce::Salesforce;
use serde_json::{Value, json};
use support::{Running, run_observed, settings, until};

const TOKEN: &str = "test-token";

/// What delivery reported: each attempt's outcome and each routed record.
#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<&'static str>>,
    routed: Mutex<Vec<(&'static str, &'static str)>>,
}

impl Observer for Seen {
    fn attempt(&self, _: &str, result: &'static str) {
        self.attempts.lock().unwrap().push(result);
    }
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, team: &'static str, routing: &'static str) {
        self.routed.lock().unwrap().push((team, routing));
    }
}

impl Seen {
    fn count(&self, outcome: &str) -> usize {
        self.attempts
            .lock()
            .unwrap()
            .iter()
            .filter(|o| **o == outcome)
            .count()
    }
}

/// Opportunity `i` of `account`, for `team`, with an estimated ARR.
fn opportunity(i: usize, account: &str, team: &str) -> Vec<u8> {
    support::crm_opportunity(i, account, team)
}

fn crm(kind: &str, url: String) -> RawDestination {
    RawDestination {
        name: "crm".into(),
        kind: kind.into(),
        url: Some(url),
        secret_env: Some("TEST_TOKEN".into()),
        timeout: Some("2s".into()),
        ..RawDestination::default()
    }
}

async fn start(destination: RawDestination, entries: Vec<Vec<u8>>) -> (Running, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let mut raw = settings(vec![destination], true);
    // A paused destination (rate limit) waits at most this long, so the tests stay fast.
    raw.retry_after_cap = Some("300ms".into());
    let running = run_observed(raw, entries, seen.clone()).await;
    (running, seen)
}

fn dead_reasons(running: &Running) -> Vec<String> {
    running
        .store
        .dead_letters()
        .unwrap()
        .into_iter()
        .map(|d| d.reason)
        .collect()
}

fn paths(requests: &[radar_standin::Request], method: &str, prefix: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_hubspot_deal_lands_on_the_company_with_amount_close_date_and_owner_and_a_repeat_updates_it()
 {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.add_owner("77");
    let company = hubspot.add_company("radar_account_id", "acme", Some("77"));
    let (running, seen) = start(
        crm("hubspot", hubspot.url()),
        vec![opportunity(1, "acme", "sales")],
    )
    .await;
    until("the deal is delivered", || seen.count("success") == 1).await;
    let deals = hubspot.deals();
    assert_eq!(deals.len(), 1, "{deals:?}");
    let deal = &deals[0];
    let p = &deal.properties;
    assert_eq!(
        p["dealname"],
        "Expansion: acme — seat_expansion (seat_expansion)"
    );
    assert_eq!(
        p["amount"].as_str().unwrap().parse::<f64>().unwrap(),
        24000.0
    );
    assert!(
        p["closedate"].as_str().unwrap().starts_with("2026-04-16"),
        "{p:?}"
    );
    assert_eq!(p["pipeline"], "default");
    assert_eq!(p["dealstage"], "appointmentscheduled");
    assert_eq!(p["hubspot_owner_id"], "77");
    assert_eq!(p["radar_opportunity_id"], format!("{:032x}", 1));
    assert_eq!(p["radar_tier"], "hot");
    assert!(
        p["description"]
            .as_str()
            .unwrap()
            .contains("seats_used_pct (0.95): +25 pts"),
        "{p:?}"
    );
    assert_eq!(
        hubspot.associated_companies(&deal.id),
        vec![company.clone()]
    );
    assert_eq!(*seen.routed.lock().unwrap(), [("sales", "company_owner")]);

    // The same opportunity again (a replay after a crash): the same deal, updated.
    running
        .store
        .append_outbox([opportunity(1, "acme", "sales").as_slice()])
        .unwrap();
    until("the repeat is delivered", || seen.count("success") == 2).await;
    let deals = hubspot.deals();
    assert_eq!(deals.len(), 1, "not duplicated: {deals:?}");
    assert_eq!(deals[0].id, deal.id);
    assert!(!deals[0].created, "the repeat updated the deal");
    assert_eq!(hubspot.associated_companies(&deal.id), vec![company]);
    // The company was read once: the repeat found it in the cache.
    let requests = hubspot.requests();
    assert_eq!(
        paths(&requests, "POST", "/crm/v3/objects/companies/batch/read"),
        1,
        "{requests:#?}"
    );
    assert!(requests.iter().all(|r| r.status < 300), "{requests:#?}");
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_missing_company_is_a_company_not_found_dead_letter_unless_radar_may_create_it() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    let (running, seen) = start(
        crm("hubspot", hubspot.url()),
        vec![opportunity(1, "ghost", "cs")],
    )
    .await;
    until("the delivery is dead-lettered", || {
        !dead_reasons(&running).is_empty()
    })
    .await;
    let reasons = dead_reasons(&running);
    assert!(reasons[0].starts_with("company_not_found"), "{reasons:?}");
    assert!(reasons[0].contains("radar_account_id"), "{reasons:?}");
    assert_eq!(seen.count("company_not_found"), 1);
    assert!(hubspot.deals().is_empty());
    running.finish().await;

    let (running, seen) = start(
        RawDestination {
            create_missing_company: Some(true),
            ..crm("hubspot", hubspot.url())
        },
        vec![opportunity(2, "ghost", "cs")],
    )
    .await;
    until("the deal is delivered", || seen.count("success") == 1).await;
    let companies = hubspot.companies();
    assert_eq!(companies.len(), 1, "{companies:?}");
    assert_eq!(companies[0].properties["radar_account_id"], "ghost");
    let deal = &hubspot.deals()[0];
    assert_eq!(
        hubspot.associated_companies(&deal.id),
        vec![companies[0].id.clone()]
    );
    assert!(dead_reasons(&running).is_empty());
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn owners_follow_each_teams_routing() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    for owner in ["11", "21", "22", "90"] {
        hubspot.add_owner(owner);
    }
    hubspot.add_company("radar_account_id", "acme", Some("90"));
    let mut entries = vec![opportunity(0, "acme", "cs")];
    entries.extend((1..=40).map(|i| opportunity(i, "acme", "sales")));
    let (running, seen) = start(
        RawDestination {
            owners: Some(
                toml::from_str(
                    r#"cs = "11"
sales = ["21", "22"]"#,
                )
                .unwrap(),
            ),
            ..crm("hubspot", hubspot.url())
        },
        entries,
    )
    .await;
    until("all are delivered", || seen.count("success") == 41).await;
    let owner_of = |i: usize| {
        hubspot
            .deals()
            .into_iter()
            .find(|d| d.properties["radar_opportunity_id"] == format!("{i:032x}"))
            .map(|d| {
                d.properties["hubspot_owner_id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .unwrap()
    };
    assert_eq!(owner_of(0), "11");
    let mut spread: HashMap<String, usize> = HashMap::new();
    for i in 1..=40 {
        *spread.entry(owner_of(i)).or_default() += 1;
    }
    assert_eq!(
        spread.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["21".to_owned(), "22".to_owned()]),
        "{spread:?}"
    );
    assert!(spread.values().all(|&n| n >= 10), "{spread:?}");
    let routed = seen.routed.lock().unwrap().clone();
    assert_eq!(routed.iter().filter(|r| **r == ("cs", "fixed")).count(), 1);
    assert_eq!(
        routed.iter().filter(|r| **r == ("sales", "spread")).count(),
        40
    );
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_deep_queue_goes_in_batches_of_at_most_100_and_a_refused_deal_fails_alone() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.add_company("radar_account_id", "acme", None);
    let refused = format!("{:032x}", 17);
    hubspot.fail_input_once(&refused);
    let mut entries: Vec<Vec<u8>> = (0..250).map(|i| opportunity(i, "acme", "cs")).collect();
    // A replay's copy right beside its original, in the same batch: sent once (HubSpot
    // refuses a batch that names an id twice), delivered twice.
    entries.insert(4, opportunity(3, "acme", "cs"));
    let (running, seen) = start(
        RawDestination {
            max_in_flight: Some(1),
            ..crm("hubspot", hubspot.url())
        },
        entries,
    )
    .await;
    until("every delivery is settled", || {
        seen.count("success") + dead_reasons(&running).len() == 251
    })
    .await;
    assert_eq!(hubspot.deals().len(), 249);
    let reasons = dead_reasons(&running);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("crm_refused"), "{reasons:?}");
    let dead = &running.store.dead_letters().unwrap()[0];
    let dead: Value = serde_json::from_slice(&dead.opportunity).unwrap();
    assert_eq!(dead["opportunity_id"], refused.as_str());
    assert!(hubspot.requests().iter().all(|r| r.status != 400));
    let upserts: Vec<usize> = hubspot
        .requests()
        .iter()
        .filter(|r| r.path.starts_with("/crm/v3/objects/deals/batch/upsert"))
        .map(|r| r.body["inputs"].as_array().unwrap().len())
        .collect();
    assert!(upserts.iter().all(|&n| n <= 100), "{upserts:?}");
    assert!(
        upserts.len() <= 10,
        "batched, not one call per deal: {upserts:?}"
    );
    assert_eq!(upserts.iter().sum::<usize>(), 250);
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn hubspot_rate_limits_pause_the_destination_with_and_without_retry_after() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    for account in ["a1", "a2", "a3"] {
        hubspot.add_company("radar_account_id", account, None);
    }
    // The first call (the companies' batch read) gets the ten-second limit with
    // Retry-After.
    hubspot.rate_limit_next(1, RateLimit::TenSecondly, Some(1));
    let started = Instant::now();
    let (running, seen) = start(
        crm("hubspot", hubspot.url()),
        vec![
            opportunity(1, "a1", "cs"),
            opportunity(2, "a2", "cs"),
            opportunity(3, "a3", "cs"),
        ],
    )
    .await;
    until("the deals are delivered", || seen.count("success") == 3).await;
    // Retry-After: 1 is capped at the test's 300 ms, and honoured up to it.
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The read was for all three: each got its 429.
    assert_eq!(seen.count("http_429"), 3);
    // The batch stopped at the 429 and sent nothing more until the pause ended: one
    // refused read, then one read of the three companies, one upsert, one association.
    let requests = hubspot.requests();
    assert_eq!(requests.len(), 4, "{requests:#?}");
    assert_eq!(requests[0].status, 429);
    assert!(
        requests[1..].iter().all(|r| r.status < 300),
        "{requests:#?}"
    );

    // The daily limit, without Retry-After, on the upsert itself (the company is cached
    // now): paused for the policy's hour, capped at the test's 300 ms.
    hubspot.rate_limit_next(1, RateLimit::Daily, None);
    let again = Instant::now();
    running
        .store
        .append_outbox([opportunity(4, "a1", "cs").as_slice()])
        .unwrap();
    until("the fourth is delivered", || seen.count("success") == 4).await;
    assert!(again.elapsed() >= Duration::from_millis(300));
    assert_eq!(seen.count("http_429"), 4);
    let upserts = paths(
        &hubspot.requests(),
        "POST",
        "/crm/v3/objects/deals/batch/upsert",
    );
    assert_eq!(upserts, 3, "the refused upsert, then one per batch");
    assert!(dead_reasons(&running).is_empty());
    assert_eq!(hubspot.deals().len(), 4);
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_crm_does_not_hold_up_a_webhook() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.add_company("radar_account_id", "acme", None);
    hubspot.rate_limit_next(1_000, RateLimit::Daily, None);
    let hooks = Arc::new(Mutex::new(0usize));
    let counted = hooks.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().fallback(move || {
        let counted = counted.clone();
        async move {
            *counted.lock().unwrap() += 1;
            axum::http::StatusCode::NO_CONTENT
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut raw = settings(
        vec![
            crm("hubspot", hubspot.url()),
            RawDestination {
                name: "hook".into(),
                kind: "webhook".into(),
                url: Some(url),
                secret_env: Some("TEST_SECRET".into()),
                ..RawDestination::default()
            },
        ],
        true,
    );
    raw.retry_after_cap = Some("10s".into());
    let entries = (0..20).map(|i| opportunity(i, "acme", "cs")).collect();
    let running = run_observed(raw, entries, Arc::new(Seen::default())).await;
    until("the webhook has all 20", || *hooks.lock().unwrap() == 20).await;
    assert!(hubspot.deals().is_empty());
    assert_eq!(running.store.queue_summary("crm").unwrap().depth, 20);
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_hubspot_task_goes_on_the_company_and_a_repeat_is_delivered_once() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    let company = hubspot.add_company("radar_account_id", "acme", None);
    let (running, seen) = start(
        RawDestination {
            object: Some("task".into()),
            ..crm("hubspot", hubspot.url())
        },
        vec![opportunity(1, "acme", "cs"), opportunity(1, "acme", "cs")],
    )
    .await;
    until("both are delivered", || seen.count("success") == 2).await;
    let tasks = hubspot.tasks();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(hubspot.associated_companies(&tasks[0].id), vec![company]);
    assert!(dead_reasons(&running).is_empty());
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn a_salesforce_opportunity_is_upserted_on_the_account_and_owned_by_its_owner() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    salesforce.add_user("005000000000077AAA");
    let account = salesforce.add_account("Radar_Account_Id__c", "acme", Some("005000000000077AAA"));
    let (running, seen) = start(
        crm("salesforce", salesforce.url()),
        vec![opportunity(1, "acme", "sales")],
    )
    .await;
    until("the opportunity is delivered", || {
        seen.count("success") == 1
    })
    .await;
    let opportunities = salesforce.opportunities();
    assert_eq!(opportunities.len(), 1, "{opportunities:?}");
    let fields = &opportunities[0].properties;
    assert_eq!(
        fields["Name"],
        "Expansion: acme — seat_expansion (seat_expansion)"
    );
    assert_eq!(fields["StageName"], "Prospecting");
    assert_eq!(fields["CloseDate"], "2026-04-16");
    assert_eq!(fields["Amount"].as_f64(), Some(24000.0));
    assert_eq!(fields["Type"], "Existing Customer - Upgrade");
    assert_eq!(fields["AccountId"], account.as_str());
    assert_eq!(fields["OwnerId"], "005000000000077AAA");
    assert_eq!(fields["Radar_Opportunity_Id__c"], format!("{:032x}", 1));
    assert!(
        fields["Description"]
            .as_str()
            .unwrap()
            .contains("seats_used_pct")
    );

    running
        .store
        .append_outbox([opportunity(1, "acme", "sales").as_slice()])
        .unwrap();
    until("the repeat is delivered", || seen.count("success") == 2).await;
    let opportunities = salesforce.opportunities();
    assert_eq!(opportunities.len(), 1, "updated, not duplicated");
    assert!(!opportunities[0].created);
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn salesforce_errors_get_the_outcomes_a_user_expects() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    salesforce.add_account("Radar_Account_Id__c", "acme", None);
    let duplicate = format!("{:032x}", 2);
    salesforce.duplicate_once(&duplicate);
    salesforce.rate_limit_next(1);
    let (running, seen) = start(
        crm("salesforce", salesforce.url()),
        vec![
            opportunity(1, "acme", "cs"),
            opportunity(2, "acme", "cs"),
            opportunity(3, "nobody", "cs"),
        ],
    )
    .await;
    until("all three are settled", || {
        seen.count("success") + dead_reasons(&running).len() == 3
    })
    .await;
    // The API limit (on the read of acme's Account, which both of its opportunities
    // waited for) paused the destination, then it went on.
    assert_eq!(seen.count("http_429"), 2);
    assert_eq!(
        seen.count("success"),
        2,
        "DUPLICATE_VALUE counts as delivered"
    );
    let reasons = dead_reasons(&running);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("company_not_found"), "{reasons:?}");
    running.finish().await;
}

/// A loopback Salesforce: the Account lookup finds an owned Account, and the upserts (sObject
/// Collections calls) get what `upsert` answers to the n-th of them (counting from 0).
async fn loopback_salesforce(
    upsert: impl Fn(usize) -> axum::response::Response + Clone + Send + Sync + 'static,
) -> String {
    let upserts = Arc::new(Mutex::new(0usize));
    let app = axum::Router::new().fallback(move |method: axum::http::Method| {
        let (upserts, upsert) = (upserts.clone(), upsert.clone());
        async move {
            use axum::response::IntoResponse;
            if method == axum::http::Method::GET {
                let account = json!({"Id": "001000000000001AAA", "OwnerId": "005000000000077AAA"});
                return axum::Json(account).into_response();
            }
            let n = {
                let mut count = upserts.lock().unwrap();
                *count += 1;
                *count - 1
            };
            upsert(n)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// Salesforce documents 403 `REQUEST_LIMIT_EXCEEDED` for its API limit, but what sits in
/// front of an org (a gateway, a proxy) answers 429 with `Retry-After`: a pause, like
/// HubSpot's 429, never a dead letter.
#[tokio::test(start_paused = true)]
async fn a_salesforce_429_with_retry_after_pauses_and_retries() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let answered = Arc::new(Mutex::new(Vec::<u16>::new()));
    let seen_by_server = answered.clone();
    let url = loopback_salesforce(move |n| {
        seen_by_server
            .lock()
            .unwrap()
            .push(if n == 0 { 429 } else { 200 });
        if n > 0 {
            let results = json!([{"id": "006000000000001AAA", "success": true, "errors": [], "created": true}]);
            return axum::Json(results).into_response();
        }
        let body = json!([{"errorCode": "REQUEST_LIMIT", "message": "Too many requests"}]);
        (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            axum::Json(body),
        )
            .into_response()
    })
    .await;
    let started = Instant::now();
    let (running, seen) = start(crm("salesforce", url), vec![opportunity(1, "acme", "cs")]).await;
    until("the opportunity is settled", || {
        seen.count("success") + dead_reasons(&running).len() == 1
    })
    .await;
    assert_eq!(dead_reasons(&running), Vec::<String>::new());
    assert_eq!(*answered.lock().unwrap(), [429, 200]);
    assert_eq!(seen.count("http_429"), 1);
    // Retry-After: 1 is capped at the test's 300 ms, and honoured up to it.
    assert!(started.elapsed() >= Duration::from_millis(300));
    running.finish().await;
}

/// A collection Salesforce refuses whole (one record it cannot parse makes the call a
/// 400) is sent again one record at a time: only the bad one is dead-lettered.
#[tokio::test(start_paused = true)]
async fn a_salesforce_collection_refused_whole_is_split_and_only_the_bad_record_fails() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let url = loopback_salesforce(|n| {
        let refused = || {
            let body = json!([{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize instance of date"}]);
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        };
        match n {
            // The two together, then the first alone: refused; the second alone: upserted.
            0 | 1 => refused(),
            _ => axum::Json(json!([{"id": "006000000000002AAA", "success": true, "errors": [], "created": true}]))
                .into_response(),
        }
    })
    .await;
    let (running, seen) = start(
        crm("salesforce", url),
        vec![opportunity(1, "acme", "cs"), opportunity(2, "acme", "cs")],
    )
    .await;
    until("both are settled", || {
        seen.count("success") + dead_reasons(&running).len() == 2
    })
    .await;
    assert_eq!(seen.count("success"), 1);
    let dead = running.store.dead_letters().unwrap();
    assert_eq!(dead.len(), 1);
    let letter: Value = serde_json::from_slice(&dead[0].opportunity).unwrap();
    assert_eq!(letter["opportunity_id"], format!("{:032x}", 1));
    assert!(
        dead[0].reason.contains("JSON_PARSER_ERROR"),
        "{}",
        dead[0].reason
    );
    running.finish().await;
}

/// A vendor (or a proxy) that echoes the request in its error: the dead letter keeps
/// the message and loses the credentials.
#[tokio::test(start_paused = true)]
async fn a_refusal_that_echoes_the_token_is_dead_lettered_without_it() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let url = loopback_salesforce(|_| {
        let echo = format!(
            "bad field; request was Authorization: Bearer {TOKEN} with {{\"refresh_token\":\"5Aep861\"}} and {TOKEN}"
        );
        let body = json!([{"errorCode": "INVALID_FIELD", "message": echo}]);
        (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
    })
    .await;
    let (running, _) = start(crm("salesforce", url), vec![opportunity(1, "acme", "cs")]).await;
    until("the opportunity is dead-lettered", || {
        dead_reasons(&running).len() == 1
    })
    .await;
    let reason = dead_reasons(&running).remove(0);
    assert!(
        reason.starts_with("crm_refused: Salesforce answered 400 INVALID_FIELD: bad field"),
        "{reason}"
    );
    assert!(
        !reason.contains(TOKEN) && !reason.contains("5Aep861"),
        "{reason}"
    );
    running.finish().await;
}
