//! Salesforce's OAuth 2.0 token endpoint, `POST /services/oauth2/token`, for the org's one
//! connected app.
//!
//! What Salesforce documents (OAuth 2.0 JWT Bearer Flow, Client Credentials Flow and
//! Refresh Token Flow, under
//! <https://help.salesforce.com/s/articleView?id=sf.remoteaccess_authenticate.htm>):
//! - the body is `application/x-www-form-urlencoded`; the endpoint takes no bearer token;
//! - JWT bearer: `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
//!   `assertion`, a JWT signed RS256 with the private key of the certificate uploaded to
//!   the connected app; `iss` is the app's consumer key, `sub` the user's username, `aud`
//!   the login URL, `exp` at most three minutes ahead. The answer has no refresh token;
//! - client credentials: `client_id` and `client_secret` of the app; no refresh token;
//! - refresh token: `client_id`, `client_secret` (when the app requires it) and
//!   `refresh_token`; Salesforce does not rotate refresh tokens, so the answer has none;
//! - answers carry `access_token`, `scope`, `instance_url`, `id` (the identity URL),
//!   `token_type`, `issued_at` (milliseconds since the epoch, as a string) and `signature`
//!   (base64 HMAC-SHA256 of `id` + `issued_at` keyed with the consumer secret), never
//!   `expires_in`: a client learns that a token expired from a 401 `INVALID_SESSION_ID`;
//! - errors are 400 `{"error": .., "error_description": ..}`, not the REST API's arrays.
//!
//! What the stand-in chose:
//! - every JWT failure is `invalid_grant`, with the description Salesforce gives for the
//!   nearest cause: "invalid assertion" (malformed, unsigned, wrong key or algorithm, `exp`
//!   missing or more than 180 s ahead), "client identifier invalid" (`iss`), "audience is
//!   invalid" (`aud`), "expired access/refresh token" (`exp` passed), "user hasn't
//!   approved this consumer" (`sub`);
//! - `aud` may be the stand-in's own URL, `https://login.salesforce.com` or
//!   `https://test.salesforce.com` (a trailing `/` is ignored); there is no clock skew;
//! - the identity URL names the org `00D000000000001AAA` and [`super::DEFAULT_USER`];
//! - without a consumer secret, `signature` is keyed with the consumer key;
//! - issued tokens (`00D000000000001!AQ` + a counter + random hex) expire after the
//!   app's `token_lifetime`; expired ones are forgotten, and answered as unknown ones are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use rsa::RsaPrivateKey;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Map, Value, json};

use super::{DEFAULT_USER, SalesforceServer};
use crate::server;

/// The path of the token endpoint.
pub(super) const TOKEN_PATH: &str = "/services/oauth2/token";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The org id in identity URLs, and its 15-character form, which prefixes access tokens.
const ORG_ID: &str = "00D000000000001AAA";
const ORG_ID15: &str = "00D000000000001";

/// Salesforce refuses assertions valid for longer than this.
const MAX_ASSERTION_VALIDITY: i64 = 180;

/// The login hosts an assertion's `aud` may name besides the stand-in itself.
const LOGIN_URLS: [&str; 2] = [
    "https://login.salesforce.com",
    "https://test.salesforce.com",
];

/// The org's connected app, as [`super::Salesforce::connect_app`] configures it.
#[derive(Clone, Debug)]
pub struct ConnectedApp {
    /// The consumer key: `client_id`, and `iss` of a JWT assertion.
    pub client_id: String,
    /// The consumer secret; `None` for an app without one (JWT bearer only, or a refresh
    /// token flow that does not require the secret).
    pub client_secret: Option<String>,
    /// The username a JWT assertion's `sub` must name.
    pub username: String,
    /// The public key (`BEGIN PUBLIC KEY` or `BEGIN RSA PUBLIC KEY`) of the certificate
    /// uploaded to the app; `None`: the JWT bearer flow is refused.
    pub public_key_pem: Option<String>,
    /// The refresh token the refresh token flow accepts; `None`: that flow is refused.
    pub refresh_token: Option<String>,
    /// How long an issued access token is accepted.
    pub token_lifetime: Duration,
}

/// An RSA key pair in PEM: what a connected app's certificate is made from.
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// The private key, PKCS#8 (`-----BEGIN PRIVATE KEY-----`): the client signs with it.
    pub private_pem: String,
    /// The public key, SPKI (`-----BEGIN PUBLIC KEY-----`): the app verifies with it.
    pub public_pem: String,
}

