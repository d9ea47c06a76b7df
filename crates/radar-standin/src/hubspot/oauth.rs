//! HubSpot's OAuth token endpoint for refreshing an access token: `POST
//! /oauth/2026-03/token` and the deprecated `POST /oauth/v1/token`.
//!
//! What HubSpot documents (<https://developers.hubspot.com/docs/api-reference/2026-03/authentication/oauth-tokens/refresh-oauth-token>,
//! and the v1 reference, which HubSpot deprecates on 2027-02-16):
//! - the parameters are `application/x-www-form-urlencoded` body parameters (2026-03
//!   requires them in the body, so client secrets stay out of URLs and logs; v1 took them
//!   there too): `grant_type=refresh_token`, `client_id`, `client_secret`,
//!   `refresh_token`; the endpoint takes no bearer token;
//! - the answer is `token_type`, `refresh_token`, `access_token` and `expires_in` (the
//!   access token's lifetime in seconds);
//! - a refresh token that is not (or no longer) valid is 400
//!   `{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token",..}`,
//!   what a client sees once a user uninstalled the app.
//!
//! What the stand-in chose:
//! - both paths behave alike: the refresh grant is all they serve (`authorization_code`
//!   needs a browser and an install, which no test of Radar's has);
//! - error bodies carry HubSpot's `status`, `message` and `correlationId` and also the
//!   OAuth 2.0 `error` and `error_description` (RFC 6749 §5.2), so a client may read
//!   either: `BAD_GRANT_TYPE`/`unsupported_grant_type`, `BAD_CLIENT_ID`/`invalid_client`,
//!   `BAD_CLIENT_SECRET`/`invalid_client`, `BAD_REFRESH_TOKEN`/`invalid_grant`;
//! - with rotation on, each refresh answers a new refresh token and the one used stops
//!   working (OAuth 2.1's rotation); with it off, the same refresh token comes back;
//! - refused grants ([`super::HubSpot::refuse_grants`]) are `BAD_REFRESH_TOKEN`, as after
//!   an uninstall;
//! - issued access tokens are opaque (`CNQ` + a counter + random hex) and stay known after
//!   they expire, so the CRM endpoints can answer HubSpot's `EXPIRED_AUTHENTICATION`
//!   rather than "not recognized"; ones expired over an hour ago are forgotten.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::HubSpotServer;
use crate::server;

/// The token endpoint's current path.
pub(super) const TOKEN_PATH: &str = "/oauth/2026-03/token";

/// The deprecated v1 path, served alike.
pub(super) const TOKEN_PATH_V1: &str = "/oauth/v1/token";

/// The app installed in the portal, as [`super::HubSpot::connect_app`] configures it.
#[derive(Clone, Debug)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: String,
    /// The refresh token the install produced: the first one the endpoint accepts.
    pub refresh_token: String,
    /// How long an issued access token is accepted (`expires_in`, in whole seconds, at
    /// least 1).
    pub token_lifetime: Duration,
    /// Whether each refresh answers a new refresh token and retires the one used.
    pub rotate_refresh_tokens: bool,
}

/// The token endpoint's state, inside the portal's mutex.
#[derive(Debug, Default)]
pub(super) struct Grants {
    app: Option<OAuthApp>,
    /// The refresh token accepted now: the app's, or the last one rotated in.
    refresh_token: Option<String>,
    pub(super) refuse: bool,
    pub(super) requests: usize,
    issued: u64,
    /// Issued access tokens and when each expires.
    tokens: HashMap<String, DateTime<Utc>>,
}

/// What the gate finds for a token the endpoint may have issued.
#[derive(Debug, PartialEq)]
pub(super) enum Issued {
    Live,
    Expired(DateTime<Utc>),
    Unknown,
}

impl Grants {
    pub(super) fn connect(&mut self, app: OAuthApp) {
        self.refresh_token = Some(app.refresh_token.clone());
        self.app = Some(app);
    }

    pub(super) fn refresh_token(&self) -> Option<String> {
        self.refresh_token.clone()
    }

    pub(super) fn check(&self, token: &str, now: DateTime<Utc>) -> Issued {
        match self.tokens.get(token) {
            Some(until) if now < *until => Issued::Live,
            Some(until) => Issued::Expired(*until),
            None => Issued::Unknown,
        }
    }

    /// Every token issued so far expires `now` (unless it already has).
    pub(super) fn expire_all(&mut self, now: DateTime<Utc>) {
        for until in self.tokens.values_mut() {
            *until = (*until).min(now);
        }
    }

