//! The portal's schema: object types, the properties each declares, and how HubSpot checks
//! a property value before it writes it.
//!
//! The portal is the one Radar documents for its operators: HubSpot's default deal pipeline,
//! plus the custom `radar_*` properties, of which `radar_account_id` (companies) and
//! `radar_opportunity_id` (deals and tasks) are declared with unique values, the only kind
//! HubSpot accepts as an `idProperty`
//! (<https://developers.hubspot.com/docs/api/crm/properties>: `hasUniqueValue`).
//!
//! A company's `domain` is deliberately *not* unique: HubSpot uses it to deduplicate in its
//! own tools, but the API neither enforces it nor accepts it as an `idProperty` (two
//! companies may share a domain).

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate};
use serde_json::{Map, Value, json};

/// The CRM object types the stand-in holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum ObjectType {
    Company,
    Deal,
    Task,
}

impl ObjectType {
    /// A path segment as HubSpot accepts it: the plural name, the singular, or the type id.
    pub(super) fn parse(segment: &str) -> Option<Self> {
        match segment.to_ascii_lowercase().as_str() {
            "companies" | "company" | "0-2" => Some(Self::Company),
            "deals" | "deal" | "0-3" => Some(Self::Deal),
            "tasks" | "task" | "0-27" => Some(Self::Task),
            _ => None,
        }
    }

    pub(super) fn singular(self) -> &'static str {
        match self {
            Self::Company => "company",
            Self::Deal => "deal",
            Self::Task => "task",
        }
    }

    /// HubSpot's object type id, as its error messages name types.
    pub(super) fn type_id(self) -> &'static str {
        match self {
            Self::Company => "0-2",
            Self::Deal => "0-3",
            Self::Task => "0-27",
        }
    }

    /// Ids of each type come from their own range, so an id of the wrong type (a deal id
    /// where a company id belongs) is an unknown id here instead of a lucky match.
    pub(super) fn first_id(self) -> u64 {
        match self {
            Self::Company => 9_000_001,
            Self::Deal => 7_000_001,
            Self::Task => 8_000_001,
        }
    }

    /// The property HubSpot stamps with the creation time on this type.
    pub(super) fn created_property(self) -> &'static str {
        match self {
            Self::Company | Self::Deal => "createdate",
            Self::Task => "hs_createdate",
        }
    }

    fn properties(self) -> &'static [Property] {
        match self {
            Self::Company => COMPANY,
            Self::Deal => DEAL,
            Self::Task => TASK,
        }
    }

    pub(super) fn property(self, name: &str) -> Option<&'static Property> {
        self.properties().iter().find(|p| p.name == name)
    }

    /// Whether `name` may be an `idProperty` of this type: `hs_object_id` (the record id)
    /// or a property declared with unique values.
    pub(super) fn is_unique(self, name: &str) -> bool {
        name == "hs_object_id" || self.property(name).is_some_and(|p| p.unique)
    }

    /// Properties a new record must have. The deals guide requires a `dealstage` (the
    /// pipeline defaults to `default`); the tasks guide marks `hs_timestamp` required.
    pub(super) fn required_on_create(self) -> &'static [&'static str] {
        match self {
            Self::Company => &[],
            Self::Deal => &["dealstage"],
            Self::Task => &["hs_timestamp"],
        }
    }

    /// Properties HubSpot fills in on create when they are missing.
    pub(super) fn defaults(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Deal => &[("pipeline", "default")],
            Self::Company | Self::Task => &[],
        }
    }
}

#[derive(Debug)]
pub(super) struct Property {
    name: &'static str,
    kind: Kind,
    unique: bool,
}

#[derive(Debug)]
enum Kind {
    Text,
    Number,
    /// HubSpot date and datetime properties: epoch milliseconds or ISO 8601.
    DateTime,
    Enumeration(&'static [&'static str]),
    /// `hubspot_owner_id`: an owner of the portal.
    Owner,
}

const fn property(name: &'static str, kind: Kind) -> Property {
    Property {
        name,
        kind,
        unique: false,
    }
}

const fn unique(name: &'static str) -> Property {
    Property {
        name,
        kind: Kind::Text,
        unique: true,
    }
}

/// The default sales pipeline's stage ids, which the API takes (never the labels).
pub(super) const DEFAULT_STAGES: &[&str] = &[
    "appointmentscheduled",
    "qualifiedtobuy",
    "presentationscheduled",
    "decisionmakerboughtin",
    "contractsent",
    "closedwon",
    "closedlost",
];

