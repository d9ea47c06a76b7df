//! CRM destinations: an opportunity becomes an expansion deal (HubSpot) or Opportunity
//! (Salesforce) — or a task — on the customer's company, owned by the right person.
//!
//! Unlike a webhook, one delivery is a short conversation: find the company by the
//! account id (cached), choose the owner, upsert the record by the opportunity id (so a
//! repeat updates it), associate it. The vendor modules are pure (requests and what
//! answers mean); [`client`] holds the conversation.
//!
//! - [`config`]: the destination's CRM keys;
//! - [`routing`]: the owner of each team's records;
//! - [`allocation`]: the vendor's daily API allocation and the pace that keeps inside it;
//! - [`cache`]: companies found, for a TTL;
//! - [`hubspot`], [`salesforce`]: the vendors' requests and answers;
//! - [`client`]: delivering a batch.

pub mod allocation;
pub mod cache;
pub mod client;
pub mod config;
pub mod hubspot;
pub mod routing;
pub mod salesforce;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::CloseDateError;
use radar_core::Opportunity;

pub use client::CrmClient;

/// A HubSpot company or Salesforce Account, as far as Radar needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Company {
    /// The CRM's own record id.
    pub id: String,
    /// Its owner's id, when it has one.
    pub owner: Option<String>,
}

/// The expected close date: the opportunity's time plus the expected cycle, as a date.
/// From the opportunity's time, not the clock, so a repeat writes the same date.
pub fn close_date(opportunity: &Opportunity, close_in: Duration) -> Result<String, CloseDateError> {
    let at = DateTime::parse_from_rfc3339(&opportunity.occurred_at).map_err(|source| {
        CloseDateError::OccurredAt {
            occurred_at: opportunity.occurred_at.to_string(),
            source,
        }
    })?;
    let close_in =
        chrono::Duration::from_std(close_in).map_err(|_| CloseDateError::TooLong(close_in))?;
    let close = at
        .with_timezone(&Utc)
        .checked_add_signed(close_in)
        .ok_or(CloseDateError::OutOfRange)?;
    Ok(close.format("%Y-%m-%d").to_string())
}