impl KeyPair {
    /// A fresh 2048-bit RSA key pair, as `openssl req -newkey rsa:2048` would make for a
    /// connected app's certificate. Errors say what failed (randomness or encoding).
    pub fn generate() -> Result<KeyPair, String> {
        let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|err| format!("generating an RSA key: {err}"))?;
        let private_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|err| format!("encoding the private key: {err}"))?
            .to_string();
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|err| format!("encoding the public key: {err}"))?;
        Ok(KeyPair {
            private_pem,
            public_pem,
        })
    }
}

/// [`KeyPair::generate`], as a free function.
pub fn generate_key_pair() -> Result<KeyPair, String> {
    KeyPair::generate()
}

/// The token endpoint's state, inside the org's mutex.
#[derive(Debug, Default)]
pub(super) struct Grants {
    pub(super) app: Option<ConnectedApp>,
    pub(super) refuse: bool,
    pub(super) requests: usize,
    issued: u64,
    /// Issued access tokens and when each stops being accepted.
    tokens: HashMap<String, Instant>,
}

impl Grants {
    /// Whether `token` was issued and has not expired.
    pub(super) fn accepts(&self, token: &str, now: Instant) -> bool {
        self.tokens.get(token).is_some_and(|until| now < *until)
    }

    /// Forgets every issued token (they are all refused from now on).
    pub(super) fn revoke_all(&mut self) {
        self.tokens.clear();
    }

    fn issue(&mut self, lifetime: Duration) -> String {
        let now = Instant::now();
        self.tokens.retain(|_, until| now < *until);
        self.issued += 1;
        let token = format!("{ORG_ID15}!AQ{:06}{}", self.issued, server::random_hex(24));
        // A lifetime beyond what an `Instant` holds is a century: forever, for a test.
        let until = now
            .checked_add(lifetime)
            .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
            .unwrap_or(now);
        self.tokens.insert(token.clone(), until);
        token
    }
}

/// An OAuth error answer: 400 `{"error": .., "error_description": ..}`.
#[derive(Debug)]
pub(super) struct OAuthError {
    error: &'static str,
    description: &'static str,
}

impl OAuthError {
    fn new(error: &'static str, description: &'static str) -> Self {
        Self { error, description }
    }

    fn invalid_grant(description: &'static str) -> Self {
        Self::new("invalid_grant", description)
    }

    fn not_approved() -> Self {
        Self::invalid_grant("user hasn't approved this consumer")
    }

    fn unknown_client() -> Self {
        Self::new("invalid_client_id", "client identifier invalid")
    }

    fn bad_secret() -> Self {
        Self::new("invalid_client", "invalid client credentials")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.error, "error_description": self.description });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// `POST /services/oauth2/token`: the three grants above, or 400.
pub(super) async fn token(State(shared): State<Arc<SalesforceServer>>, body: Bytes) -> Response {
    let form = server::form_pairs(&body);
    let (app, refuse) = {
        let mut state = shared.lock();
        state.oauth.requests += 1;
        (state.oauth.app.clone(), state.oauth.refuse)
    };
    let granted = if refuse {
        Err(OAuthError::not_approved())
    } else {
        grant(&form, app.as_ref(), &shared.url)
    };
    let app = match granted {
        Ok(app) => app,
        Err(error) => return error.into_response(),
    };
    let access_token = shared.lock().oauth.issue(app.token_lifetime);
    let id = format!("{}/id/{ORG_ID}/{DEFAULT_USER}", shared.url);
    let issued_at = server::now().timestamp_millis().to_string();
    let signature = signature(app, &id, &issued_at);
    Json(json!({
        "access_token": access_token,
        "scope": "api",
        "instance_url": shared.url,
        "id": id,
        "token_type": "Bearer",
        "issued_at": issued_at,
        "signature": signature,
    }))
    .into_response()
}

/// The app the form's grant is good for, or why not.
fn grant<'a>(
    form: &[(String, String)],
    app: Option<&'a ConnectedApp>,
    own_url: &str,
) -> Result<&'a ConnectedApp, OAuthError> {
    let param = |key| server::value(form, key);
    match param("grant_type") {
        Some(JWT_BEARER) => {
            let app = app.ok_or_else(|| OAuthError::invalid_grant("invalid assertion"))?;
            let assertion = param("assertion").unwrap_or_default();
            check_assertion(assertion, app, own_url, server::now().timestamp())?;
            Ok(app)
        }
        Some("client_credentials") => {
            let app = client(app, param("client_id"))?;
            match (&app.client_secret, param("client_secret")) {
                (Some(secret), Some(given)) if secret == given => Ok(app),
                _ => Err(OAuthError::bad_secret()),
            }
        }
        Some("refresh_token") => {
            let app = client(app, param("client_id"))?;
            if let Some(secret) = &app.client_secret {
                if param("client_secret") != Some(secret.as_str()) {
                    return Err(OAuthError::bad_secret());
                }
            }
            match (&app.refresh_token, param("refresh_token")) {
                (Some(token), Some(given)) if token == given => Ok(app),
                _ => Err(OAuthError::invalid_grant("expired access/refresh token")),
            }
        }
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "grant type not supported",
        )),
    }
}

