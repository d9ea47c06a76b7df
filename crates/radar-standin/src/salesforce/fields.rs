//! The org's schema: sObject types, their fields, and Salesforce ids.
//!
//! Standard fields are the ones Radar writes (Opportunity and Task, per the object
//! reference); any field ending in `__c` is taken as a custom field that exists, since an
//! org's custom fields are its own. External ID fields are custom fields, so only `__c`
//! fields identify records in `sobjects/{type}/{field}/{value}` URLs.

use chrono::NaiveDate;
use serde_json::Value;

use super::errors::SfError;

/// The sObject types the stand-in holds, plus `User` for owner ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SObjectType {
    Account,
    Opportunity,
    Task,
    User,
}

impl SObjectType {
    /// sObject names in URLs are case-insensitive.
    pub(super) fn parse(name: &str) -> Option<Self> {
        [Self::Account, Self::Opportunity, Self::Task, Self::User]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(name))
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Account => "Account",
            Self::Opportunity => "Opportunity",
            Self::Task => "Task",
            Self::User => "User",
        }
    }

    /// The three-character key prefix every id of this type starts with.
    pub(super) fn key_prefix(self) -> &'static str {
        match self {
            Self::Account => "001",
            Self::Opportunity => "006",
            Self::Task => "00T",
            Self::User => "005",
        }
    }

    pub(super) fn fields(self) -> &'static [Field] {
        match self {
            Self::Account => ACCOUNT,
            Self::Opportunity => OPPORTUNITY,
            Self::Task => TASK,
            Self::User => &[],
        }
    }

    /// The standard field named `name` (case-insensitively, as Salesforce matches names).
    pub(super) fn field(self, name: &str) -> Option<&'static Field> {
        self.fields()
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name))
    }

    /// Fields a new record must have: the object reference's non-nillable fields without
    /// defaults (Task's Status and Priority default, its owner is the running user).
    pub(super) fn required(self) -> &'static [&'static str] {
        match self {
            Self::Opportunity => &["Name", "StageName", "CloseDate"],
            Self::Account => &["Name"],
            Self::Task | Self::User => &[],
        }
    }

    /// Picklist defaults Salesforce applies on insert when a field is missing.
    pub(super) fn defaults(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Task => &[("Status", "Not Started"), ("Priority", "Normal")],
            Self::Account | Self::Opportunity | Self::User => &[],
        }
    }
}

/// Custom fields end in `__c`; the org's external ID fields are among them.
pub(super) fn is_custom(name: &str) -> bool {
    name.len() > 3 && name.ends_with("__c")
}

