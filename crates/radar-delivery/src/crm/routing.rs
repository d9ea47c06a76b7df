//! Who owns an opportunity in the CRM: the core says which team (`cs` or `sales`, by
//! the account's ARR against the configured threshold); each CRM destination maps the
//! team to owners — fixed, the company's own owner, or spread over a list. Pure.

use radar_core::Opportunity;
use radar_core::opportunity::Owner;

use super::Company;
use super::config::{CrmSettings, Routing};

/// The owner chosen for one opportunity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routed {
    /// `cs` or `sales`.
    pub team: &'static str,
    /// How the owner was chosen (a metric label).
    pub routing: &'static str,
    /// The CRM's owner id; none leaves the CRM's default.
    pub owner: Option<String>,
}

/// The routing of the opportunity's team.
pub fn routing_for<'a>(settings: &'a CrmSettings, opportunity: &Opportunity) -> &'a Routing {
    match opportunity.owner {
        Owner::Cs => &settings.cs,
        Owner::Sales => &settings.sales,
    }
}

/// The owner of `opportunity`, whose company (when it was looked up) is `company`.
pub fn route(
    settings: &CrmSettings,
    opportunity: &Opportunity,
    company: Option<&Company>,
) -> Routed {
    let routing = routing_for(settings, opportunity);
    let owner = match routing {
        Routing::CompanyOwner => company.and_then(|c| c.owner.clone()),
        Routing::Fixed(id) => Some(id.clone()),
        Routing::Spread(ids) => {
            let at = stable_hash(opportunity.opportunity_id.as_bytes()) % ids.len() as u64;
            ids.get(at as usize).cloned()
        }
    };
    Routed {
        team: crate::payload::owner(opportunity.owner),
        routing: routing.label(),
        owner,
    }
}

/// FNV-1a: the same on every instance and every build, unlike std's hasher.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::config::{RawCrm, Vendor, build};
    use crate::payload::tests::opportunity;

    fn settings(cs: Routing, sales: Routing) -> CrmSettings {
        let mut settings = build(Vendor::HubSpot, &RawCrm::default(), &mut |_, _| {});
        settings.cs = cs;
        settings.sales = sales;
        settings
    }

    #[test]
    fn each_team_gets_its_own_routing() {
        let company = Company {
            id: "9001".into(),
            owner: Some("55".into()),
        };
        let mut o = opportunity();
        let s = settings(Routing::Fixed("11".into()), Routing::CompanyOwner);
        assert_eq!(
            route(&s, &o, Some(&company)),
            Routed {
                team: "sales",
                routing: "company_owner",
                owner: Some("55".into())
            }
        );
        o.owner = Owner::Cs;
        assert_eq!(route(&s, &o, Some(&company)).owner.as_deref(), Some("11"));
        assert_eq!(route(&s, &o, Some(&company)).team, "cs");
        let unowned = Company {
            owner: None,
            ..company
        };
        o.owner = Owner::Sales;
        assert_eq!(route(&s, &o, Some(&unowned)).owner, None);
    }

    #[test]
    fn a_list_spreads_evenly_and_keeps_an_opportunity_with_its_owner() {
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let s = settings(Routing::CompanyOwner, Routing::Spread(ids.clone()));
        let mut counts = std::collections::HashMap::new();
        let mut o = opportunity();
        for i in 0..3_000 {
            o.opportunity_id = format!("{i:032x}").as_str().into();
            let first = route(&s, &o, None).owner.unwrap();
            assert_eq!(route(&s, &o, None).owner.unwrap(), first);
            *counts.entry(first).or_insert(0) += 1;
        }
        for id in &ids {
            let n = counts[id];
            assert!((800..1_200).contains(&n), "{counts:?}");
        }
    }
}
