//! What the stand-ins' HTTP tests share: sending a request and reading its answer, as a
//! client sees it.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test binary uses a part

use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// The answer to `request`: its status, headers and JSON body (`Null` when empty; a body
/// that is not JSON fails the test).
pub async fn answer(request: RequestBuilder) -> (StatusCode, HeaderMap, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (status, headers, body)
}

/// [`answer`] without the headers.
pub async fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let (status, _, body) = answer(request).await;
    (status, body)
}

/// The value of header `name`, which must be there.
pub fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}
