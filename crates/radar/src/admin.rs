//! The admin HTTP server (axum), bound to 127.0.0.1 by default: `/metrics`
//! (Prometheus), `/healthz` (the process serves), `/readyz` (partitions assigned and
//! restored), `/v1/accounts/{id}` (why an account scores what it scores, and its latest
//! opportunities), `/v1/playbooks` (the rules in force), `/v1/shadow` (what playbooks in
//! shadow mode would have sent), `/v1/destinations` (each destination's credentials,
//! breaker and queue), and `POST /v1/reload` (hot reload). The `/v1/` reads
//! need the read token when one is configured (always, off loopback), the reload the
//! admin token, and a peer's request its signature ([`crate::access`]); probes and
//! metrics none. Header-read, request and connection timeouts and a cap on connections
//! that makes room for the newest ([`Limits`]) keep it answering whatever its clients do.

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router, middleware};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use radar_kafka::{Inspector, Progress};
use radar_store::Store;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tower_http::timeout::TimeoutLayer;

use crate::access::Access;
use crate::lookup::{Lookup, PeerProblem, now_ms};
use crate::metrics::Metrics;
use crate::peer_auth::{self, PROOF_HEADER, REQUEST_HEADER};
use crate::reload::{InForce, Reloaded, Reloader};

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub metrics: Metrics,
    pub progress: Arc<Progress>,
    pub store: Arc<Store>,
    /// The configuration in force: its version and playbooks.
    pub in_force: Arc<RwLock<InForce>>,
    /// Reloads the configuration (`POST /v1/reload`); none where nothing can reload.
    pub reloader: Option<Arc<Reloader>>,
    /// The tokens endpoints require.
    pub access: Access,
    /// Account state of the running source.
    pub accounts: Option<Inspector>,
    /// The group's other members, asked for accounts this instance does not hold.
    pub lookup: Option<Arc<Lookup>>,
    /// The address this instance advertises to its peers (`admin.advertise`), which a
    /// peer request may be signed for besides the address it came in on.
    pub advertise: Option<String>,
}

pub fn router(state: AdminState) -> Router {
    let state = Arc::new(state);
    // What describes accounts and rules needs the read token (when there is one); a
    // peer's signed request is checked by the handler instead.
    let reads = Router::new()
        .route("/v1/playbooks", get(playbooks))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/shadow", get(shadow))
        .route("/v1/destinations", get(destinations))
        .route_layer(middleware::from_fn_with_state(state.clone(), may_read));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/reload", post(reload))
        .merge(reads)
        .with_state(state)
}

/// 401 for a read without the read token, when one is configured.
async fn may_read(
    State(state): State<Arc<AdminState>>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let signed_by_peer = request.headers().contains_key(REQUEST_HEADER)
        && request.uri().path().starts_with("/v1/accounts/");
    match state.access.may_read(request.headers()) {
        Err(why) if !signed_by_peer => unauthorized(why),
        _ => next.run(request).await,
    }
}

fn unauthorized(why: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"error": why})),
    )
        .into_response()
}

/// The address a connection came in on, so a peer request signed for another address
/// (captured there and replayed here) is refused.
#[derive(Debug, Clone, Copy)]
struct LocalAddr(SocketAddr);

/// What keeps the admin server answering whatever its clients do: clients that send
/// half a request, never read their answer, or come by the thousand cannot hold the
/// process's descriptors and memory, and `/healthz` keeps answering the orchestrator.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for a request's headers, and for the next request on a kept-alive
    /// connection.
    pub header_read: Duration,
    /// Longest a request may take from its headers to its response (408 after).
    pub request: Duration,
    /// Longest a connection lives: then it finishes the request in hand (for at most
    /// `request` more) and closes, so a client that never reads cannot keep it.
    pub lifetime: Duration,
    /// Connections held at once. A new one beyond it closes the oldest, so a crowd of
    /// stalled clients gives way to the newest, which a probe always is.
    pub connections: usize,
}

