//! HubSpot's endpoints, each as documented; the references are on each handler.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, extract};
use serde_json::{Map, Value, json};

use super::errors::{self, ApiError};
use super::schema::{self, Invalid, ObjectType};
use super::{HubSpotServer, Object, State as Portal, Verdict};
use crate::server;

/// The request's correlation id: in every error body and in `X-HubSpot-Correlation-Id`.
#[derive(Clone, Debug)]
pub(super) struct Correlation(pub(super) String);

/// HubSpot's batch endpoints take at most 100 inputs.
pub(super) const MAX_BATCH: usize = 100;

/// Authentication, faults and rate limits for every request, before any endpoint; answers
/// carry the correlation id and the rate-limit headers (see the module documentation of
/// [`super`]).
pub(super) async fn gate(
    State(shared): State<Arc<HubSpotServer>>,
    mut request: extract::Request,
    next: Next,
) -> Response {
    let correlation = shared.correlation_id();
    request
        .extensions_mut()
        .insert(Correlation(correlation.clone()));
    let (verdict, limits) = shared.admit(server::bearer(request.headers()));
    let mut response = match verdict {
        Verdict::Pass => next.run(request).await,
        Verdict::Unauthenticated(message) => errors::unauthenticated(&correlation, message),
        Verdict::Expired(at) => errors::expired(&correlation, at),
        Verdict::Limited(policy, retry_after) => {
            errors::rate_limited(&correlation, policy, retry_after)
        }
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        headers.insert(HeaderName::from_static("x-hubspot-correlation-id"), value);
    }
    limits.write(headers);
    response
}

pub(super) async fn unknown_route(Extension(correlation): Extension<Correlation>) -> Response {
    ApiError::not_found().render(&correlation.0)
}

pub(super) fn respond(correlation: &Correlation, result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|error| error.render(&correlation.0))
}

pub(super) fn object_type(segment: &str) -> Result<ObjectType, ApiError> {
    ObjectType::parse(segment)
        .ok_or_else(|| ApiError::validation(format!("Unable to infer object type from: {segment}")))
}

pub(super) fn json_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ApiError::bad_json(format!(
            "expected an object, got {other}"
        ))),
        Err(err) => Err(ApiError::bad_json(err)),
    }
}