#[derive(Debug)]
pub(super) struct Field {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    /// `Id`: set by Salesforce, never written.
    Id,
    Text,
    Number,
    /// `YYYY-MM-DD`.
    Date,
    /// An id of one of these types.
    Reference(&'static [SObjectType]),
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

const ACCOUNT: &[Field] = &[
    field("Id", Kind::Id),
    field("Name", Kind::Text),
    field("OwnerId", Kind::Reference(&[SObjectType::User])),
    field("Type", Kind::Text),
    field("Industry", Kind::Text),
    field("Website", Kind::Text),
    field("Description", Kind::Text),
    field("Phone", Kind::Text),
];

const OPPORTUNITY: &[Field] = &[
    field("Id", Kind::Id),
    field("Name", Kind::Text),
    field("StageName", Kind::Text),
    field("CloseDate", Kind::Date),
    field("Amount", Kind::Number),
    field("Probability", Kind::Number),
    field("Type", Kind::Text),
    field("Description", Kind::Text),
    field("NextStep", Kind::Text),
    field("LeadSource", Kind::Text),
    field("AccountId", Kind::Reference(&[SObjectType::Account])),
    field("OwnerId", Kind::Reference(&[SObjectType::User])),
];

const TASK: &[Field] = &[
    field("Id", Kind::Id),
    field("Subject", Kind::Text),
    field("Description", Kind::Text),
    field("Status", Kind::Text),
    field("Priority", Kind::Text),
    field("ActivityDate", Kind::Date),
    field("OwnerId", Kind::Reference(&[SObjectType::User])),
    field(
        "WhatId",
        Kind::Reference(&[SObjectType::Account, SObjectType::Opportunity]),
    ),
];

/// The relationship that names a reference field's record by external ID in a body:
/// `Account` for `AccountId`, `What` for `WhatId` (polymorphic: it needs
/// `attributes.type`).
pub(super) fn relationship(sobject: SObjectType, name: &str) -> Option<&'static str> {
    match sobject {
        SObjectType::Opportunity if name.eq_ignore_ascii_case("Account") => Some("AccountId"),
        SObjectType::Task if name.eq_ignore_ascii_case("What") => Some("WhatId"),
        _ => None,
    }
}

/// Checks a scalar value for `field`; returns it as stored (numbers as JSON numbers).
pub(super) fn check(field: &Field, value: &Value) -> Result<Value, SfError> {
    let name = field.name;
    match (field.kind, value) {
        (Kind::Id, _) => Err(SfError::invalid_field(
            "The Id field should not be specified in the sobject data.",
        )),
        (_, Value::Null) => Ok(Value::Null),
        (Kind::Text, Value::String(_) | Value::Number(_) | Value::Bool(_)) => Ok(value.clone()),
        (Kind::Number, Value::Number(_)) => Ok(value.clone()),
        (Kind::Number, Value::String(text)) => text
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| SfError::cannot_deserialize("double", value)),
        (Kind::Date, Value::String(text))
            if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok() && text.len() == 10 =>
        {
            Ok(value.clone())
        }
        (Kind::Date, _) => Err(SfError::cannot_deserialize("date", value)),
        (Kind::Reference(_), Value::String(_)) => Ok(value.clone()),
        (Kind::Number, _) => Err(SfError::cannot_deserialize("double", value)),
        _ => Err(SfError::cannot_deserialize(name, value)),
    }
}

/// A Salesforce id's case-sensitive 15-character form, if `text` is a well-formed 15- or
/// 18-character id (the last three characters of an 18-character id are its checksum).
pub(super) fn id15(text: &str) -> Option<&str> {
    let well_formed =
        matches!(text.len(), 15 | 18) && text.bytes().all(|b| b.is_ascii_alphanumeric());
    if !well_formed {
        return None;
    }
    let (key, suffix) = text.split_at(15);
    (suffix.is_empty() || suffix == checksum(key)).then_some(key)
}

/// The 18-character id for a 15-character one: each five characters give one suffix
/// character, whose bits mark which of them are upper case.
pub(super) fn id18(key: &str) -> String {
    format!("{key}{}", checksum(key))
}

fn checksum(key: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    key.as_bytes()
        .chunks(5)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| b.is_ascii_uppercase())
                .fold(0usize, |bits, (i, _)| bits | (1 << i));
            char::from(ALPHABET[bits % ALPHABET.len()])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_checksum() {
        assert_eq!(id18("005000000000001"), "005000000000001AAA");
        // Salesforce's own example pair from its id documentation.
        assert_eq!(id18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(id15("001A0000006Vm9rIAC"), Some("001A0000006Vm9r"));
        assert_eq!(id15("001A0000006Vm9r"), Some("001A0000006Vm9r"));
        assert_eq!(id15("001A0000006Vm9rAAA"), None);
        assert_eq!(id15("acme"), None);
    }

    #[test]
    fn values_are_checked_by_kind() {
        let amount = SObjectType::Opportunity.field("amount").unwrap();
        assert_eq!(
            check(amount, &Value::from("1200.5")).unwrap(),
            Value::from(1200.5)
        );
        assert!(check(amount, &Value::from("lots")).is_err());
        let close = SObjectType::Opportunity.field("CloseDate").unwrap();
        assert!(check(close, &Value::from("2026-03-31")).is_ok());
        assert!(check(close, &Value::from("2026-03-31T00:00:00Z")).is_err());
        assert!(check(close, &Value::from(20_260_331)).is_err());
    }
}
