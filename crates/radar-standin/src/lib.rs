//! Local stand-ins of the HubSpot CRM API and the Salesforce REST API: real HTTP servers on
//! loopback that answer the way the vendors document, for Radar's contract tests and for
//! `radar demo --crm hubspot|salesforce`.
//!
//! They are written from the vendors' documentation, not from Radar's delivery clients, so
//! a test against them checks a client independently: a client that only works against its
//! own idea of the API fails here. Where the documentation is silent, each module says what
//! it chose and why.
//!
//! A stand-in keeps its records in memory, answers every request (faults included) with the
//! vendor's status code and error body, and logs every request with the status it got, so
//! tests can assert on what reached the "vendor" as well as on what it now holds.
//!
//! Modules:
//! - [`hubspot`]: CRM v3 objects (companies, deals, tasks), batch upsert by a unique
//!   property, batch read by record id or unique property (207 naming the ids not found),
//!   v4 default associations, HubSpot's error bodies and rate-limit policies (the
//!   ten-second burst limit and the daily limit, each reported in its
//!   `X-HubSpot-RateLimit-*` headers), and the OAuth token endpoint
//!   (`POST /oauth/2026-03/token`, and the deprecated `/oauth/v1/token`) refreshing
//!   expiring access tokens, with refresh-token rotation;
//! - [`salesforce`]: sObject rows by external ID (GET and upsert by PATCH) for Account,
//!   Opportunity and Task, sObject Collections upsert of up to 200 records in one call
//!   (with `allOrNone`), Salesforce's error arrays and limits (the daily API allocation
//!   reported in `Sforce-Limit-Info`), and the OAuth 2.0 token endpoint
//!   (`POST /services/oauth2/token`: JWT bearer, client credentials and refresh token
//!   grants) issuing expiring access tokens;
//! - `log`: the request log both share;
//! - `server`: binding on loopback, query strings and form bodies, bearer tokens, the
//!   clock and random token material.
//!
//! Both stand-ins accept, besides the static token they start with (which a test can
//! rotate), any access token their token endpoint issued that has not expired.

pub mod hubspot;
pub mod salesforce;

mod log;
mod server;

use serde_json::{Map, Value};

/// A record as a stand-in holds it: a HubSpot object or a Salesforce sObject.
#[derive(Clone, Debug, PartialEq)]
pub struct CrmRecord {
    /// The vendor's id: a numeric string for HubSpot, an 18-character id for Salesforce.
    pub id: String,
    /// HubSpot: the properties as stored (values are strings, as HubSpot keeps them);
    /// Salesforce: the fields, `Id` included.
    pub properties: Map<String, Value>,
    /// Whether the last write to this record created it: `false` once an update landed.
    pub created: bool,
}

/// One request a stand-in answered, in arrival order.
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// `GET`, `POST`, `PATCH`, ...
    pub method: String,
    /// Path with its query string, as sent.
    pub path: String,
    /// The status code the stand-in answered.
    pub status: u16,
    /// The request body as JSON; `Null` when empty, a JSON string when it was not JSON.
    pub body: Value,
}