/// An id as HubSpot takes it in JSON: a string, or a number for numeric ids.
pub(super) fn id_of(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(id) if !id.is_empty() => Some(id.clone()),
        Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

/// A record as HubSpot answers it: `properties` holds `only` (requested properties,
/// `null` when unset) or every stored one, always with `hs_object_id` and the create and
/// modify stamps.
pub(super) fn render(
    object_type: ObjectType,
    object: &Object,
    only: Option<&[String]>,
) -> Map<String, Value> {
    let mut properties = Map::new();
    match only {
        Some(names) => {
            for name in names {
                let value = object.properties.get(name).cloned().unwrap_or(Value::Null);
                properties.insert(name.clone(), value);
            }
        }
        None => properties.extend(object.properties.clone()),
    }
    let created_at = server::timestamp(object.created_at);
    let updated_at = server::timestamp(object.updated_at);
    properties.insert("hs_object_id".into(), object.id.clone().into());
    properties.insert(
        object_type.created_property().into(),
        created_at.clone().into(),
    );
    properties.insert("hs_lastmodifieddate".into(), updated_at.clone().into());
    let mut rendered = Map::new();
    rendered.insert("id".into(), object.id.clone().into());
    rendered.insert("properties".into(), Value::Object(properties));
    rendered.insert("createdAt".into(), created_at.into());
    rendered.insert("updatedAt".into(), updated_at.into());
    rendered.insert("archived".into(), false.into());
    rendered
}

/// `GET /crm/v3/objects/{type}/{id}`: the record whose id, or whose `idProperty` value,
/// is `{id}`; 404 `OBJECT_NOT_FOUND` when there is none.
///
/// `idProperty` must be a property with unique values (or `hs_object_id`): HubSpot looks
/// records up only by those (companies guide, "Retrieve companies"), so `domain` is
/// refused. `properties` (comma-separated, repeatable) narrows the answer; HubSpot ignores
/// names it does not know.
pub(super) async fn get_object(
    State(shared): State<Arc<HubSpotServer>>,
    Extension(correlation): Extension<Correlation>,
    Path((segment, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let result = (|| {
        let object_type = object_type(&segment)?;
        let id_property =
            server::query_value(&uri, "idProperty").unwrap_or_else(|| "hs_object_id".to_owned());
        if !object_type.is_unique(&id_property) {
            return Err(ApiError::validation(format!(
                "Unable to perform lookup by non-unique {} property {id_property}",
                object_type.type_id()
            )));
        }
        let requested: Vec<String> = server::query_pairs(&uri)
            .into_iter()
            .filter(|(key, _)| key == "properties")
            .flat_map(|(_, names)| {
                names
                    .split(',')
                    .map(str::trim)
                    .filter(|name| !name.is_empty() && object_type.property(name).is_some())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        let state = shared.lock();
        let index = state
            .find(object_type, &id_property, &id)
            .ok_or_else(ApiError::not_found)?;
        let object = &state.objects(object_type)[index];
        let only = (!requested.is_empty()).then_some(requested.as_slice());
        Ok(Json(Value::Object(render(object_type, object, only))).into_response())
    })();
    respond(&correlation, result)
}

/// `POST /crm/v3/objects/{type}`: `{"properties": {..}, "associations": [..]}` → 201
/// with the record.
///
/// Unique values stay unique (409 `CONFLICT` naming the existing record). Each association
/// must name an existing company with a type id HubSpot defines from this type to
/// companies (task → company 192; deal → company 341, or 5 for the primary company, per
/// the association type table); anything else is a 400 and nothing is created.
pub(super) async fn create_object(
    State(shared): State<Arc<HubSpotServer>>,
    Extension(correlation): Extension<Correlation>,
    Path(segment): Path<String>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let object_type = object_type(&segment)?;
        let body = json_object(&body)?;
        let Some(Value::Object(input)) = body.get("properties") else {
            return Err(ApiError::bad_json("`properties` must be an object"));
        };
        let associations = match body.get("associations") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(_) => return Err(ApiError::bad_json("`associations` must be an array")),
        };
        let mut state = shared.lock();
        let mut properties = schema::validate(object_type, input, &state.owners)
            .map_err(|invalid| ApiError::invalid_properties(&invalid))?;
        let missing = missing_required(object_type, &properties);
        if !missing.is_empty() {
            return Err(ApiError::invalid_properties(&missing));
        }
        for (name, value) in object_type.defaults() {
            properties.entry(*name).or_insert_with(|| (*value).into());
        }
        if let Some((property, value, existing)) =
            state.unique_conflict(object_type, &properties, None)
        {
            return Err(ApiError::conflict(
                object_type.singular(),
                &property,
                &value,
                &existing,
            ));
        }
        let companies = associations
            .iter()
            .map(|association| inline_association(&state, object_type, association))
            .collect::<Result<Vec<_>, _>>()?;
        let object = state.insert(object_type, properties).clone();
        for company in &companies {
            state.associate(object_type, &object.id, company);
        }
        drop(state);
        if object_type == ObjectType::Deal {
            shared.publish(vec![object.record()]);
        }
        let body = Value::Object(render(object_type, &object, None));
        Ok((StatusCode::CREATED, Json(body)).into_response())
    })();
    respond(&correlation, result)
}

/// The company id an inline association of a new record points at, if HubSpot would make
/// it.
fn inline_association(
    state: &Portal,
    from: ObjectType,
    association: &Value,
) -> Result<String, ApiError> {
    let to = id_of(association.pointer("/to/id"))
        .ok_or_else(|| ApiError::bad_json("each association needs `to.id`"))?;
    let Some(Value::Array(types)) = association.get("types") else {
        return Err(ApiError::bad_json("each association needs `types`"));
    };
    for spec in types {
        let category = spec.get("associationCategory").and_then(Value::as_str);
        let type_id = spec.get("associationTypeId").and_then(Value::as_u64);
        let to_company = matches!(
            (from, category, type_id),
            (ObjectType::Task, Some("HUBSPOT_DEFINED"), Some(192))
                | (ObjectType::Deal, Some("HUBSPOT_DEFINED"), Some(5 | 341))
        );
        if !to_company {
            return Err(ApiError::validation(format!(
                "Association type {spec} from {} to object {to} is not a valid association to a company",
                from.singular()
            ))
            .with("context", json!({ "toObjectId": [to] })));
        }
    }
    if state
        .find(ObjectType::Company, "hs_object_id", &to)
        .is_none()
    {
        return Err(ApiError::validation(format!(
            "Cannot associate to company {to}: no company has that id"
        ))
        .with("context", json!({ "toObjectId": [to] })));
    }
    Ok(to)
}

fn missing_required(object_type: ObjectType, properties: &Map<String, Value>) -> Vec<Invalid> {
    object_type
        .required_on_create()
        .iter()
        .filter(|name| {
            properties
                .get(**name)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        })
        .map(|name| {
            Invalid::new(
                name,
                "REQUIRED_PROPERTY",
                format!(
                    "Property \"{name}\" is required to create a {}",
                    object_type.singular()
                ),
            )
        })
        .collect()
}

/// One input of a batch upsert.
struct UpsertInput {
    id: String,
    id_property: String,
    properties: Map<String, Value>,
    trace: Option<String>,
}

/// What one input comes to: `(validated properties, existing record)` or why not.
type UpsertOutcome = Result<(Map<String, Value>, Option<usize>), Vec<Invalid>>;

/// `POST /crm/v3/objects/{type}/batch/upsert`: creates or updates each input's record by
/// its `idProperty` value (upsert reference,
/// <https://developers.hubspot.com/docs/api-reference/latest/crm/objects/deals/batch/upsert-deals>).
///
/// - At most 100 inputs; an `idProperty` that is not unique, an input without `id`, or the
///   same `id` twice refuse the whole batch with 400 (as HubSpot refuses duplicate ids).
/// - Per-input problems (refused properties, a new record missing a required property, an
///   injected failure) follow HubSpot's multi-status rule (error-handling guide, "Multi-
///   status errors"): when every failing input carries an `objectWriteTraceId`, the others
///   are written and the answer is 207 with `errors` (each naming its
///   `context.objectWriteTraceId`) and `numErrors`; otherwise the whole batch is 400 and
///   nothing is written.
/// - Updates merge properties; results carry `new` and echo `objectWriteTraceId`.
pub(super) async fn batch_upsert(
    State(shared): State<Arc<HubSpotServer>>,
    Extension(correlation): Extension<Correlation>,
    Path(segment): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let result = (|| {
        let object_type = object_type(&segment)?;
        let started = server::timestamp(server::now());
        let inputs = upsert_inputs(object_type, &json_object(&body)?, &uri)?;
        let mut state = shared.lock();
        let outcomes: Vec<UpsertOutcome> = inputs
            .iter()
            .map(|input| upsert_outcome(&mut state, object_type, input))
            .collect();
        let blocking = inputs
            .iter()
            .zip(&outcomes)
            .find(|(input, outcome)| outcome.is_err() && input.trace.is_none());
        if let Some((_, Err(invalid))) = blocking {
            return Err(ApiError::invalid_properties(invalid));
        }
        let mut results = Vec::new();
        let mut failures = Vec::new();
        let mut published = Vec::new();
        for (input, outcome) in inputs.into_iter().zip(outcomes) {
            let (properties, existing) = match outcome {
                Ok(ok) => ok,
                Err(invalid) => {
                    failures.push(json!({
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": schema::invalid_message(&invalid),
                        "context": { "objectWriteTraceId": [input.trace] },
                        "errors": invalid.iter().map(Invalid::detail).collect::<Vec<_>>(),
                    }));
                    continue;
                }
            };
            let object = match existing {
                Some(index) => state.update(object_type, index, properties),
                None => state.insert(object_type, properties),
            };
            let mut rendered = render(object_type, object, None);
            rendered.insert("new".into(), existing.is_none().into());
            if let Some(trace) = input.trace {
                rendered.insert("objectWriteTraceId".into(), trace.into());
            }
            if object_type == ObjectType::Deal {
                published.push(object.record());
            }
            results.push(Value::Object(rendered));
        }
        drop(state);
        shared.publish(published);
        Ok(batch_answer(&started, results, failures))
    })();
    respond(&correlation, result)
}

/// The batch's inputs, or why HubSpot would refuse the whole batch.
fn upsert_inputs(
    object_type: ObjectType,
    body: &Map<String, Value>,
    uri: &Uri,
) -> Result<Vec<UpsertInput>, ApiError> {
    let Some(Value::Array(items)) = body.get("inputs") else {
        return Err(ApiError::bad_json("`inputs` must be an array"));
    };
    if items.len() > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "Batch input size {} exceeds the limit of {MAX_BATCH} inputs",
            items.len()
        )));
    }
    let default_id_property = server::query_value(uri, "idProperty");
    let mut inputs: Vec<UpsertInput> = Vec::with_capacity(items.len());
    for item in items {
        let id = id_of(item.get("id"))
            .ok_or_else(|| ApiError::bad_json("each input needs an `id`: the idProperty value"))?;
        let id_property = item
            .get("idProperty")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| default_id_property.clone())
            .ok_or_else(|| ApiError::validation("Each input needs an `idProperty` to upsert by"))?;
        if id_property == "hs_object_id" || !object_type.is_unique(&id_property) {
            return Err(ApiError::validation(format!(
                "Unable to perform update/upsert by non-unique {} property {id_property}",
                object_type.type_id()
            )));
        }
        let properties = match item.get("properties") {
            Some(Value::Object(properties)) => properties.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(_) => return Err(ApiError::bad_json("`properties` must be an object")),
        };
        let trace = match item.get("objectWriteTraceId") {
            Some(Value::String(trace)) => Some(trace.clone()),
            _ => None,
        };
        inputs.push(UpsertInput {
            id,
            id_property,
            properties,
            trace,
        });
    }
    let mut ids: Vec<(&str, &str)> = inputs
        .iter()
        .map(|input| (input.id_property.as_str(), input.id.as_str()))
        .collect();
    ids.sort_unstable();
    if let Some(pair) = ids.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(ApiError::validation(format!(
            "Duplicate IDs found in batch input: [{}]. IDs must be unique",
            pair[0].1
        )));
    }
    Ok(inputs)
}

