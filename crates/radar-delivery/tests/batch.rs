//! The vendors' batch APIs against the stand-ins: Salesforce Opportunities upserted 200 at
//! a time through sObject Collections, each record settled by its own result; HubSpot
//! companies read 100 at a time by their unique account property, a 207 keeping what it
//! found; and the API allocation the answers report, in metrics and in the pace.

#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use radar_delivery::breaker::BreakerState;
use radar_delivery::settings::RawDestination;
use radar_delivery::{DeliveryStore, Observer};
use radar_standin::hubspot::HubSpot;
use radar_standin::salesforce::Salesforce;
use serde_json::Value;
use support::{Running, run_observed, settings, until};

const TOKEN: &str = "test-token";

#[derive(Default)]
struct Seen {
    attempts: Mutex<Vec<&'static str>>,
    usage: Mutex<Vec<(u64, u64)>>,
    burst: Mutex<Vec<(u64, u64)>>,
}

impl Observer for Seen {
    fn attempt(&self, _: &str, result: &'static str) {
        self.attempts.lock().unwrap().push(result);
    }
    fn delivered(&self, _: &str, _: Duration) {}
    fn dead_lettered(&self, _: &str) {}
    fn queue(&self, _: &str, _: u64, _: Duration) {}
    fn breaker(&self, _: &str, _: BreakerState) {}
    fn routed(&self, _: &str, _: &'static str, _: &'static str) {}
    fn api_usage(&self, _: &str, used: u64, limit: u64) {
        self.usage.lock().unwrap().push((used, limit));
    }
    fn api_burst(&self, _: &str, remaining: u64, max: u64) {
        self.burst.lock().unwrap().push((remaining, max));
    }
}

impl Seen {
    fn count(&self, outcome: &str) -> usize {
        let attempts = self.attempts.lock().unwrap();
        attempts.iter().filter(|a| **a == outcome).count()
    }
}

fn opportunity(i: usize, account: &str) -> Vec<u8> {
    support::crm_opportunity(i, account, "cs")
}

fn crm(kind: &str, url: String) -> RawDestination {
    RawDestination {
        name: "crm".into(),
        kind: kind.into(),
        url: Some(url),
        secret_env: Some("TEST_TOKEN".into()),
        timeout: Some("5s".into()),
        max_in_flight: Some(1),
        ..RawDestination::default()
    }
}

async fn start(destination: RawDestination, entries: Vec<Vec<u8>>) -> (Running, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let running = run_observed(settings(vec![destination], true), entries, seen.clone()).await;
    (running, seen)
}

fn dead_letters(running: &Running) -> Vec<(String, Value)> {
    let dead = running.store.dead_letters().unwrap();
    dead.into_iter()
        .map(|d| (d.reason, serde_json::from_slice(&d.opportunity).unwrap()))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn four_hundred_fifty_salesforce_records_go_in_three_calls_and_a_refused_one_fails_alone() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    for account in ["acme", "globex", "initech"] {
        salesforce.add_account("Radar_Account_Id__c", account, None);
    }
    let refused = format!("{:032x}", 7);
    salesforce.refuse_record(
        &refused,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "Amount needs a finance approval",
    );
    let accounts = ["acme", "globex", "initech"];
    let entries = (0..450).map(|i| opportunity(i, accounts[i % 3])).collect();
    let (running, seen) = start(crm("salesforce", salesforce.url()), entries).await;
    until("every delivery is settled", || {
        seen.count("success") + dead_letters(&running).len() == 450
    })
    .await;
    assert_eq!(salesforce.opportunities().len(), 449);
    let dead = dead_letters(&running);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1["opportunity_id"], refused.as_str());
    assert!(
        dead[0].0.starts_with(
            "crm_refused: Salesforce answered 400 FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount needs a finance approval"
        ),
        "{dead:?}"
    );
    let calls: Vec<usize> = salesforce
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/composite/sobjects/Opportunity/"))
        .map(|r| r.body["records"].as_array().unwrap().len())
        .collect();
    assert_eq!(calls, [200, 200, 50], "three collection calls");
    assert!(
        salesforce.requests().iter().all(|r| !r
            .path
            .contains("/sobjects/Opportunity/Radar_Opportunity_Id__c/")),
        "no record was upserted alone"
    );
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn hubspot_companies_are_read_a_hundred_at_a_time_and_a_missing_one_fails_its_deal_alone() {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    let accounts: Vec<String> = (0..150).map(|i| format!("acct_{i:03}")).collect();
    for account in &accounts[1..] {
        hubspot.add_company("radar_account_id", account, None);
    }
    hubspot.set_ten_second_limit(Some(1_000));
    let entries = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| opportunity(i, account))
        .collect();
    let (running, seen) = start(crm("hubspot", hubspot.url()), entries).await;
    until("every delivery is settled", || {
        seen.count("success") + dead_letters(&running).len() == 150
    })
    .await;
    assert_eq!(hubspot.deals().len(), 149);
    let dead = dead_letters(&running);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].1["account_id"], "acct_000");
    assert!(dead[0].0.starts_with("company_not_found"), "{dead:?}");
    let requests = hubspot.requests();
    let reads: Vec<usize> = requests
        .iter()
        .filter(|r| r.path == "/crm/v3/objects/companies/batch/read")
        .map(|r| r.body["inputs"].as_array().unwrap().len())
        .collect();
    assert!(reads.iter().all(|&n| n <= 100), "{reads:?}");
    assert_eq!(reads.iter().sum::<usize>(), 150, "each account read once");
    assert!(
        reads.len() <= 4,
        "batched, not one read per company: {reads:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r.method != "GET" || !r.path.starts_with("/crm/v3/objects/companies/")),
        "no company was looked up alone"
    );
    // HubSpot's ten-second window, as each answer reported it.
    let burst = seen.burst.lock().unwrap().clone();
    assert!(!burst.is_empty());
    assert!(
        burst
            .iter()
            .all(|&(remaining, max)| max == 1_000 && remaining < 1_000),
        "{burst:?}"
    );
    running.finish().await;
}

#[tokio::test(start_paused = true)]
async fn past_eighty_percent_of_the_daily_allocation_the_destination_is_paced() {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    salesforce.add_account("Radar_Account_Id__c", "acme", None);
    // 11,990 of 15,000 used: the 10th request passes 80%.
    salesforce.set_api_usage(11_990, 15_000);
    let destination = RawDestination {
        batch_size: Some(1),
        ..crm("salesforce", salesforce.url())
    };
    let entries = (0..20).map(|i| opportunity(i, "acme")).collect();
    let started = tokio::time::Instant::now();
    let (running, seen) = start(destination, entries).await;
    // Paced calls are tens of seconds apart: look every second of (paused) time.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while seen.count("success") < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the twenty were not delivered: {:?}",
            seen.attempts.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let took = started.elapsed();
    let usage = seen.usage.lock().unwrap().clone();
    assert_eq!(usage.first(), Some(&(11_991, 15_000)), "{usage:?}");
    assert_eq!(usage.last().map(|u| u.1), Some(15_000));
    // About 3,000 calls left for a day: one every 28.8 s from the 80% mark (the tenth
    // request), so the last ten or so are paced.
    assert!(
        took >= Duration::from_secs(10 * 28),
        "paced past 80%: the twenty took {took:?}"
    );
    assert!(dead_letters(&running).is_empty());
    assert_eq!(seen.count("http_429"), 0, "never ran into the limit");
    running.finish().await;
}
