//! `radar demo --crm hubspot|salesforce`: a local stand-in of that CRM (from
//! `radar-standin`), seeded with a company per demo account and a few owners, as a
//! delivery destination (Salesforce logs in with the JWT bearer flow, and its sessions
//! end every 30 s, so renewals show in the log); each deal prints as it lands, so a newcomer sees the pipeline
//! fill.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use radar_delivery::crm::config::{RawOwners, RawRouting};
use radar_delivery::settings::RawDestination;
use radar_standin::CrmRecord;
use radar_standin::hubspot::HubSpot;
use radar_standin::salesforce::{ConnectedApp, KeyPair, Salesforce};
use tokio::sync::broadcast;

/// Which CRM the demo stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoCrm {
    Hubspot,
    Salesforce,
}

/// The environment variable name the demo's CRM token is read under.
pub const TOKEN_VAR: &str = "RADAR_DEMO_CRM_TOKEN";
/// The variable the demo's Salesforce connected-app private key is read under.
pub const KEY_VAR: &str = "RADAR_DEMO_CRM_PRIVATE_KEY";
/// The demo's Salesforce connected app, and the user the integration runs as.
const CONNECTED_APP: &str = "3MVG9-radar-demo";
const INTEGRATION_USER: &str = "radar-integration@demo.example";
/// How long the demo Salesforce's sessions last: short, so renewals show in the log.
const SESSION: std::time::Duration = std::time::Duration::from_secs(30);

/// Owners in the stand-in: the first owns every company (CS work goes to the account's
/// owner); sales expansions are spread over the other two.
const HUBSPOT_OWNERS: [&str; 3] = ["1001", "1002", "1003"];
const SALESFORCE_USERS: [&str; 3] = [
    "005000000000101AAA",
    "005000000000102AAA",
    "005000000000103AAA",
];

/// A running stand-in, and how many deals have landed in it.
#[derive(Debug)]
pub struct Standin {
    pub name: &'static str,
    pub url: String,
    pub landed: Arc<AtomicU64>,
    /// The private key the destination signs its JWT bearer assertions with
    /// (Salesforce), served to it under [`KEY_VAR`].
    pub private_key: Option<String>,
}

/// Starts the stand-in with a company for each of the demo's `accounts`, prints deals as
/// they land, and returns it with the destination that delivers to it.
pub async fn start(crm: DemoCrm, accounts: u64, token: &str) -> Result<(Standin, RawDestination)> {
    let landed = Arc::new(AtomicU64::new(0));
    let mut private_key = None;
    let (name, kind, url, owners, deals) = match crm {
        DemoCrm::Hubspot => {
            let hubspot = HubSpot::start(token)
                .await
                .context("starting the local HubSpot stand-in")?;
            for owner in HUBSPOT_OWNERS {
                hubspot.add_owner(owner);
            }
            // An allocation a long demo does not reach (the stand-in's day never ends).
            hubspot.set_daily_usage(0, 100_000_000);
            for index in 0..accounts {
                hubspot.add_company(
                    "radar_account_id",
                    &account_id(index),
                    Some(HUBSPOT_OWNERS[0]),
                );
            }
            (
                "HubSpot",
                "hubspot",
                hubspot.url(),
                HUBSPOT_OWNERS,
                hubspot.subscribe(),
            )
        }
        DemoCrm::Salesforce => {
            let salesforce = Salesforce::start(token)
                .await
                .context("starting the local Salesforce stand-in")?;
            for user in SALESFORCE_USERS {
                salesforce.add_user(user);
            }
            // An allocation a long demo does not reach (the stand-in's day never ends).
            salesforce.set_api_usage(0, 100_000_000);
            // Logged in through the JWT bearer flow, as a production org would be, with
            // sessions that end every 30 s.
            let keys = KeyPair::generate()
                .map_err(|e| anyhow::anyhow!(e))
                .context("generating the demo connected app's key pair")?;
            salesforce.connect_app(ConnectedApp {
                client_id: CONNECTED_APP.into(),
                client_secret: None,
                username: INTEGRATION_USER.into(),
                public_key_pem: Some(keys.public_pem),
                refresh_token: None,
                token_lifetime: SESSION,
            });
            private_key = Some(keys.private_pem);
            for index in 0..accounts {
                salesforce.add_account(
                    "Radar_Account_Id__c",
                    &account_id(index),
                    Some(SALESFORCE_USERS[0]),
                );
            }
            (
                "Salesforce",
                "salesforce",
                salesforce.url(),
                SALESFORCE_USERS,
                salesforce.subscribe(),
            )
        }
    };
    tokio::spawn(print_deals(crm, deals, landed.clone()));
    let auth = match crm {
        DemoCrm::Hubspot => RawDestination {
            secret_env: Some(TOKEN_VAR.into()),
            ..RawDestination::default()
        },
        DemoCrm::Salesforce => RawDestination {
            auth: Some("jwt_bearer".into()),
            client_id: Some(CONNECTED_APP.into()),
            username: Some(INTEGRATION_USER.into()),
            login_url: Some(url.clone()),
            private_key_env: Some(KEY_VAR.into()),
            session_lifetime: Some(format!("{}s", SESSION.as_secs())),
            ..RawDestination::default()
        },
    };
    let destination = RawDestination {
        name: kind.into(),
        kind: kind.into(),
        url: Some(url.clone()),
        owners: Some(RawOwners {
            cs: Some(RawRouting::One("company_owner".into())),
            sales: Some(RawRouting::Many(
                owners[1..].iter().map(|o| (*o).to_owned()).collect(),
            )),
        }),
        ..auth
    };
    let standin = Standin {
        name,
        url,
        landed,
        private_key,
    };
    Ok((standin, destination))
}

/// The generator's account ids (`radar generate`, `radar demo`).
fn account_id(index: u64) -> String {
    format!("acct_{index:06}")
}

async fn print_deals(
    crm: DemoCrm,
    mut deals: broadcast::Receiver<CrmRecord>,
    landed: Arc<AtomicU64>,
) {
    loop {
        match deals.recv().await {
            Ok(deal) => {
                if deal.created {
                    landed.fetch_add(1, Ordering::SeqCst);
                }
                println!("{}", describe(crm, &deal));
            }
            // The stand-in keeps the last 1024 for a slow reader; the count stays right.
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                landed.fetch_add(missed, Ordering::SeqCst);
                println!("crm: unprinted {missed} deals that landed meanwhile");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// One line per deal: what a rep sees in the pipeline view.
fn describe(crm: DemoCrm, deal: &CrmRecord) -> String {
    let field = |name: &str| {
        deal.properties
            .get(name)
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
            .unwrap_or_default()
    };
    let verb = if deal.created { "new    " } else { "updated" };
    match crm {
        DemoCrm::Hubspot => format!(
            "crm: deal {verb} {:>8} {:<52} amount {:>9} stage {} close {} owner {}",
            deal.id,
            field("dealname"),
            field("amount"),
            field("dealstage"),
            field("closedate"),
            field("hubspot_owner_id"),
        ),
        DemoCrm::Salesforce => format!(
            "crm: opportunity {verb} {} {:<52} amount {:>9} stage {} close {} owner {}",
            deal.id,
            field("Name"),
            field("Amount"),
            field("StageName"),
            field("CloseDate"),
            field("OwnerId"),
        ),
    }
}
