//! `POST /crm/v3/objects/{type}/batch/read`: up to 100 records by record id or by a unique
//! property (batch read reference,
//! <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects>).
//!
//! What HubSpot documents:
//! - the body is `{"inputs": [{"id": ..}], "idProperty": .., "properties": [..],
//!   "propertiesWithHistory": [..]}`; without `idProperty` the ids are record ids
//!   (`hs_object_id`), with it they are values of that unique property;
//! - the answer is a batch response: `status`, `results` (records as the single GET
//!   answers them, `id` always the record id), `startedAt`, `completedAt`, and, when some
//!   inputs failed, 207 Multi-Status with `numErrors` and `errors`;
//! - the records' order is not promised.
//!
//! What the stand-in chose:
//! - ids that match no record make one `errors` entry, category `OBJECT_NOT_FOUND`, with
//!   every such id in `context.ids` and HubSpot's wording ("Could not get some COMPANY
//!   objects, they may be deleted or not exist. Check that ids are valid."); all ids
//!   missing is 207 with no results, not 404;
//! - results come in request order (clients must not rely on it); an id given twice, or
//!   two ids naming one record, yield that record once;
//! - an `idProperty` that is not unique (or does not exist) is 400 `VALIDATION_ERROR`, as
//!   in the single GET; `properties` names HubSpot does not know are ignored, as there; no
//!   `properties` returns every stored one; `propertiesWithHistory` and `archived` are
//!   ignored (the stand-in archives nothing);
//! - more than 100 inputs, or an input without an `id`, refuse the whole batch with 400.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::HubSpotServer;
use super::errors::ApiError;
use super::handlers::{
    Correlation, MAX_BATCH, batch_answer, id_of, json_object, object_type, render, respond,
};
use super::schema::ObjectType;
use crate::server;

/// What a batch read asks for.
#[derive(Debug)]
struct ReadRequest {
    id_property: String,
    ids: Vec<String>,
    /// Known property names asked for; `None`: every stored property.
    properties: Option<Vec<String>>,
}

pub(super) async fn batch_read(
    State(shared): State<Arc<HubSpotServer>>,
    Extension(correlation): Extension<Correlation>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let object_type = object_type(&segment)?;
        let started = server::timestamp(server::now());
        let request = read_request(object_type, &json_object(&body)?)?;
        let state = shared.lock();
        let mut results = Vec::new();
        let mut found: Vec<&str> = Vec::new();
        let mut missing: Vec<String> = Vec::new();
        for id in &request.ids {
            let object = state
                .find(object_type, &request.id_property, id)
                .and_then(|index| state.objects(object_type).get(index));
            match object {
                Some(object) if found.contains(&object.id.as_str()) => {}
                Some(object) => {
                    found.push(&object.id);
                    let only = request.properties.as_deref();
                    results.push(Value::Object(render(object_type, object, only)));
                }
                None if missing.contains(id) => {}
                None => missing.push(id.clone()),
            }
        }
        drop(state);
        let failures = if missing.is_empty() {
            Vec::new()
        } else {
            vec![json!({
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": format!(
                    "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
                    object_type.singular().to_ascii_uppercase()
                ),
                "context": { "ids": missing },
            })]
        };
        Ok(batch_answer(&started, results, failures))
    })();
    respond(&correlation, result)
}

/// The request's `idProperty`, ids and properties, or why HubSpot refuses the batch.
fn read_request(
    object_type: ObjectType,
    body: &Map<String, Value>,
) -> Result<ReadRequest, ApiError> {
    let Some(Value::Array(inputs)) = body.get("inputs") else {
        return Err(ApiError::bad_json("`inputs` must be an array"));
    };
    if inputs.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "Batch input size {} exceeds the limit of {MAX_BATCH} inputs",
            inputs.len()
        )));
    }
    let id_property = match body.get("idProperty") {
        None | Some(Value::Null) => "hs_object_id".to_owned(),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err(ApiError::bad_json("`idProperty` must be a property name")),
    };
    if !object_type.is_unique(&id_property) {
        return Err(ApiError::validation(format!(
            "Unable to perform lookup by non-unique {} property {id_property}",
            object_type.type_id()
        )));
    }
    let ids = inputs
        .iter()
        .map(|input| {
            id_of(input.get("id")).ok_or_else(|| ApiError::bad_json("each input needs an `id`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let properties = match body.get("properties") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => {
            let mut known: Vec<String> = Vec::new();
            for name in names {
                let Value::String(name) = name else {
                    return Err(ApiError::bad_json("`properties` must be property names"));
                };
                if object_type.property(name).is_some() && !known.contains(name) {
                    known.push(name.clone());
                }
            }
            (!known.is_empty()).then_some(known)
        }
        Some(_) => return Err(ApiError::bad_json("`properties` must be an array")),
    };
    Ok(ReadRequest {
        id_property,
        ids,
        properties,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn requests_are_read() {
        let request = read_request(
            ObjectType::Company,
            &body(json!({
                "idProperty": "radar_account_id",
                "inputs": [{ "id": "acme" }, { "id": 7 }],
                "properties": ["hubspot_owner_id", "colour", "hubspot_owner_id"],
            })),
        )
        .unwrap();
        assert_eq!(request.id_property, "radar_account_id");
        assert_eq!(request.ids, vec!["acme".to_owned(), "7".to_owned()]);
        assert_eq!(
            request.properties,
            Some(vec!["hubspot_owner_id".to_owned()])
        );

        let by_id = read_request(
            ObjectType::Deal,
            &body(json!({ "inputs": [{ "id": "7000001" }] })),
        )
        .unwrap();
        assert_eq!(by_id.id_property, "hs_object_id");
        assert_eq!(by_id.properties, None);
    }

    #[test]
    fn malformed_requests_are_refused() {
        let refused = |value: Value| read_request(ObjectType::Company, &body(value)).is_err();
        assert!(refused(json!({})));
        assert!(refused(json!({ "inputs": [{}] })));
        assert!(refused(json!({ "inputs": [], "idProperty": "domain" })));
        assert!(refused(json!({ "inputs": [], "idProperty": "colour" })));
        assert!(refused(json!({ "inputs": [], "properties": "name" })));
        let many: Vec<Value> = (0..101).map(|i| json!({ "id": i.to_string() })).collect();
        assert!(refused(json!({ "inputs": many })));
    }
}
