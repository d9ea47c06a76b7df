//! HubSpot's error bodies.
//!
//! The common shape (<https://developers.hubspot.com/docs/api-reference/error-handling>):
//! `status`, `message`, `correlationId`, `category`, and for CRM objects an `errors` array
//! of `message` / `code` / `context`. HubSpot says to treat every field as optional; the
//! stand-in always sends the first four so a client's logs have them.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use super::RateLimit;
use super::schema::{Invalid, invalid_message};
use crate::server;

/// An error HubSpot answers for a whole request.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    category: &'static str,
    message: String,
    extra: Map<String, Value>,
}

impl ApiError {
    fn new(status: StatusCode, category: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            extra: Map::new(),
        }
    }

    pub(super) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// Refused property values, with HubSpot's message and the per-property details.
    pub(super) fn invalid_properties(invalid: &[Invalid]) -> Self {
        let details = invalid.iter().map(Invalid::detail).collect();
        Self::validation(invalid_message(invalid)).with("errors", Value::Array(details))
    }

    /// A body that is not the JSON the endpoint takes.
    pub(super) fn bad_json(reason: impl std::fmt::Display) -> Self {
        Self::validation(format!("Invalid input JSON: {reason}"))
    }

    pub(super) fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OBJECT_NOT_FOUND",
            "resource not found",
        )
    }

    /// A unique property value some record already holds. HubSpot answers 409 `CONFLICT`
    /// and names the existing record ("Contact already exists. Existing ID: 123" is the
    /// documented contact form), so a client can resolve the conflict to that record.
    pub(super) fn conflict(singular: &str, property: &str, value: &str, existing: &str) -> Self {
        let mut kind = singular.to_owned();
        if let Some(first) = kind.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        Self::new(
            StatusCode::CONFLICT,
            "CONFLICT",
            format!(
                "{kind} already exists. Existing ID: {existing} (unique property {property} already has value \"{value}\")"
            ),
        )
    }

    pub(super) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_owned(), value);
        self
    }

    pub(super) fn render(self, correlation: &str) -> Response {
        let mut body = Map::new();
        body.insert("status".into(), "error".into());
        body.insert("message".into(), self.message.into());
        body.insert("correlationId".into(), correlation.into());
        body.insert("category".into(), self.category.into());
        body.extend(self.extra);
        (self.status, Json(Value::Object(body))).into_response()
    }
}

/// 401 for a missing or wrong token.
pub(super) fn unauthenticated(correlation: &str, message: &str) -> Response {
    ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_AUTHENTICATION", message).render(correlation)
}

/// 401 for an expired token, as HubSpot answers it: category `EXPIRED_AUTHENTICATION`,
/// how long ago it expired, and the expiry time in `context`.
pub(super) fn expired(correlation: &str, at: DateTime<Utc>) -> Response {
    let ago = (server::now() - at).num_seconds().max(0);
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "EXPIRED_AUTHENTICATION",
        format!("The OAuth token used to make this call expired {ago} second(s) ago."),
    )
    .with("context", json!({ "expire time": [server::timestamp(at)] }))
    .render(correlation)
}

/// 429 with the policy that ran out (`policyName`), per HubSpot's usage guidelines
/// (<https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines>).
///
/// The body carries both `errorType: RATE_LIMIT` (the usage guidelines' example) and
/// `category: RATE_LIMITS` (the error-response changelog), so a client may key on either.
/// HubSpot documents no `Retry-After` for API clients; a test can ask for one to check a
/// client that honours it.
pub(super) fn rate_limited(
    correlation: &str,
    policy: RateLimit,
    retry_after: Option<u64>,
) -> Response {
    let (name, message) = match policy {
        RateLimit::TenSecondly => (
            "TEN_SECONDLY_ROLLING",
            "You have reached your ten_secondly_rolling limit.",
        ),
        RateLimit::Daily => ("DAILY", "You have reached your daily limit."),
    };
    let body = json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "category": "RATE_LIMITS",
        "correlationId": correlation,
        "policyName": name,
    });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}
