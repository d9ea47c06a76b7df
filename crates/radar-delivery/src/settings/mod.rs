//! Delivery settings: the raw `[delivery]` section as written and the typed settings
//! delivery runs on; [`build`] (in `parse`) turns one into the other, reporting every
//! problem with its key. Secrets are read there, from the environment or from files
//! (never from the config file itself), and stay wrapped from then on.

mod parse;

pub use parse::build;

use std::path::PathBuf;
use std::time::Duration;

use radar_core::opportunity::Owner;
use radar_core::scoring::Tier;
use radar_core::{Kind, Opportunity};
use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::auth::AuthSettings;
use crate::auth::config::RawAuth;
use crate::crm::config::{CrmSettings, RawCrm, RawOwners};
use crate::guard::Guard;
use crate::retry::RetryPolicy;
use crate::signing::SigningSecret;

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// Delay ceilings before each retry, e.g. ["5s", "5m", "30m"]: one attempt plus one
    /// per entry.
    pub schedule: Option<Vec<String>>,
    pub retry_after_cap: Option<String>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<String>,
    /// How often a destination looks for deliveries whose retry is due.
    pub poll_interval: Option<String>,
    /// Internal networks destinations may reach anyway (CIDR), e.g. "127.0.0.0/8".
    #[serde(default)]
    pub allow_networks: Vec<String>,
    #[serde(default)]
    pub destinations: Vec<RawDestination>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub name: String,
    /// webhook, slack, hubspot or salesforce.
    pub kind: String,
    pub url: Option<String>,
    /// Name of an environment variable holding the URL (a Slack URL is itself a secret).
    pub url_env: Option<String>,
    /// Name of an environment variable holding the secret or token.
    pub secret_env: Option<String>,
    /// A file holding the secret or token.
    pub secret_file: Option<PathBuf>,
    pub timeout: Option<String>,
    pub max_in_flight: Option<u32>,
    /// Requests per second at most.
    pub rate_limit: Option<f64>,
    /// Filter: opportunity kinds (all when empty).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Filter: lowest tier delivered.
    pub min_tier: Option<String>,
    /// Filter: playbooks (all when empty).
    #[serde(default)]
    pub playbooks: Vec<String>,
    /// Filter: `cs` or `sales` (both when absent).
    pub owner: Option<String>,
    /// CRM: `deal` or `task` (HubSpot), `opportunity` or `task` (Salesforce).
    pub object: Option<String>,
    /// HubSpot: the deal pipeline's internal id.
    pub pipeline: Option<String>,
    /// The deal stage's internal id (HubSpot) or `StageName` (Salesforce).
    pub stage: Option<String>,
    /// The expected expansion cycle: close date = the opportunity's time + this.
    pub close_in: Option<String>,
    /// The unique deal property / external id field holding the opportunity id.
    pub id_field: Option<String>,
    /// The unique company property / Account external id field holding the account id.
    pub company_field: Option<String>,
    /// HubSpot: create a company that is not found.
    pub create_missing_company: Option<bool>,
    pub company_cache_ttl: Option<String>,
    /// Salesforce: the Opportunity `Type`.
    pub opportunity_type: Option<String>,
    /// Records per request at most (HubSpot: up to 100; Salesforce: up to 200).
    pub batch_size: Option<u32>,
    /// CRM: past this share of the daily API allocation, calls are paced (default 0.8).
    pub slow_down_at: Option<f64>,
    /// CRM owners of each team's records: an owner id, `"company_owner"`, or a list.
    pub owners: Option<RawOwners>,
    /// CRM: how the token is had: `token` (from `secret_env`/`secret_file`, the default),
    /// `jwt_bearer`, `client_credentials` or `refresh_token`.
    pub auth: Option<String>,
    /// OAuth: the connected app's consumer key (Salesforce) or the app's client id.
    pub client_id: Option<String>,
    /// `jwt_bearer`: the Salesforce user the integration runs as.
    pub username: Option<String>,
    /// OAuth: the host tokens are asked from (Salesforce: `https://login.salesforce.com`,
    /// `https://test.salesforce.com` or My Domain; HubSpot: its API host).
    pub login_url: Option<String>,
    /// `jwt_bearer`: the connected app's RSA private key (PEM), from a file or a variable.
    pub private_key_file: Option<PathBuf>,
    pub private_key_env: Option<String>,
    /// `client_credentials`, `refresh_token`: the client secret.
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
    /// `refresh_token`: the refresh token; a file is rewritten when HubSpot rotates it.
    pub refresh_token_file: Option<PathBuf>,
    pub refresh_token_env: Option<String>,
    /// How long a token lives when the vendor does not say (default 2h).
    pub session_lifetime: Option<String>,
    /// The longest wait between two tries of credentials that fail (default 15m).
    pub auth_retry_cap: Option<String>,
}