const COMPANY: &[Property] = &[
    property("name", Kind::Text),
    property("domain", Kind::Text),
    property("website", Kind::Text),
    property("description", Kind::Text),
    property("industry", Kind::Text),
    property("phone", Kind::Text),
    property("city", Kind::Text),
    property("country", Kind::Text),
    property("hubspot_owner_id", Kind::Owner),
    unique("radar_account_id"),
];

const DEAL: &[Property] = &[
    property("dealname", Kind::Text),
    property("amount", Kind::Number),
    property("closedate", Kind::DateTime),
    property("pipeline", Kind::Enumeration(&["default"])),
    property("dealstage", Kind::Enumeration(DEFAULT_STAGES)),
    property("hubspot_owner_id", Kind::Owner),
    property("description", Kind::Text),
    unique("radar_opportunity_id"),
    property("radar_account_id", Kind::Text),
    property("radar_tier", Kind::Text),
    property("radar_score", Kind::Number),
    property("radar_expansion_score", Kind::Number),
    property("radar_playbook", Kind::Text),
    property("radar_kind", Kind::Text),
];

/// The tasks guide's properties (<https://developers.hubspot.com/docs/api/crm/tasks>),
/// with the options HubSpot's task properties carry, plus Radar's custom properties.
const TASK: &[Property] = &[
    property("hs_timestamp", Kind::DateTime),
    property("hs_task_subject", Kind::Text),
    property("hs_task_body", Kind::Text),
    property(
        "hs_task_status",
        Kind::Enumeration(&[
            "NOT_STARTED",
            "IN_PROGRESS",
            "WAITING",
            "COMPLETED",
            "DEFERRED",
        ]),
    ),
    property(
        "hs_task_priority",
        Kind::Enumeration(&["NONE", "LOW", "MEDIUM", "HIGH"]),
    ),
    property(
        "hs_task_type",
        Kind::Enumeration(&["EMAIL", "CALL", "TODO"]),
    ),
    property("hs_task_reminders", Kind::DateTime),
    property("hubspot_owner_id", Kind::Owner),
    unique("radar_opportunity_id"),
    property("radar_account_id", Kind::Text),
    property("radar_tier", Kind::Text),
    property("radar_score", Kind::Number),
    property("radar_expansion_score", Kind::Number),
    property("radar_playbook", Kind::Text),
    property("radar_kind", Kind::Text),
];

/// One property HubSpot refused, in the shape of the entries its "Property values were not
/// valid" message lists.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Invalid {
    pub(super) name: String,
    pub(super) error: &'static str,
    pub(super) message: String,
}

impl Invalid {
    pub(super) fn new(name: &str, error: &'static str, message: String) -> Self {
        Self {
            name: name.to_owned(),
            error,
            message,
        }
    }

    fn entry(&self) -> Value {
        json!({
            "isValid": false,
            "message": self.message,
            "error": self.error,
            "name": self.name,
            "localizedErrorMessage": self.message,
        })
    }

    /// The item of an error body's `errors` array: `message`, `code` and `context`, which
    /// the error-handling guide says CRM object errors carry.
    pub(super) fn detail(&self) -> Value {
        json!({
            "message": self.message,
            "code": self.error,
            "context": { "propertyName": [self.name] },
        })
    }
}

/// HubSpot's message for refused property values: the refused entries as a JSON array.
pub(super) fn invalid_message(invalid: &[Invalid]) -> String {
    let entries: Vec<Value> = invalid.iter().map(Invalid::entry).collect();
    format!("Property values were not valid: {}", Value::Array(entries))
}