impl Default for Limits {
    /// Generous for Prometheus, a probe or an operator's curl; short for a stalled
    /// client. 256 connections: a small share of the usual 1,024 descriptors.
    fn default() -> Limits {
        Limits {
            header_read: Duration::from_secs(5),
            request: Duration::from_secs(10),
            lifetime: Duration::from_secs(60),
            connections: 256,
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and serves until the runtime ends; returns the
/// bound address.
pub async fn serve(addr: SocketAddr, state: AdminState) -> std::io::Result<SocketAddr> {
    serve_with(addr, state, Limits::default()).await
}

/// [`serve`] with its limits given.
pub async fn serve_with(
    addr: SocketAddr,
    state: AdminState,
    limits: Limits,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(state).layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request,
    ));
    tokio::spawn(accept(listener, app, limits));
    Ok(bound)
}

/// The connections being served, oldest first, each with its task.
#[derive(Default)]
struct Held {
    next_id: u64,
    connections: VecDeque<(u64, JoinHandle<()>)>,
}

/// Accepts every connection at once and serves it over HTTP/1.1 within `limits`; past
/// `limits.connections`, the oldest connection is closed (and gone) before the new one is
/// served, so radar never holds more than one over the limit, for that moment.
async fn accept(listener: TcpListener, app: Router, limits: Limits) {
    // A std mutex: held for a few pointer moves, never across an await.
    let held = Arc::new(Mutex::new(Held::default()));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // One client's failed handshake is nothing to wait on.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
                ) =>
            {
                continue;
            }
            // Out of descriptors or memory for now: wait rather than spin.
            Err(e) => {
                tracing::warn!(error = %e, "admin server: accepting a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let oldest = held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take_oldest_if_full(limits.connections);
        if let Some(oldest) = oldest {
            oldest.abort();
            // Cancelled at its next await point: its socket is closed once this returns.
            let _ = oldest.await;
        }
        let local = stream.local_addr().ok().map(LocalAddr);
        let service = TowerToHyperService::new(app.clone().layer(Extension(local)));
        let mut guard = held.lock().unwrap_or_else(PoisonError::into_inner);
        let id = guard.next_id;
        guard.next_id += 1;
        let done = held.clone();
        let task = tokio::spawn(async move {
            serve_connection(stream, service, limits).await;
            let mut held = done.lock().unwrap_or_else(PoisonError::into_inner);
            held.connections.retain(|(other, _)| *other != id);
        });
        guard.connections.push_back((id, task));
    }
}

impl Held {
    /// The oldest connection's task, taken out, when `limit` are held.
    fn take_oldest_if_full(&mut self, limit: usize) -> Option<JoinHandle<()>> {
        if self.connections.len() >= limit {
            self.connections.pop_front().map(|(_, task)| task)
        } else {
            None
        }
    }
}

/// Serves one connection until it ends, its headers are too slow, or its lifetime is up.
async fn serve_connection(stream: TcpStream, service: TowerToHyperService<Router>, limits: Limits) {
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    // A client that goes away or times out ends its connection; nothing to report.
    tokio::select! {
        _ = connection.as_mut() => {}
        () = tokio::time::sleep(limits.lifetime) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.request, connection).await;
        }
    }
}

async fn ready(State(state): State<Arc<AdminState>>) -> Response {
    let partitions = state.progress.partitions.load(Ordering::Relaxed);
    if partitions > 0 {
        format!("ready: {partitions} partitions assigned and restored\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no partition assigned yet\n",
        )
            .into_response()
    }
}

/// `{counts: {playbook: n}, recent: [opportunity…]}`: the would-be opportunities of
/// playbooks in shadow mode on this instance, newest first (the last 500), each as it
/// would have been delivered (`shadow: true`). `?playbook=NAME` keeps one playbook's.
async fn shadow(State(state): State<Arc<AdminState>>, uri: axum::http::Uri) -> Response {
    let wanted: Option<String> = uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(key, _)| key == "playbook")
            .map(|(_, name)| name.into_owned())
    });
    let log = state
        .progress
        .shadow
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let recent: Vec<serde_json::Value> = log
        .recent
        .iter()
        .rev()
        .filter_map(|json| serde_json::from_slice::<serde_json::Value>(json).ok())
        .filter(|o| wanted.as_deref().is_none_or(|name| o["playbook"] == name))
        .collect();
    Json(json!({"counts": log.counts, "recent": recent})).into_response()
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    state.metrics.refresh(&state.progress, Some(&state.store));
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