impl RawDestination {
    fn auth(&self) -> RawAuth<'_> {
        RawAuth {
            auth: self.auth.as_deref(),
            client_id: self.client_id.as_deref(),
            username: self.username.as_deref(),
            login_url: self.login_url.as_deref(),
            private_key_file: self.private_key_file.as_deref(),
            private_key_env: self.private_key_env.as_deref(),
            client_secret_file: self.client_secret_file.as_deref(),
            client_secret_env: self.client_secret_env.as_deref(),
            refresh_token_file: self.refresh_token_file.as_deref(),
            refresh_token_env: self.refresh_token_env.as_deref(),
            session_lifetime: self.session_lifetime.as_deref(),
            auth_retry_cap: self.auth_retry_cap.as_deref(),
        }
    }

    fn crm(&self) -> RawCrm<'_> {
        RawCrm {
            object: self.object.as_deref(),
            pipeline: self.pipeline.as_deref(),
            stage: self.stage.as_deref(),
            close_in: self.close_in.as_deref(),
            id_field: self.id_field.as_deref(),
            company_field: self.company_field.as_deref(),
            create_missing_company: self.create_missing_company,
            company_cache_ttl: self.company_cache_ttl.as_deref(),
            opportunity_type: self.opportunity_type.as_deref(),
            batch_size: self.batch_size,
            slow_down_at: self.slow_down_at,
            owners: self.owners.as_ref(),
        }
    }
}

/// One problem in the settings, with the key it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub key: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub policy: RetryPolicy,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub poll_interval: Duration,
    /// With `store = "kafka"`: a retry held this long, and not due for as long again,
    /// is parked anew at the end of the retry topic once records behind it are settled,
    /// so the commit passes them (see `kafka::repark`). Not configurable: tests shorten it.
    pub repark_after: Duration,
    pub guard: Guard,
    pub destinations: Vec<Destination>,
}

impl Default for DeliverySettings {
    fn default() -> DeliverySettings {
        DeliverySettings {
            policy: RetryPolicy::default(),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
            repark_after: Duration::from_secs(60),
            guard: Guard::default(),
            destinations: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Destination {
    pub name: String,
    pub target: Target,
    pub url: Url,
    /// The URL came from a secret source and must not be printed.
    pub url_is_secret: bool,
    pub timeout: Duration,
    pub max_in_flight: usize,
    pub rate_limit: Option<f64>,
    pub filter: Filter,
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url: &dyn std::fmt::Debug = if self.url_is_secret {
            &"<redacted>"
        } else {
            &self.url.as_str()
        };
        f.debug_struct("Destination")
            .field("name", &self.name)
            .field("target", &self.target)
            .field("url", url)
            .field("timeout", &self.timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("rate_limit", &self.rate_limit)
            .field("filter", &self.filter)
            .finish()
    }
}

/// What kind of receiver a destination is, with what it needs to sign or authenticate.
#[derive(Debug, Clone)]
pub enum Target {
    /// Generic JSON signed per Standard Webhooks.
    Webhook { secrets: Vec<SigningSecret> },
    /// A Slack incoming webhook (Block Kit message).
    Slack,
    /// HubSpot CRM: a deal (or task) upserted by the opportunity id, on the company
    /// found by the account id.
    HubSpot {
        auth: AuthSettings,
        crm: CrmSettings,
    },
    /// Salesforce REST: an Opportunity (or Task) upserted by the opportunity id as
    /// external id, on the Account whose external id is the account id.
    Salesforce {
        auth: AuthSettings,
        crm: CrmSettings,
    },
}

impl Target {
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Slack => "slack",
            Target::HubSpot { .. } => "hubspot",
            Target::Salesforce { .. } => "salesforce",
        }
    }
}

/// Which opportunities a destination wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub kinds: Vec<Kind>,
    pub min_tier: Option<Tier>,
    pub playbooks: Vec<String>,
    pub owner: Option<Owner>,
}

impl Filter {
    pub fn wants(&self, opportunity: &Opportunity) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&opportunity.kind))
            && self.min_tier.is_none_or(|min| opportunity.tier >= min)
            && (self.playbooks.is_empty()
                || self
                    .playbooks
                    .iter()
                    .any(|p| p == opportunity.playbook.as_str()))
            && self.owner.is_none_or(|owner| opportunity.owner == owner)
    }
}

/// Where secrets come from: the process environment in production, a map in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;