    fn issue(&mut self, lifetime: Duration) -> String {
        let now = server::now();
        let forget_before = now - TimeDelta::hours(1);
        self.tokens.retain(|_, until| *until > forget_before);
        self.issued += 1;
        let token = format!("CNQ{:06}{}", self.issued, server::random_hex(32));
        let lifetime = TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::MAX);
        let until = now
            .checked_add_signed(lifetime)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        self.tokens.insert(token.clone(), until);
        token
    }

    /// The form's grant, checked against the app: the refresh token to answer and the
    /// access token's lifetime, or the refusal.
    fn grant(&mut self, form: &[(String, String)]) -> Result<(String, Duration), OAuthError> {
        let param = |key| server::value(form, key);
        if self.refuse {
            return Err(OAuthError::bad_refresh_token());
        }
        if param("grant_type") != Some("refresh_token") {
            return Err(OAuthError {
                status: "BAD_GRANT_TYPE",
                error: "unsupported_grant_type",
                message: "grant type not supported",
            });
        }
        let app = self
            .app
            .as_ref()
            .filter(|app| Some(app.client_id.as_str()) == param("client_id"))
            .ok_or(OAuthError {
                status: "BAD_CLIENT_ID",
                error: "invalid_client",
                message: "missing or unknown client id",
            })?;
        if Some(app.client_secret.as_str()) != param("client_secret") {
            return Err(OAuthError {
                status: "BAD_CLIENT_SECRET",
                error: "invalid_client",
                message: "missing or invalid client secret",
            });
        }
        let current = self
            .refresh_token
            .as_deref()
            .filter(|token| Some(*token) == param("refresh_token"))
            .ok_or_else(OAuthError::bad_refresh_token)?;
        let lifetime = app.token_lifetime;
        let refresh_token = if app.rotate_refresh_tokens {
            let hex = server::random_hex(16);
            let rotated = format!(
                "na1-{}-{}-{}-{}",
                hex.get(..4).unwrap_or_default(),
                hex.get(4..8).unwrap_or_default(),
                hex.get(8..12).unwrap_or_default(),
                hex.get(12..).unwrap_or_default()
            );
            self.refresh_token = Some(rotated.clone());
            rotated
        } else {
            current.to_owned()
        };
        Ok((refresh_token, lifetime))
    }
}

/// A refusal: 400 with HubSpot's fields and OAuth's.
#[derive(Debug)]
struct OAuthError {
    status: &'static str,
    error: &'static str,
    message: &'static str,
}

impl OAuthError {
    fn bad_refresh_token() -> Self {
        Self {
            status: "BAD_REFRESH_TOKEN",
            error: "invalid_grant",
            message: "missing or unknown refresh token",
        }
    }

    fn render(&self, correlation: &str) -> Response {
        let body = json!({
            "status": self.status,
            "message": self.message,
            "correlationId": correlation,
            "error": self.error,
            "error_description": self.message,
        });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

/// `POST /oauth/2026-03/token` and `POST /oauth/v1/token`: a refresh grant, or 400.
pub(super) async fn token(State(shared): State<Arc<HubSpotServer>>, body: Bytes) -> Response {
    let form = server::form_pairs(&body);
    let correlation = shared.correlation_id();
    let answer = {
        let mut state = shared.lock();
        let grants = &mut state.oauth;
        grants.requests += 1;
        grants.grant(&form).map(|(refresh_token, lifetime)| {
            let access_token = grants.issue(lifetime);
            (refresh_token, access_token, lifetime.as_secs().max(1))
        })
    };
    let mut response = match answer {
        Ok((refresh_token, access_token, expires_in)) => Json(json!({
            "token_type": "bearer",
            "refresh_token": refresh_token,
            "access_token": access_token,
            "expires_in": expires_in,
        }))
        .into_response(),
        Err(error) => error.render(&correlation),
    };
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("x-hubspot-correlation-id"), value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn issued_tokens_expire_and_stay_known() {
        let mut grants = Grants::default();
        let token = grants.issue(Duration::from_secs(60));
        let now = server::now();
        assert_eq!(grants.check(&token, now), Issued::Live);
        assert_eq!(grants.check("other", now), Issued::Unknown);
        grants.expire_all(now);
        assert_eq!(grants.check(&token, now), Issued::Expired(now));
        // A lifetime beyond what a date can hold is no panic.
        let forever = grants.issue(Duration::MAX);
        assert_eq!(grants.check(&forever, now), Issued::Live);
    }

    #[test]
    fn rotation_retires_the_refresh_token_used() {
        let mut grants = Grants::default();
        grants.connect(OAuthApp {
            client_id: "id".into(),
            client_secret: "secret".into(),
            refresh_token: "rt-0".into(),
            token_lifetime: Duration::from_millis(10),
            rotate_refresh_tokens: true,
        });
        let request = |rt: &str| {
            form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "id"),
                ("client_secret", "secret"),
                ("refresh_token", rt),
            ])
        };
        let (next, lifetime) = grants.grant(&request("rt-0")).unwrap();
        assert_ne!(next, "rt-0");
        assert!(next.starts_with("na1-"));
        assert_eq!(lifetime, Duration::from_millis(10));
        assert_eq!(grants.refresh_token().as_deref(), Some(next.as_str()));
        let refused = grants.grant(&request("rt-0")).unwrap_err();
        assert_eq!(refused.status, "BAD_REFRESH_TOKEN");
        assert!(grants.grant(&request(&next)).is_ok());
    }
}