fn upsert_outcome(
    state: &mut Portal,
    object_type: ObjectType,
    input: &UpsertInput,
) -> UpsertOutcome {
    if let Some(at) = state.faults.fail_inputs.iter().position(|v| *v == input.id) {
        state.faults.fail_inputs.remove(at);
        return Err(vec![Invalid::new(
            &input.id_property,
            "INVALID_VALUE",
            format!(
                "Write of {}={} refused (a failure injected by the stand-in)",
                input.id_property, input.id
            ),
        )]);
    }
    let mut properties = schema::validate(object_type, &input.properties, &state.owners)?;
    let own = properties.get(&input.id_property).and_then(Value::as_str);
    if own.is_some_and(|own| own != input.id) {
        return Err(vec![Invalid::new(
            &input.id_property,
            "INVALID_VALUE",
            format!(
                "Property {} in `properties` differs from the input's id {}",
                input.id_property, input.id
            ),
        )]);
    }
    properties.insert(input.id_property.clone(), input.id.clone().into());
    let existing = state.find(object_type, &input.id_property, &input.id);
    if existing.is_none() {
        let missing = missing_required(object_type, &properties);
        if !missing.is_empty() {
            return Err(missing);
        }
        for (name, value) in object_type.defaults() {
            properties.entry(*name).or_insert_with(|| (*value).into());
        }
    }
    if let Some((property, value, holder)) =
        state.unique_conflict(object_type, &properties, existing)
    {
        return Err(vec![Invalid::new(
            &property,
            "INVALID_VALUE",
            format!(
                "{value} already has that value: record {holder} holds unique property {property}"
            ),
        )]);
    }
    Ok((properties, existing))
}

