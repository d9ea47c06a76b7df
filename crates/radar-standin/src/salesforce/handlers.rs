//! Salesforce's endpoints, each as documented; the references are on each handler.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{self, Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::errors::{self, SfError};
use super::fields::{self, Field, Kind, SObjectType, id15};
use super::{DEFAULT_USER, SalesforceServer, State as Org};
use crate::{CrmRecord, server};

/// Authentication and limits for every request, before any endpoint; every answer carries
/// `Sforce-Limit-Info: api-usage=N/LIMIT`, as Salesforce's REST responses do.
pub(super) async fn gate(
    State(shared): State<Arc<SalesforceServer>>,
    request: extract::Request,
    next: Next,
) -> Response {
    let (verdict, (usage, limit)) = shared.admit(server::bearer(request.headers()));
    let mut response = match verdict {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    if let Ok(value) = HeaderValue::from_str(&format!("api-usage={usage}/{limit}")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("sforce-limit-info"), value);
    }
    response
}

pub(super) async fn unknown_route() -> Response {
    SfError::not_found().into_response()
}

/// The major number of a `vNN.N` path segment; any version from 20.0 on is served.
pub(super) fn api_version(segment: &str) -> Option<u32> {
    let (major, minor) = segment.strip_prefix('v')?.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    major.parse().ok().filter(|major| *major >= 20)
}

/// `GET sobjects/{type}/{field}/{value}?fields=A,B`: the record whose external ID `field`
/// is `value` (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_get_with_external_id.htm>).
///
/// The answer has `attributes` (`type`, `url`) and the requested fields (`null` when
/// unset), or every field without `fields`. A field that is neither standard nor custom is
/// 400 `INVALID_FIELD`; no record, or a field that is not an external ID field, is 404
/// `NOT_FOUND`.
pub(super) async fn get_by_external_id(
    State(shared): State<Arc<SalesforceServer>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    uri: Uri,
) -> Response {
    let sobject = SObjectType::parse(&sobject).filter(|t| *t != SObjectType::User);
    let (Some(_), Some(sobject), true) =
        (api_version(&version), sobject, fields::is_custom(&field))
    else {
        return SfError::not_found().into_response();
    };
    let requested: Option<Vec<String>> = server::query_value(&uri, "fields").map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
            .collect()
    });
    if let Some(unknown) = requested
        .iter()
        .flatten()
        .find(|name| sobject.field(name).is_none() && !fields::is_custom(name))
    {
        return SfError::invalid_field(format!(
            "No such column '{unknown}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            sobject.name()
        ))
        .into_response();
    }
    let state = shared.lock();
    let Some(index) = state.find(sobject, &field, &value) else {
        return SfError::not_found().into_response();
    };
    let record = &state.records(sobject)[index];
    let mut answer = Map::new();
    answer.insert(
        "attributes".into(),
        json!({
            "type": sobject.name(),
            "url": format!("/services/data/{version}/sobjects/{}/{}", sobject.name(), record.id),
        }),
    );
    match requested {
        Some(names) => {
            for name in names {
                let stored = record
                    .fields
                    .iter()
                    .find(|(key, _)| key.eq_ignore_ascii_case(&name));
                let key = sobject.field(&name).map_or_else(
                    || stored.map_or(name.clone(), |(key, _)| key.clone()),
                    |field| field.name.to_owned(),
                );
                let value = stored.map_or(Value::Null, |(_, value)| value.clone());
                answer.insert(key, value);
            }
        }
        None => answer.extend(record.fields.clone()),
    }
    Json(Value::Object(answer)).into_response()
}

