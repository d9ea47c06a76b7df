//! Salesforce's error responses: a JSON array of `{message, errorCode, fields}`
//! (<https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm>),
//! and inside an sObject Collections answer, a record's `errors`: `{statusCode, message,
//! fields}` (the Error object of the SOAP API's results, which the REST API serializes).

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One error of the array.
#[derive(Debug)]
pub(super) struct SfError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    fields: Option<Vec<String>>,
}

impl SfError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            fields: None,
        }
    }

    fn with_fields(mut self, fields: &[&str]) -> Self {
        self.fields = Some(fields.iter().map(|f| (*f).to_owned()).collect());
        self
    }

    /// 404 `NOT_FOUND`: no such record, sObject, or external ID field (the upsert guide's
    /// "incorrect external ID field" answer).
    pub(super) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource does not exist",
        )
    }

    /// 401 `INVALID_SESSION_ID`: the session or OAuth token is missing, wrong or expired.
    pub(super) fn invalid_session() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        )
    }

    /// 403 `REQUEST_LIMIT_EXCEEDED`: the org's API request limit is used up.
    pub(super) fn request_limit() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )
    }

    pub(super) fn invalid_field(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_FIELD", message)
    }

    pub(super) fn no_such_column(field: &str, sobject: &str) -> Self {
        Self::invalid_field(format!(
            "No such column '{field}' on sobject of type {sobject}"
        ))
    }

    pub(super) fn json_parser(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "JSON_PARSER_ERROR", message)
    }

    /// A value of the wrong type for its field, as Salesforce's JSON parser words it.
    pub(super) fn cannot_deserialize(kind: &str, value: &Value) -> Self {
        Self::json_parser(format!(
            "Cannot deserialize instance of {kind} from {value} or request may be missing a required field"
        ))
    }

    pub(super) fn required_missing(fields: &[&str]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "REQUIRED_FIELD_MISSING",
            format!("Required fields are missing: [{}]", fields.join(", ")),
        )
        .with_fields(fields)
    }

    /// An id that is not a well-formed id of the field's type.
    pub(super) fn malformed_id(field: &str, label: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MALFORMED_ID",
            format!("{label} ID: id value of incorrect type: {value}"),
        )
        .with_fields(&[field])
    }

    /// A well-formed id that names no record.
    pub(super) fn cross_reference(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_CROSS_REFERENCE_KEY",
            "invalid cross reference id",
        )
        .with_fields(&[field])
    }

    pub(super) fn duplicate_value(field: &str, id: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_VALUE",
            format!("duplicate value found: {field} duplicates value on record with id: {id}"),
        )
        .with_fields(&[])
    }

    /// 400 `EXCEEDED_ID_LIMIT`: an sObject Collections call with more than 200 records.
    pub(super) fn exceeded_id_limit() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    }

    /// A record of a collection without the external ID value the URL names.
    pub(super) fn missing_argument(field: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MISSING_ARGUMENT",
            format!("{field} not specified"),
        )
        .with_fields(&[field])
    }

    /// A record of a collection whose `attributes.type` is missing or another sObject's.
    pub(super) fn invalid_type(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_TYPE", message)
    }

    /// Two records of one collection with the same external ID value.
    pub(super) fn duplicate_external_id(field: &str, value: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "DUPLICATE_VALUE",
            format!("Duplicate external id specified: {value}"),
        )
        .with_fields(&[field])
    }

    /// A valid record of an `allOrNone` collection in which another record failed.
    pub(super) fn rolled_back() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using AllOrNone header",
        )
        .with_fields(&[])
    }

    /// An error a test injected ([`super::Salesforce::refuse_record`]): any code, e.g. a
    /// validation rule's `FIELD_CUSTOM_VALIDATION_EXCEPTION`.
    pub(super) fn refused(code: &str, message: &str) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: Cow::Owned(code.to_owned()),
            message: message.to_owned(),
            fields: Some(Vec::new()),
        }
    }

    /// The error as an item of a collection result's `errors`: `statusCode`, `message` and
    /// `fields` (always an array there).
    pub(super) fn result_entry(&self) -> Value {
        json!({
            "statusCode": self.code,
            "message": self.message,
            "fields": self.fields.clone().unwrap_or_default(),
        })
    }

    fn entry(&self) -> Value {
        let mut entry = json!({ "message": self.message, "errorCode": self.code });
        if let Some(fields) = &self.fields {
            entry["fields"] = json!(fields);
        }
        entry
    }
}

/// Several errors in one answer; the status is the first one's.
pub(super) fn render(errors: &[SfError]) -> Response {
    let status = errors
        .first()
        .map_or(StatusCode::BAD_REQUEST, |error| error.status);
    let body: Vec<Value> = errors.iter().map(SfError::entry).collect();
    (status, Json(Value::Array(body))).into_response()
}

impl IntoResponse for SfError {
    fn into_response(self) -> Response {
        render(&[self])
    }
}