/// `POST /crm/v4/associations/{from}/{to}/batch/associate/default`: associates each
/// `{from: {id}, to: {id}}` with the default (unlabeled) type, from deals or tasks to
/// companies (v4 associations reference,
/// <https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/batch/create-associations>).
///
/// Results carry `associationSpec` `HUBSPOT_DEFINED` with the unlabeled type id from
/// HubSpot's table: 341 deal → company, 192 task → company. Associating twice keeps one
/// association. An input naming an unknown record gets an `errors` entry (207).
pub(super) async fn associate_default(
    State(shared): State<Arc<HubSpotServer>>,
    Extension(correlation): Extension<Correlation>,
    Path((from, to)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = (|| {
        let from_type = object_type(&from)?;
        let to_type = object_type(&to)?;
        let type_id = match (from_type, to_type) {
            (ObjectType::Deal, ObjectType::Company) => 341,
            (ObjectType::Task, ObjectType::Company) => 192,
            _ => {
                return Err(ApiError::validation(format!(
                    "The stand-in holds no default association from {from} to {to}"
                )));
            }
        };
        let started = server::timestamp(server::now());
        let body = json_object(&body)?;
        let Some(Value::Array(inputs)) = body.get("inputs") else {
            return Err(ApiError::bad_json("`inputs` must be an array"));
        };
        if inputs.len() > MAX_BATCH {
            return Err(ApiError::validation(format!(
                "Batch input size {} exceeds the limit of {MAX_BATCH} inputs",
                inputs.len()
            )));
        }
        // Shape first, so a malformed input refuses the batch before anything is written.
        let pairs = inputs
            .iter()
            .map(|input| {
                let from_id = id_of(input.pointer("/from/id"))
                    .ok_or_else(|| ApiError::bad_json("each input needs `from.id`"))?;
                let to_id = id_of(input.pointer("/to/id"))
                    .ok_or_else(|| ApiError::bad_json("each input needs `to.id`"))?;
                Ok((from_id, to_id))
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let mut state = shared.lock();
        let mut results = Vec::new();
        let mut failures = Vec::new();
        for (from_id, to_id) in pairs {
            let missing = [
                (from_type, &from_id, "fromObjectId"),
                (to_type, &to_id, "toObjectId"),
            ]
            .into_iter()
            .find(|(t, id, _)| state.find(*t, "hs_object_id", id).is_none());
            if let Some((missing_type, id, key)) = missing {
                failures.push(json!({
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": format!("No {} with ID {id} exists", missing_type.singular()),
                    "context": { key: [id] },
                }));
                continue;
            }
            state.associate(from_type, &from_id, &to_id);
            results.push(json!({
                "from": { "id": from_id },
                "to": { "id": to_id },
                "associationSpec": {
                    "associationCategory": "HUBSPOT_DEFINED",
                    "associationTypeId": type_id,
                },
            }));
        }
        drop(state);
        Ok(batch_answer(&started, results, failures))
    })();
    respond(&correlation, result)
}

/// A batch endpoint's answer: 200 with the results, or 207 Multi-Status with the errors
/// beside them when some inputs failed.
pub(super) fn batch_answer(started: &str, results: Vec<Value>, failures: Vec<Value>) -> Response {
    let mut answer = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": started,
        "completedAt": server::timestamp(server::now()),
    });
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        answer["numErrors"] = failures.len().into();
        answer["errors"] = Value::Array(failures);
        StatusCode::MULTI_STATUS
    };
    (status, Json(answer)).into_response()
}