/// The app, if `client_id` names it.
fn client<'a>(
    app: Option<&'a ConnectedApp>,
    client_id: Option<&str>,
) -> Result<&'a ConnectedApp, OAuthError> {
    app.filter(|app| Some(app.client_id.as_str()) == client_id)
        .ok_or_else(OAuthError::unknown_client)
}

/// Checks a JWT bearer assertion for `app` at `now` (seconds since the epoch).
fn check_assertion(
    assertion: &str,
    app: &ConnectedApp,
    own_url: &str,
    now: i64,
) -> Result<(), OAuthError> {
    let invalid = || OAuthError::invalid_grant("invalid assertion");
    let pem = app.public_key_pem.as_deref().ok_or_else(invalid)?;
    let key = DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid())?;
    // Signature and algorithm only: the claims are checked below, so each failure gets
    // Salesforce's description rather than jsonwebtoken's.
    let mut validation = Validation::new(Algorithm::RS256);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Map<String, Value>>(assertion, &key, &validation)
        .map_err(|_| invalid())?
        .claims;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    if text("iss") != Some(app.client_id.as_str()) {
        return Err(OAuthError::invalid_grant("client identifier invalid"));
    }
    let audience_ok = text("aud").is_some_and(|aud| {
        let aud = aud.trim_end_matches('/');
        aud == own_url || LOGIN_URLS.contains(&aud)
    });
    if !audience_ok {
        return Err(OAuthError::invalid_grant("audience is invalid"));
    }
    let exp = claims
        .get("exp")
        .and_then(|exp| exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64)))
        .ok_or_else(invalid)?;
    if exp <= now {
        return Err(OAuthError::invalid_grant("expired access/refresh token"));
    }
    if exp.saturating_sub(now) > MAX_ASSERTION_VALIDITY {
        return Err(invalid());
    }
    if text("sub") != Some(app.username.as_str()) {
        return Err(OAuthError::not_approved());
    }
    Ok(())
}

/// `signature`: base64 HMAC-SHA256 of `id` + `issued_at`, keyed with the consumer secret.
fn signature(app: &ConnectedApp, id: &str, issued_at: &str) -> String {
    let secret = app.client_secret.as_deref().unwrap_or(&app.client_id);
    let message = format!("{id}{issued_at}");
    // jsonwebtoken answers URL-safe base64 without padding; Salesforce's is standard.
    jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .map(|url_safe| standard_base64(&url_safe))
    .unwrap_or_default()
}

fn standard_base64(url_safe: &str) -> String {
    let mut text: String = url_safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while text.len() % 4 != 0 {
        text.push('=');
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn base64_is_made_standard_and_padded() {
        assert_eq!(standard_base64("ab-_c"), "ab+/c===");
        assert_eq!(standard_base64("abcd"), "abcd");
    }

    #[test]
    fn issued_tokens_expire_and_are_revoked() {
        let mut grants = Grants::default();
        let short = grants.issue(Duration::ZERO);
        let long = grants.issue(Duration::from_secs(60));
        assert_ne!(short, long);
        assert!(long.starts_with("00D000000000001!AQ"));
        let now = Instant::now();
        assert!(!grants.accepts(&short, now));
        assert!(grants.accepts(&long, now));
        let forever = grants.issue(Duration::MAX);
        assert!(grants.accepts(&forever, now));
        grants.revoke_all();
        assert!(!grants.accepts(&long, now));
        assert!(!grants.accepts(&forever, now));
    }

    #[test]
    fn garbage_assertions_are_invalid() {
        let app = ConnectedApp {
            client_id: "c".into(),
            client_secret: None,
            username: "u".into(),
            public_key_pem: Some("not a pem".into()),
            refresh_token: None,
            token_lifetime: Duration::from_secs(1),
        };
        for assertion in ["", ".", "a.b.c", "\u{0}..", "eyJ.eyJ.x"] {
            let error = check_assertion(assertion, &app, "http://x", 0).unwrap_err();
            assert_eq!(error.description, "invalid assertion");
        }
    }
}