/// `{account_id, state…, score, breakdown, recent_opportunities}`. An account whose
/// partition another instance of the group holds is answered through that instance (the
/// `radar-answered-by` header names it); 404 when no instance holds state or an
/// opportunity for it. `?local=true` answers from this instance only; so is a peer's
/// signed request, with a proof of the answer ([`crate::peer_auth`]).
async fn account(
    State(state): State<Arc<AdminState>>,
    Extension(came_in_on): Extension<Option<LocalAddr>>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let peer_request = match headers.get(REQUEST_HEADER) {
        Some(signed) => match peer_request(&state, came_in_on, &uri, &headers, signed) {
            Ok(mac) => Some(mac),
            Err(why) => {
                tracing::warn!(error = %why, "admin: a peer request refused");
                state.metrics.peer_problem(PeerProblem::RequestRefused);
                return unauthorized(&why.to_string());
            }
        },
        None => None,
    };
    let local = peer_request.is_some()
        || uri
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "local=true"));
    // The lookup waits for the source's workers lock (held through a poll round): off the
    // async threads.
    let looked_up = {
        let (state, id) = (state.clone(), id.clone());
        tokio::task::spawn_blocking(move || {
            let explained = match &state.accounts {
                Some(inspector) => inspector.explain(&id).map_err(|e| e.to_string())?,
                None => None,
            };
            let recent = state
                .store
                .recent_opportunities(&id)
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((explained, recent))
        })
        .await
    };
    let (explained, recent) = match looked_up {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    };
    if explained.is_none()
        && !local
        && let Some(lookup) = &state.lookup
        && let Some(answer) = lookup.ask(&id).await
    {
        return answer;
    }
    let recent: Vec<serde_json::Value> = recent
        .iter()
        .filter_map(|json| serde_json::from_slice(json).ok())
        .collect();
    if explained.is_none() && recent.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no account {id:?} in this group")})),
        )
            .into_response();
    }
    let mut body = match explained {
        Some(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    body.insert("account_id".into(), id.into());
    body.insert("recent_opportunities".into(), recent.into());
    let body = serde_json::Value::Object(body).to_string().into_bytes();
    let proof = peer_request
        .zip(state.access.peer.as_ref())
        .map(|(request, token)| peer_auth::prove(token, &request, &body))
        .and_then(|proof| header::HeaderValue::from_str(&proof).ok());
    let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    if let Some(proof) = proof {
        response.headers_mut().insert(PROOF_HEADER, proof);
    }
    response
}

/// Why a peer's signed request is refused.
#[derive(Debug, thiserror::Error)]
enum PeerRefusal {
    #[error("this instance has no peer token (admin.peer_token_env, or the admin token)")]
    NoPeerToken,
    #[error("the request was signed for another address")]
    OtherAddress,
    #[error(transparent)]
    Signature(#[from] peer_auth::Refused),
}

/// Checks a peer's signed request: this instance has a peer token, and the request was
/// signed with it, lately, for the address it came in on (or the one advertised), and
/// for this path. The request's HMAC, which the answer's proof is bound to.
fn peer_request(
    state: &AdminState,
    came_in_on: Option<LocalAddr>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    signed: &header::HeaderValue,
) -> Result<Vec<u8>, PeerRefusal> {
    let token = state.access.peer.as_ref().ok_or(PeerRefusal::NoPeerToken)?;
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let here = came_in_on.is_some_and(|LocalAddr(local)| host.parse() == Ok(local))
        || state.advertise.as_deref() == Some(host);
    if !here {
        return Err(PeerRefusal::OtherAddress);
    }
    let path = uri.path_and_query().map_or("", |p| p.as_str());
    peer_auth::verify(
        token,
        signed.to_str().unwrap_or_default(),
        host,
        path,
        now_ms(),
    )
    .map_err(PeerRefusal::from)
}

/// `{version, playbooks}`: the configuration in force.
async fn playbooks(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    let in_force = state
        .in_force
        .read()
        .unwrap_or_else(PoisonError::into_inner);
    Json(json!({"version": in_force.version, "playbooks": in_force.playbooks}))
}

/// `GET /v1/destinations`: each destination's kind, auth, credentials (`ok`, or
/// `degraded` with the vendor's reason), breaker and queue.
async fn destinations(State(state): State<Arc<AdminState>>) -> Json<serde_json::Value> {
    Json(json!({"destinations": state.metrics.destination_statuses()}))
}

/// `POST /v1/reload`: reads the configuration again and applies it (200, `applied` or
/// `unchanged`) or keeps the one in force (422, `refused`, with the reasons). 401 without
/// the admin token.
async fn reload(State(state): State<Arc<AdminState>>, headers: axum::http::HeaderMap) -> Response {
    if let Err(why) = state.access.may_change(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({"error": why})),
        )
            .into_response();
    }
    let Some(reloader) = state.reloader.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "nothing to reload here"})),
        )
            .into_response();
    };
    match tokio::task::spawn_blocking(move || reloader.reload()).await {
        Ok(outcome) => {
            let status = match outcome {
                Reloaded::Refused { .. } => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::OK,
            };
            (status, Json(outcome)).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use radar_store::Content;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: radar\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn serves_health_readiness_metrics_and_playbooks() {
        let dir = tempfile::tempdir().unwrap();
        let progress = Arc::new(Progress::default());
        let state = AdminState {
            metrics: Metrics::new(vec!["user_login".into()]),
            progress: progress.clone(),
            store: Arc::new(Store::open(&dir.path().join("s.redb")).unwrap()),
            in_force: Arc::new(RwLock::new(InForce {
                version: "0123456789ab".into(),
                playbooks: serde_json::json!([{"name": "seat_expansion"}]),
            })),
            reloader: None,
            access: Access {
                admin: Some(secrecy::SecretString::from("a-long-admin-token-0123")),
                ..Access::default()
            },
            accounts: None,
            lookup: None,
            advertise: None,
        };
        let addr = serve("127.0.0.1:0".parse().unwrap(), state).await.unwrap();
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        progress.partitions.store(2, Ordering::Relaxed);
        progress.consumed.store(42, Ordering::Relaxed);
        progress.stats.lock().unwrap().rejected[0] = 3;
        progress.stats.lock().unwrap().by_type = vec![7];
        progress
            .rounds
            .lock()
            .unwrap()
            .push(std::time::Duration::from_millis(2));
        progress.checkpoints.lock().unwrap().written.extend([
            (Content::Snapshot, 1_000),
            (Content::Changes, 40),
            (Content::Changes, 60),
        ]);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let metrics = get(addr, "/metrics").await;
        assert!(
            metrics.contains("radar_checkpoints_total{content=\"changes\"} 2")
                && metrics
                    .contains("radar_checkpoint_written_bytes_total{content=\"changes\"} 100")
                && metrics
                    .contains("radar_checkpoint_written_bytes_total{content=\"snapshot\"} 1000"),
            "{metrics}"
        );
        assert!(
            metrics.contains("radar_events_consumed_total 42"),
            "{metrics}"
        );
        assert!(
            metrics.contains("radar_events_rejected_total{reason=\"invalid_json\"} 3"),
            "{metrics}"
        );
        assert!(
            metrics.contains("radar_kafka_partitions_assigned 2"),
            "{metrics}"
        );
        assert!(metrics.contains("radar_outbox_depth 0"), "{metrics}");
        assert!(!metrics.contains("account_id"), "never an account label");
        let playbooks = get(addr, "/v1/playbooks").await;
        assert!(
            playbooks.contains("seat_expansion")
                && playbooks.contains("\"version\":\"0123456789ab\""),
            "{playbooks}"
        );
        let post = |auth: &'static str| async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "POST /v1/reload HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        };
        assert!(post("").await.starts_with("HTTP/1.1 401"));
        assert!(
            post("Authorization: Bearer wrong-token-of-some-length\r\n")
                .await
                .starts_with("HTTP/1.1 401")
        );
        // The right token passes the check; this server has nothing to reload.
        assert!(
            post("Authorization: Bearer a-long-admin-token-0123\r\n")
                .await
                .starts_with("HTTP/1.1 503")
        );
        assert!(
            get(addr, "/v1/accounts/nobody")
                .await
                .starts_with("HTTP/1.1 404")
        );
    }
}
