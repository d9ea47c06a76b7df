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

use crate::metrics::Metrics;
use crate::peer_auth::{self, PROOF_HEADER, REQUEST_HEADER};

/// How long a peer may take to answer for an account.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// A warning of instances asking each other for an account: the label of
/// `radar_peer_problems_total`, counted beside each log line, since every lookup can
/// meet it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerProblem {
    /// A peer's signed request refused (on the instance asked).
    RequestRefused,
    /// The consumer group's members could not be listed.
    MembersUnlisted,
    /// A member advertises an internal address outside `admin.peer_networks`.
    InternalAddress,
    /// A member's answer was cut off or longer than the cap.
    AnswerTooLong,
    /// A member answered without proof that it knows the peer token.
    AnswerUnproven,
}

impl PeerProblem {
    pub const ALL: [PeerProblem; 5] = [
        PeerProblem::RequestRefused,
        PeerProblem::MembersUnlisted,
        PeerProblem::InternalAddress,
        PeerProblem::AnswerTooLong,
        PeerProblem::AnswerUnproven,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PeerProblem::RequestRefused => "request_refused",
            PeerProblem::MembersUnlisted => "members_unlisted",
            PeerProblem::InternalAddress => "internal_address",
            PeerProblem::AnswerTooLong => "answer_too_long",
            PeerProblem::AnswerUnproven => "answer_unproven",
        }
    }
}

/// The group's other members, and how to ask them.
#[derive(Debug)]
pub struct Lookup {
    peers: Arc<Peers>,
    client: reqwest::Client,
    token: SecretString,
    guard: Arc<Guard>,
    metrics: Metrics,
}

/// The time now, in milliseconds since the epoch, as peer requests are stamped.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Lookup {
    /// Asks `peers` with requests signed by `token`, at addresses `guard` allows (names
    /// resolved through it); its warnings are counted in `metrics`.
    pub fn new(
        peers: Arc<Peers>,
        token: SecretString,
        guard: Guard,
        metrics: Metrics,
    ) -> reqwest::Result<Lookup> {
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
            metrics,
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
                self.metrics.peer_problem(PeerProblem::MembersUnlisted);
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
                self.metrics.peer_problem(PeerProblem::InternalAddress);
                continue;
            }
            let host = match url.port() {
                Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
                None => url.host_str().unwrap_or_default().to_owned(),
            };
            let path = format!("{}?local=true", url.path());
            let signed = peer_auth::sign(&self.token, &host, &path, now_ms());
            let (client, token) = (self.client.clone(), self.token.clone());
            let metrics = self.metrics.clone();
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
                let body = read_capped(response, MAX_ANSWER).await.or_else(|| {
                    tracing::warn!(
                        peer = %peer,
                        max_bytes = MAX_ANSWER,
                        "admin: a group member's answer was cut off or too long; refused"
                    );
                    metrics.peer_problem(PeerProblem::AnswerTooLong);
                    None
                })?;
                if !proof.is_some_and(|proof| peer_auth::proven(&token, &signed, &body, &proof)) {
                    tracing::warn!(
                        peer = %peer,
                        "admin: a group member answered without proof that it knows the peer token; refused"
                    );
                    metrics.peer_problem(PeerProblem::AnswerUnproven);
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
                let Ok(answered_by) = header::HeaderValue::from_str(&peer) else {
                    continue;
                };
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

/// The longest answer a peer may give about an account (its state, score, breakdown and
/// ten opportunities take a few tens of KB): read no further before its proof is checked,
/// so a group member cannot make every lookup hold gigabytes.
const MAX_ANSWER: usize = 1 << 20;

/// The body of `response`, unless it is longer than `max` bytes or breaks off.
async fn read_capped(mut response: reqwest::Response, max: usize) -> Option<Vec<u8>> {
    if response
        .content_length()
        .is_some_and(|length| length > max as u64)
    {
        return None;
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.ok()? {
        if body.len() + chunk.len() > max {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server on loopback answering every request with `body`, chunked when asked (no
    /// Content-Length to refuse it by).
    async fn serve(body: Vec<u8>, chunked: bool) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let head = if chunked {
                    format!(
                        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
                        body.len()
                    )
                } else {
                    format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len())
                };
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
                if chunked {
                    let _ = socket.write_all(b"\r\n0\r\n\r\n").await;
                }
            }
        });
        format!("http://{address}/")
    }

    #[tokio::test]
    async fn an_answer_longer_than_the_cap_is_not_read_whole() {
        let client = reqwest::Client::new();
        for chunked in [false, true] {
            let small = serve(b"{\"stream_time\":1}".to_vec(), chunked).await;
            let response = client.get(&small).send().await.unwrap();
            assert_eq!(
                read_capped(response, 1_000).await.as_deref(),
                Some(&b"{\"stream_time\":1}"[..])
            );
            let big = serve(vec![b' '; 4_000], chunked).await;
            let response = client.get(&big).send().await.unwrap();
            assert_eq!(
                read_capped(response, 1_000).await,
                None,
                "chunked: {chunked}"
            );
        }
    }
}
