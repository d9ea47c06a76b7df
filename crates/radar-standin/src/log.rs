//! The request log: every request a stand-in answered, with the status it got.
//!
//! It is a middleware outside everything else, so requests refused for authentication,
//! rate limits or a malformed body are logged too: a test can then assert that a client
//! stopped after a 401, or backed off after a 429.

use std::sync::{Arc, Mutex, PoisonError};

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::Request;

/// Bodies above this are refused: no CRM request of Radar's comes near it, and the
/// stand-in must not buffer without bound.
const MAX_BODY: usize = 8 * 1024 * 1024;

/// std `Mutex`: each section is one push or one clone, never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct RequestLog(Mutex<Vec<Request>>);

impl RequestLog {
    pub(crate) fn snapshot(&self) -> Vec<Request> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, request: Request) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

/// Buffers the body (handlers get it back whole), runs the request, logs it with its status.
///
/// The entry is pushed before the response leaves, so a client that has its answer always
/// finds its request in the log.
pub(crate) async fn record(
    State(log): State<Arc<RequestLog>>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        let status = StatusCode::PAYLOAD_TOO_LARGE;
        log.push(Request {
            method,
            path,
            status: status.as_u16(),
            body: Value::Null,
        });
        return status.into_response();
    };
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    let response = next
        .run(axum::extract::Request::from_parts(parts, Body::from(bytes)))
        .await;
    log.push(Request {
        method,
        path,
        status: response.status().as_u16(),
        body,
    });
    response
}