/// Checks `input` against the type's properties; returns the values as HubSpot stores them
/// (strings), or every refused property.
///
/// `null` clears a property (stored as an empty string, as HubSpot returns a cleared value).
pub(super) fn validate(
    object_type: ObjectType,
    input: &Map<String, Value>,
    owners: &BTreeSet<String>,
) -> Result<Map<String, Value>, Vec<Invalid>> {
    let mut stored = Map::new();
    let mut invalid = Vec::new();
    for (name, value) in input {
        let Some(property) = object_type.property(name) else {
            invalid.push(Invalid::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
            continue;
        };
        match check(property, value, owners) {
            Ok(text) => {
                stored.insert(name.clone(), Value::String(text));
            }
            Err(error) => invalid.push(error),
        }
    }
    if invalid.is_empty() {
        Ok(stored)
    } else {
        Err(invalid)
    }
}

fn check(property: &Property, value: &Value, owners: &BTreeSet<String>) -> Result<String, Invalid> {
    let name = property.name;
    let text = match value {
        Value::Null => return Ok(String::new()),
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Array(_) | Value::Object(_) => {
            return Err(Invalid::new(
                name,
                "INVALID_VALUE",
                format!("{value} is not a valid value for property {name}"),
            ));
        }
    };
    if text.is_empty() {
        return Ok(text);
    }
    match &property.kind {
        Kind::Text => Ok(text),
        Kind::Number => match text.trim().parse::<f64>() {
            Ok(number) if number.is_finite() => Ok(text),
            _ => Err(Invalid::new(
                name,
                "INVALID_FLOAT",
                format!("{text} was not a valid number."),
            )),
        },
        Kind::DateTime if is_date(&text) => Ok(text),
        Kind::DateTime => Err(Invalid::new(
            name,
            "INVALID_DATE",
            format!(
                "{text} is not a valid date: use epoch milliseconds or ISO 8601 (YYYY-MM-DD or a UTC datetime)"
            ),
        )),
        Kind::Enumeration(options) if options.contains(&text.as_str()) => Ok(text),
        Kind::Enumeration(options) => Err(Invalid::new(
            name,
            "INVALID_OPTION",
            format!(
                "{text} was not one of the allowed options: [{}]",
                options.join(", ")
            ),
        )),
        Kind::Owner if owners.contains(&text) => Ok(text),
        Kind::Owner => Err(Invalid::new(
            name,
            "INVALID_OWNER_ID",
            format!("{text} is not a valid owner id"),
        )),
    }
}

/// Epoch milliseconds, a `YYYY-MM-DD` date, or an RFC 3339 datetime.
fn is_date(text: &str) -> bool {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_ok())
        || NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
        || DateTime::parse_from_rfc3339(text).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners() -> BTreeSet<String> {
        BTreeSet::from(["1001".to_owned()])
    }

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn valid_deal_properties_are_stored_as_strings() {
        let stored = validate(
            ObjectType::Deal,
            &props(json!({
                "dealname": "Acme expansion",
                "amount": 12000.5,
                "closedate": "2026-03-31",
                "pipeline": "default",
                "dealstage": "qualifiedtobuy",
                "hubspot_owner_id": "1001",
                "radar_score": "0.87",
            })),
            &owners(),
        )
        .unwrap();
        assert_eq!(stored["amount"], "12000.5");
        assert_eq!(stored["dealstage"], "qualifiedtobuy");
    }

    #[test]
    fn every_refused_property_is_reported() {
        let invalid = validate(
            ObjectType::Deal,
            &props(json!({
                "dealstage": "Qualified",
                "amount": "lots",
                "closedate": "31/03/2026",
                "hubspot_owner_id": "42",
                "colour": "red",
            })),
            &owners(),
        )
        .unwrap_err();
        let mut errors: Vec<_> = invalid.iter().map(|i| (i.name.as_str(), i.error)).collect();
        errors.sort_unstable();
        assert_eq!(
            errors,
            vec![
                ("amount", "INVALID_FLOAT"),
                ("closedate", "INVALID_DATE"),
                ("colour", "PROPERTY_DOESNT_EXIST"),
                ("dealstage", "INVALID_OPTION"),
                ("hubspot_owner_id", "INVALID_OWNER_ID"),
            ]
        );
    }

    #[test]
    fn dates_take_the_documented_forms() {
        assert!(is_date("1767225600000"));
        assert!(is_date("2026-01-01"));
        assert!(is_date("2026-01-01T00:00:00Z"));
        assert!(is_date("2026-01-01T00:00:00.000+02:00"));
        assert!(!is_date("2026-13-01"));
        assert!(!is_date("tomorrow"));
    }

    #[test]
    fn only_declared_unique_properties_identify_records() {
        assert!(ObjectType::Deal.is_unique("radar_opportunity_id"));
        assert!(ObjectType::Company.is_unique("radar_account_id"));
        assert!(ObjectType::Company.is_unique("hs_object_id"));
        assert!(!ObjectType::Company.is_unique("domain"));
        assert!(!ObjectType::Deal.is_unique("dealname"));
    }
}
