//! Sending one request to a destination and classifying what came back: the SSRF check
//! of literal addresses, sensitive headers, the destination's timeout, and errors told
//! apart (timeout, refused by the guard, connection) without ever printing the URL. Shared
//! by single-request destinations and the CRM clients, which read the answer's body.

use std::time::Duration;

use reqwest::Client;
use reqwest::header::{HeaderName, HeaderValue};

use crate::clock::Clock;
use crate::guard::{Guard, Refused};
use crate::payload::HttpRequest;
use crate::retry::{AttemptResult, parse_retry_after};

/// The most of an answer's body read: CRM answers are small, and a receiver that streams
/// without end must not fill the memory.
const MAX_BODY: usize = 1 << 20;

/// What a destination answered.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    /// Empty unless asked for; cut at [`MAX_BODY`].
    pub body: Vec<u8>,
    /// The answer's headers (a CRM reports its API allocation in them).
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    /// The answer as an attempt's result, by its status alone.
    pub fn result(&self) -> AttemptResult {
        AttemptResult::Response {
            status: self.status,
            retry_after: self.retry_after,
        }
    }
}

/// Sends `request` within `timeout`; reads the body when `read_body`. An error is the
/// attempt's result: the request never got an answer.
pub async fn send(
    client: &Client,
    guard: &Guard,
    timeout: Duration,
    request: HttpRequest,
    read_body: bool,
    clock: Clock,
) -> Result<Answer, AttemptResult> {
    // Literal addresses never reach the resolver: check them here.
    let literal = match request.url.host() {
        Some(url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal
        && !guard.permits(ip)
    {
        return Err(AttemptResult::Refused(format!(
            "{ip} is internal and not allow-listed"
        )));
    }
    let mut builder = client
        .request(request.method, request.url)
        .timeout(timeout)
        .body(request.body);
    for (name, value) in request.headers {
        let Ok(mut value) = HeaderValue::from_str(&value) else {
            return Err(AttemptResult::Unsendable(format!(
                "header {name} is not a valid value"
            )));
        };
        value.set_sensitive(name == "authorization");
        builder = builder.header(HeaderName::from_static(name), value);
    }
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            return AttemptResult::Timeout;
        }
        // Without the URL: a Slack URL is itself a secret, and errors end up in logs and
        // the dead-letter store.
        match refused(&e) {
            Some(refused) => AttemptResult::Refused(refused.to_string()),
            None => AttemptResult::Connection(error_chain(&e.without_url())),
        }
    };
    let mut response = builder.send().await.map_err(classify)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, clock.wall()));
    let headers = response.headers().clone();
    let mut body = Vec::new();
    if read_body {
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            let room = MAX_BODY.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
    }
    Ok(Answer {
        status,
        retry_after,
        body,
        headers,
    })
}

fn refused<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = e.source();
    }
    None
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(e) = current {
        text.push_str(": ");
        text.push_str(&e.to_string());
        current = e.source();
    }
    text
}
