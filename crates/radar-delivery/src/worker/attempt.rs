//! One HTTP attempt of a single-request destination (a webhook, Slack), classified. A
//! CRM destination's attempts are batches, made by [`crate::crm::CrmClient`].

use radar_core::Opportunity;
use reqwest::Client;

use crate::clock::Clock;
use crate::error::RequestError;
use crate::guard::Guard;
use crate::http;
use crate::payload;
use crate::queue::Delivery;
use crate::retry::AttemptResult;
use crate::settings::Destination;

/// Sends `delivery` to `destination`, and classifies the answer.
pub(super) async fn attempt(
    client: &Client,
    destination: &Destination,
    guard: &Guard,
    delivery: &Delivery,
    clock: Clock,
) -> AttemptResult {
    let opportunity: Opportunity = match serde_json::from_slice(&delivery.opportunity) {
        Ok(o) => o,
        Err(e) => return AttemptResult::Unsendable(RequestError::Opportunity(e).to_string()),
    };
    let request = match payload::build(
        destination,
        &opportunity,
        &delivery.opportunity,
        clock.wall(),
    ) {
        Ok(request) => request,
        Err(e) => return AttemptResult::Unsendable(e.to_string()),
    };
    match http::send(client, guard, destination.timeout, request, false, clock).await {
        Ok(answer) => answer.result(),
        Err(result) => result,
    }
}
