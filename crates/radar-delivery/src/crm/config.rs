//! The settings of a CRM destination: which object an opportunity becomes (a deal or
//! opportunity in the pipeline, or a task), where in the pipeline, which company or
//! account it belongs to and how it is found, and who owns it. Parsed from the
//! destination's raw keys with every problem reported under its key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How an owner is chosen for one team (`cs` or `sales`), as written in the config: an
/// owner id, `"company_owner"`, or a list to spread over.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawRouting {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOwners {
    pub cs: Option<RawRouting>,
    pub sales: Option<RawRouting>,
}

/// The record an opportunity becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmObject {
    /// A HubSpot deal or a Salesforce Opportunity, in the expansion pipeline.
    Deal,
    /// A to-do on the company or account.
    Task,
}

/// Who owns the records of one team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// The company's (HubSpot) or account's (Salesforce) owner at delivery time; none
    /// when it has none.
    CompanyOwner,
    /// Always this owner id.
    Fixed(String),
    /// Spread over these owner ids by the opportunity id: a repeated delivery keeps its
    /// owner, and every instance picks the same one.
    Spread(Vec<String>),
}

impl Routing {
    /// The label of this kind of routing, for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Routing::CompanyOwner => "company_owner",
            Routing::Fixed(_) => "fixed",
            Routing::Spread(_) => "spread",
        }
    }
}

/// The value of `owners.<team>` that means "the company's owner".
pub const COMPANY_OWNER: &str = "company_owner";

#[derive(Debug, Clone, PartialEq)]
pub struct CrmSettings {
    pub object: CrmObject,
    /// HubSpot's deal pipeline id (unused by Salesforce).
    pub pipeline: String,
    /// HubSpot's deal stage id, or Salesforce's `StageName`.
    pub stage: String,
    /// The close date is the opportunity's time plus this: the expected expansion cycle.
    pub close_in: Duration,
    /// The unique deal property (HubSpot) or external id field (Salesforce) that holds the
    /// opportunity id: a repeat updates the same record.
    pub id_field: String,
    /// The unique company property (HubSpot) or Account external id field (Salesforce)
    /// that holds the account id.
    pub company_field: String,
    /// HubSpot: create a company that is not found instead of dead-lettering.
    pub create_missing_company: bool,
    /// How long a found company (its id and owner) is remembered.
    pub company_ttl: Duration,
    /// Salesforce's Opportunity `Type`.
    pub opportunity_type: String,
    /// Records per request at most (HubSpot's deal batch endpoints take 100, Salesforce's
    /// sObject Collections 200; tasks are one per request).
    pub batch_size: usize,
    /// The share of the daily API allocation past which calls are paced.
    pub slow_down_at: f64,
    pub cs: Routing,
    pub sales: Routing,
}

/// Which vendor a CRM destination is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    HubSpot,
    Salesforce,
}

/// The CRM keys of a destination, as written.
#[derive(Debug, Clone, Default)]
pub struct RawCrm<'a> {
    pub object: Option<&'a str>,
    pub pipeline: Option<&'a str>,
    pub stage: Option<&'a str>,
    pub close_in: Option<&'a str>,
    pub id_field: Option<&'a str>,
    pub company_field: Option<&'a str>,
    pub create_missing_company: Option<bool>,
    pub company_cache_ttl: Option<&'a str>,
    pub opportunity_type: Option<&'a str>,
    pub batch_size: Option<u32>,
    pub slow_down_at: Option<f64>,
    pub owners: Option<&'a RawOwners>,
}

impl RawCrm<'_> {
    /// The keys given, for refusing them on a destination that is not a CRM.
    pub fn given(&self) -> Vec<&'static str> {
        [
            ("object", self.object.is_some()),
            ("pipeline", self.pipeline.is_some()),
            ("stage", self.stage.is_some()),
            ("close_in", self.close_in.is_some()),
            ("id_field", self.id_field.is_some()),
            ("company_field", self.company_field.is_some()),
            (
                "create_missing_company",
                self.create_missing_company.is_some(),
            ),
            ("company_cache_ttl", self.company_cache_ttl.is_some()),
            ("opportunity_type", self.opportunity_type.is_some()),
            ("batch_size", self.batch_size.is_some()),
            ("slow_down_at", self.slow_down_at.is_some()),
            ("owners", self.owners.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }
}