/// `PATCH sobjects/{Opportunity|Task}/{field}/{value}`: upsert by external ID
/// (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm>,
/// <https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_upsert_patch.htm>).
///
/// - No record has the value: one is created (the external ID set from the URL) → 201
///   `{"id", "success": true, "errors": [], "created": true}`; a missing required field is
///   400 `REQUIRED_FIELD_MISSING`.
/// - One record has it: its fields are updated (`null` clears) → 200 with
///   `"created": false` from API version 46.0, 204 with no body before it.
/// - The body must not hold `Id` or the URL's external ID field ("or an error is
///   generated"): 400 `INVALID_FIELD`. Unknown fields are 400 `INVALID_FIELD` ("No such
///   column"); values of the wrong type 400 `JSON_PARSER_ERROR`; ids of the wrong shape
///   400 `MALFORMED_ID`; well-formed ids of no record 400 `INVALID_CROSS_REFERENCE_KEY`.
/// - A relationship by external ID (`"Account": {"Radar_Account_Id__c": "acme"}`, or for
///   a Task's polymorphic `What` with `"attributes": {"type": "Account"}`) resolves to the
///   id field, or is 400 `INVALID_FIELD` "Foreign key external ID: … not found …".
/// - A value [`super::Salesforce::refuse_record`] refuses is 400 with the error set there.
pub(super) async fn upsert(
    State(shared): State<Arc<SalesforceServer>>,
    Path((version, sobject, field, value)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    let sobject = SObjectType::parse(&sobject)
        .filter(|t| matches!(t, SObjectType::Opportunity | SObjectType::Task));
    let (Some(major), Some(sobject), true) =
        (api_version(&version), sobject, fields::is_custom(&field))
    else {
        return SfError::not_found().into_response();
    };
    let body = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(body)) => body,
        Ok(other) => {
            return SfError::json_parser(format!(
                "Cannot deserialize instance of {} from {other}",
                sobject.name()
            ))
            .into_response();
        }
        Err(err) => return SfError::json_parser(err.to_string()).into_response(),
    };
    let outcome = upsert_record(&mut shared.lock(), sobject, &field, &value, &body);
    match outcome {
        Upserted::Written(record, created) => {
            let id = record.id.clone();
            if sobject == SObjectType::Opportunity {
                shared.publish(record);
            }
            let answer = json!({ "id": id, "success": true, "errors": [], "created": created });
            match (created, major >= 46) {
                (true, _) => (StatusCode::CREATED, Json(answer)).into_response(),
                (false, true) => Json(answer).into_response(),
                (false, false) => StatusCode::NO_CONTENT.into_response(),
            }
        }
        Upserted::Refused(errors, raced) => {
            if let Some(record) = raced {
                shared.publish(record);
            }
            errors::render(&errors)
        }
    }
}

/// What upserting one record came to.
#[derive(Debug)]
pub(super) enum Upserted {
    /// Stored: the record as it now is, and whether it was created.
    Written(CrmRecord, bool),
    /// Refused with these errors, nothing of the record written. The record is the one an
    /// injected race ([`super::Salesforce::duplicate_once`]) made, as another request's
    /// insert: it stands whatever becomes of this request.
    Refused(Vec<SfError>, Option<CrmRecord>),
}

/// Upserts one record of `sobject` whose external ID `field` is `value`, from `body` (its
/// fields, without the external ID): what both the single upsert and a collection's records
/// go through.
///
/// Salesforce's own checks come first (fields, types, references, required fields), then
/// validation rules (an error set by [`super::Salesforce::refuse_record`]), then the
/// write, which may lose an injected race.
pub(super) fn upsert_record(
    state: &mut Org,
    sobject: SObjectType,
    field: &str,
    value: &str,
    body: &Map<String, Value>,
) -> Upserted {
    let changes = match changes(state, sobject, field, body) {
        Ok(changes) => changes,
        Err(errors) => return Upserted::Refused(errors, None),
    };
    if let Some((code, message)) = state.faults.refused.get(value) {
        return Upserted::Refused(vec![SfError::refused(code, message)], None);
    }
    let existing = state.find(sobject, field, value);
    let injected = (sobject == SObjectType::Opportunity)
        .then(|| state.faults.duplicate_once.iter().position(|v| v == value))
        .flatten();
    if let Some(at) = injected {
        state.faults.duplicate_once.remove(at);
        let holder = existing.and_then(|index| state.records(sobject).get(index));
        if let Some(holder) = holder {
            let error = SfError::duplicate_value(field, &holder.id);
            return Upserted::Refused(vec![error], None);
        }
        return match create(state, sobject, field, value, changes) {
            Ok(record) => {
                let error = SfError::duplicate_value(field, &record.id);
                Upserted::Refused(vec![error], Some(record))
            }
            Err(error) => Upserted::Refused(vec![error], None),
        };
    }
    let written = match existing {
        None => create(state, sobject, field, value, changes).map(|record| (record, true)),
        Some(index) => update(state, sobject, index, changes).map(|record| (record, false)),
    };
    match written {
        Ok((record, created)) => Upserted::Written(record, created),
        Err(error) => Upserted::Refused(vec![error], None),
    }
}

