//! Asking the group's other members for an account this instance does not hold. The
//! members come from the group's description, where anything that joins the group can
//! name any address, so: only addresses the delivery SSRF guard allows are asked (the pod
//! network through `admin.peer_networks`), every request is signed and every answer must
//! prove it comes from an instance that knows the peer token ([`crate::peer_auth`]), and
//! whatever fails is refused, never relayed.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use radar_delivery::guard::{Guard, GuardedResolver};
use radar_kafka::Peers;
use secrecy::SecretString;

use crate::peer_auth::{self, PROOF_HEADER, REQUEST_HEADER};

/// How long a peer may take to answer for an account.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// The group's other members, and how to ask them.
#[derive(Debug)]
pub struct Lookup {
    peers: Arc<Peers>,
    client: reqwest::Client,
    token: SecretString,
    guard: Arc<Guard>,
}

/// The time now, in milliseconds since the epoch, as peer requests are stamped.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Lookup {
    /// Asks `peers` with requests signed by `token`, at addresses `guard` allows (names
    /// resolved through it).
    pub fn new(peers: Arc<Peers>, token: SecretString, guard: Guard) -> reqwest::Result<Lookup> {
        let guard = Arc::new(guard);
        let client = reqwest::Client::builder()
            .timeout(PEER_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
            .build()?;
        Ok(Lookup {
            peers,
            client,
            token,
            guard,
        })
    }

    /// Asks the other members (those holding partitions) for the account, all at once;
    /// the first that holds its state and proves it is a peer answers. `None` if none
    /// does.
    pub async fn ask(&self, id: &str) -> Option<Response> {
        let peers = self.peers.clone();
        let others = match tokio::task::spawn_blocking(move || peers.others()).await {
            Ok(Ok(others)) => others,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "admin: listing the group's members");
                return None;
            }
            Err(_) => return None,
        };
        let mut asked = tokio::task::JoinSet::new();
        for peer in others {
            let Ok(mut url) = reqwest::Url::parse(&format!("http://{peer}/v1/accounts/")) else {
                continue;
            };
            if let Ok(mut path) = url.path_segments_mut() {
                path.pop_if_empty().push(id);
            }
            url.set_query(Some("local=true"));
            // An address literal is judged here; a name by the resolver, on what it
            // resolves to.
            let literal = url.host_str().and_then(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<IpAddr>()
                    .ok()
            });
            if literal.is_some_and(|ip| !self.guard.permits(ip)) {
                tracing::warn!(
                    peer = %peer,
                    "admin: a group member advertises an internal address outside admin.peer_networks; not asked"
                );
                continue;
            }
            let host = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            let path = format!("{}?local=true", url.path());
            let signed = peer_auth::sign(&self.token, &host, &path, now_ms());
            let (client, token) = (self.client.clone(), self.token.clone());
            asked.spawn(async move {
                let response = client
                    .get(url)
                    .header(REQUEST_HEADER, &signed.header)
                    .send()
                    .await
                    .map_err(|e| tracing::debug!(peer = %peer, error = %e, "admin: asking a peer"))
                    .ok()?;
                if response.status() != reqwest::StatusCode::OK {
                    return None;
                }
                let proof = response
                    .headers()
                    .get(PROOF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = response.bytes().await.ok()?;
                if !proof.is_some_and(|proof| peer_auth::proven(&token, &signed, &body, &proof)) {
                    tracing::warn!(
                        peer = %peer,
                        "admin: a group member answered without proof that it knows the peer token; refused"
                    );
                    return None;
                }
                let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
                // An instance with only recent opportunities does not hold the state.
                body.get("stream_time")?;
                Some((peer, body))
            });
        }
        while let Some(joined) = asked.join_next().await {
            if let Ok(Some((peer, body))) = joined {
                let answered_by = header::HeaderValue::from_str(&peer).ok()?;
                let mut response = Json(body).into_response();
                response.headers_mut().insert(
                    header::HeaderName::from_static("radar-answered-by"),
                    answered_by,
                );
                return Some(response);
            }
        }
        None
    }
}