/// HubSpot's largest batch.
pub const HUBSPOT_BATCH_MAX: usize = 100;

/// The settings of a `vendor` destination from `raw`; each problem goes to `fail` with
/// the key (relative to the destination) it is about.
pub fn build(vendor: Vendor, raw: &RawCrm<'_>, fail: &mut dyn FnMut(&str, String)) -> CrmSettings {
    let hubspot = vendor == Vendor::HubSpot;
    let object = match (vendor, raw.object) {
        (_, None) | (Vendor::HubSpot, Some("deal")) | (Vendor::Salesforce, Some("opportunity")) => {
            CrmObject::Deal
        }
        (_, Some("task")) => CrmObject::Task,
        (_, Some(other)) => {
            let deal = if hubspot { "deal" } else { "opportunity" };
            fail("object", format!("{other:?} is not {deal} or task"));
            CrmObject::Deal
        }
    };
    let mut only = |key: &str, given: bool, vendor_name: &str| {
        if given {
            fail(key, format!("only a {vendor_name} destination takes it"));
        }
    };
    if hubspot {
        only(
            "opportunity_type",
            raw.opportunity_type.is_some(),
            "salesforce",
        );
    } else {
        only("pipeline", raw.pipeline.is_some(), "hubspot");
        only(
            "create_missing_company",
            raw.create_missing_company.is_some(),
            "hubspot",
        );
    }
    let mut duration = |key: &str, text: Option<&str>, default: Duration| match text {
        None => default,
        Some(text) => match humantime::parse_duration(text) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                fail(key, "must be more than zero".into());
                default
            }
            Err(e) => {
                fail(
                    key,
                    format!("{text:?} is not a duration like 45d or 10m: {e}"),
                );
                default
            }
        },
    };
    let day = Duration::from_secs(86_400);
    let close_in = duration("close_in", raw.close_in, day * 45);
    let company_ttl = duration("company_cache_ttl", raw.company_cache_ttl, day / 144);
    // Deals go through a batch endpoint (HubSpot's batch upsert, Salesforce's sObject
    // Collections); tasks are one request each.
    let batch_max = match (hubspot, object) {
        (true, CrmObject::Deal) => HUBSPOT_BATCH_MAX,
        (false, CrmObject::Deal) => super::salesforce::COLLECTION_MAX,
        (_, CrmObject::Task) => 1,
    };
    let batch_size = match raw.batch_size {
        None => batch_max,
        Some(n) if n >= 1 && n as usize <= batch_max => n as usize,
        Some(_) if batch_max == 1 => {
            fail(
                "batch_size",
                "tasks are sent one at a time: give 1 or leave it out".into(),
            );
            1
        }
        Some(_) => {
            fail("batch_size", format!("must be from 1 to {batch_max}"));
            batch_max
        }
    };
    let mut field = |key: &str, value: Option<&str>, default: &str| {
        let value = value.unwrap_or(default);
        if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c == '/') {
            fail(key, format!("{value:?} is not a property or field name"));
        }
        value.to_owned()
    };
    let (id_default, company_default) = if hubspot {
        ("radar_opportunity_id", "radar_account_id")
    } else {
        ("Radar_Opportunity_Id__c", "Radar_Account_Id__c")
    };
    let id_field = field("id_field", raw.id_field, id_default);
    let company_field = field("company_field", raw.company_field, company_default);
    let slow_down_at = match raw.slow_down_at {
        None => 0.8,
        Some(share) if share > 0.0 && share <= 1.0 => share,
        Some(_) => {
            fail(
                "slow_down_at",
                "a share of the daily API allocation, above 0 and at most 1 (e.g. 0.8)".into(),
            );
            0.8
        }
    };
    let owners = raw.owners.cloned().unwrap_or_default();
    let mut routing = |key: &str, raw: Option<RawRouting>| match raw {
        None => Routing::CompanyOwner,
        Some(RawRouting::One(text)) if text == COMPANY_OWNER => Routing::CompanyOwner,
        Some(RawRouting::One(id)) if !id.trim().is_empty() => Routing::Fixed(id),
        Some(RawRouting::Many(ids))
            if !ids.is_empty() && ids.iter().all(|id| !id.trim().is_empty()) =>
        {
            Routing::Spread(ids)
        }
        Some(_) => {
            fail(
                key,
                format!("give an owner id, \"{COMPANY_OWNER}\", or a non-empty list of owner ids"),
            );
            Routing::CompanyOwner
        }
    };
    let cs = routing("owners.cs", owners.cs);
    let sales = routing("owners.sales", owners.sales);
    CrmSettings {
        object,
        pipeline: raw.pipeline.unwrap_or("default").to_owned(),
        stage: raw
            .stage
            .unwrap_or(if hubspot {
                "appointmentscheduled"
            } else {
                "Prospecting"
            })
            .to_owned(),
        close_in,
        id_field,
        company_field,
        create_missing_company: raw.create_missing_company.unwrap_or(false),
        company_ttl,
        opportunity_type: raw
            .opportunity_type
            .unwrap_or("Existing Customer - Upgrade")
            .to_owned(),
        batch_size,
        slow_down_at,
        cs,
        sales,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(vendor: Vendor, raw: &RawCrm<'_>) -> (CrmSettings, Vec<String>) {
        let mut found = Vec::new();
        let settings = build(vendor, raw, &mut |key, message| {
            found.push(format!("{key}: {message}"))
        });
        (settings, found)
    }

    #[test]
    fn defaults_make_a_deal_in_the_default_pipeline_owned_by_the_company_owner() {
        let (hubspot, found) = errors(Vendor::HubSpot, &RawCrm::default());
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(hubspot.object, CrmObject::Deal);
        assert_eq!(
            (hubspot.pipeline.as_str(), hubspot.stage.as_str()),
            ("default", "appointmentscheduled")
        );
        assert_eq!(hubspot.close_in, Duration::from_secs(45 * 86_400));
        assert_eq!(hubspot.company_ttl, Duration::from_secs(600));
        assert_eq!(hubspot.batch_size, 100);
        assert_eq!(hubspot.cs, Routing::CompanyOwner);
        let (salesforce, _) = errors(Vendor::Salesforce, &RawCrm::default());
        assert_eq!(salesforce.id_field, "Radar_Opportunity_Id__c");
        assert_eq!(salesforce.batch_size, 200);
    }

    #[test]
    fn owners_take_an_id_a_list_or_the_company_owner() {
        let owners = RawOwners {
            cs: Some(RawRouting::One("1001".into())),
            sales: Some(RawRouting::Many(vec!["7".into(), "8".into()])),
        };
        let (settings, found) = errors(
            Vendor::HubSpot,
            &RawCrm {
                owners: Some(&owners),
                ..RawCrm::default()
            },
        );
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(settings.cs, Routing::Fixed("1001".into()));
        assert_eq!(
            settings.sales,
            Routing::Spread(vec!["7".into(), "8".into()])
        );
    }

    #[test]
    fn every_mistake_is_named_by_its_key() {
        let owners = RawOwners {
            cs: Some(RawRouting::Many(vec![])),
            sales: Some(RawRouting::One(" ".into())),
        };
        let (_, found) = errors(
            Vendor::Salesforce,
            &RawCrm {
                object: Some("deal"),
                pipeline: Some("default"),
                create_missing_company: Some(true),
                close_in: Some("soon"),
                company_cache_ttl: Some("0s"),
                batch_size: Some(500),
                id_field: Some("has space"),
                owners: Some(&owners),
                ..RawCrm::default()
            },
        );
        let keys: Vec<&str> = found
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "object",
                "pipeline",
                "create_missing_company",
                "close_in",
                "company_cache_ttl",
                "batch_size",
                "id_field",
                "owners.cs",
                "owners.sales"
            ],
            "{found:#?}"
        );
        assert!(found[0].contains("is not opportunity or task"), "{found:?}");
    }
}