/// Inserts a record from `changes`, with the URL's external ID, defaults and owner.
fn create(
    state: &mut Org,
    sobject: SObjectType,
    field: &str,
    value: &str,
    changes: Map<String, Value>,
) -> Result<CrmRecord, SfError> {
    let mut fields: Map<String, Value> =
        changes.into_iter().filter(|(_, v)| !v.is_null()).collect();
    let missing: Vec<&str> = sobject
        .required()
        .iter()
        .copied()
        .filter(|name| !fields.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(SfError::required_missing(&missing));
    }
    for (name, default) in sobject.defaults() {
        fields.entry(*name).or_insert_with(|| (*default).into());
    }
    fields
        .entry("OwnerId")
        .or_insert_with(|| DEFAULT_USER.into());
    fields.insert(field.to_owned(), value.into());
    state
        .insert(sobject, fields)
        .map(super::SObject::record)
        .ok_or_else(SfError::not_found)
}

/// Applies `changes` to the record at `index`: values replace, `null` clears, except on
/// required fields and the owner.
fn update(
    state: &mut Org,
    sobject: SObjectType,
    index: usize,
    changes: Map<String, Value>,
) -> Result<CrmRecord, SfError> {
    let cleared: Vec<&str> = sobject
        .required()
        .iter()
        .copied()
        .chain(["OwnerId"])
        .filter(|name| changes.get(*name).is_some_and(Value::is_null))
        .collect();
    if !cleared.is_empty() {
        return Err(SfError::required_missing(&cleared));
    }
    let record = state
        .records_mut(sobject)
        .and_then(|records| records.get_mut(index))
        .ok_or_else(SfError::not_found)?;
    for (name, value) in changes {
        if value.is_null() {
            record.fields.remove(&name);
        } else {
            record.fields.insert(name, value);
        }
    }
    record.created = false;
    Ok(record.record())
}

/// The body's fields as they will be stored (canonical names, relationships resolved to
/// ids), or every problem Salesforce would report.
fn changes(
    state: &Org,
    sobject: SObjectType,
    external_field: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<SfError>> {
    let mut changes = Map::new();
    let mut problems = Vec::new();
    for (name, value) in body {
        if name == "attributes" {
            continue;
        }
        if name.eq_ignore_ascii_case(external_field) {
            problems.push(SfError::invalid_field(format!(
                "The external ID field {external_field} is given in the URL: it must not be specified in the sobject data."
            )));
            continue;
        }
        if let Some(id_field) = fields::relationship(sobject, name) {
            if body.keys().any(|key| key.eq_ignore_ascii_case(id_field)) {
                problems.push(SfError::invalid_field(format!(
                    "Cannot specify both an external ID reference {name} and a salesforce id, {id_field}"
                )));
                continue;
            }
            match resolve(state, sobject, name, value) {
                Ok(id) => {
                    changes.insert(id_field.to_owned(), id.into());
                }
                Err(error) => problems.push(error),
            }
            continue;
        }
        let checked = match sobject.field(name) {
            Some(field) => fields::check(field, value)
                .and_then(|value| check_reference(state, field, value))
                .map(|value| (field.name.to_owned(), value)),
            None if fields::is_custom(name) => match value {
                Value::Array(_) | Value::Object(_) => Err(SfError::cannot_deserialize(name, value)),
                _ => Ok((name.clone(), value.clone())),
            },
            None => Err(SfError::no_such_column(name, sobject.name())),
        };
        match checked {
            Ok((name, value)) => {
                changes.insert(name, value);
            }
            Err(error) => problems.push(error),
        }
    }
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(problems)
    }
}

/// A reference field's id must be well formed, of an allowed type, and name a record.
fn check_reference(state: &Org, field: &Field, value: Value) -> Result<Value, SfError> {
    let (Kind::Reference(types), Some(id)) = (field.kind, value.as_str()) else {
        return Ok(value);
    };
    let label = field.name.strip_suffix("Id").unwrap_or(field.name);
    let target = id15(id).and_then(|key| types.iter().find(|t| key.starts_with(t.key_prefix())));
    let Some(target) = target else {
        return Err(SfError::malformed_id(field.name, label, id));
    };
    if !state.exists(*target, id) {
        return Err(SfError::cross_reference(field.name));
    }
    Ok(value)
}

/// The id of the record a relationship names by external ID:
/// `{"Radar_Account_Id__c": "acme"}`, with `attributes.type` for a polymorphic one.
fn resolve(
    state: &Org,
    sobject: SObjectType,
    name: &str,
    value: &Value,
) -> Result<String, SfError> {
    let Value::Object(reference) = value else {
        return Err(SfError::cannot_deserialize(name, value));
    };
    let declared = reference
        .get("attributes")
        .and_then(|attributes| attributes.get("type"))
        .and_then(Value::as_str);
    let declared_type =
        match declared {
            None => None,
            Some(declared) => Some(SObjectType::parse(declared).ok_or_else(|| {
                SfError::invalid_field(format!("No such sobject type: {declared}"))
            })?),
        };
    let target = match (sobject, declared_type) {
        (SObjectType::Opportunity, None | Some(SObjectType::Account)) => SObjectType::Account,
        (SObjectType::Task, Some(t @ (SObjectType::Account | SObjectType::Opportunity))) => t,
        (SObjectType::Task, None) => {
            return Err(SfError::invalid_field(format!(
                "The polymorphic foreign key {name} needs \"attributes\": {{\"type\": \"Account\"}} (or Opportunity)"
            )));
        }
        (_, Some(other)) => {
            return Err(SfError::invalid_field(format!(
                "{name} cannot reference {}",
                other.name()
            )));
        }
        (_, None) => return Err(SfError::no_such_column(name, sobject.name())),
    };
    let keys: Vec<(&String, &Value)> = reference
        .iter()
        .filter(|(key, _)| key.as_str() != "attributes")
        .collect();
    let [(external_field, external_value)] = keys.as_slice() else {
        return Err(SfError::invalid_field(format!(
            "The foreign key {name} must name exactly one external ID field"
        )));
    };
    let external_value = match external_value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        other => return Err(SfError::cannot_deserialize(external_field, other)),
    };
    if !fields::is_custom(external_field) {
        return Err(SfError::invalid_field(format!(
            "{external_field} is not an external ID field of {}",
            target.name()
        )));
    }
    state
        .find(target, external_field, &external_value)
        .map(|index| state.records(target)[index].id.clone())
        .ok_or_else(|| {
            SfError::invalid_field(format!(
                "Foreign key external ID: {external_value} not found for field {external_field} in entity {}",
                target.name()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read() {
        assert_eq!(api_version("v62.0"), Some(62));
        assert_eq!(api_version("v45.0"), Some(45));
        assert_eq!(api_version("62.0"), None);
        assert_eq!(api_version("v62"), None);
        assert_eq!(api_version("v2.0"), None);
    }
}
