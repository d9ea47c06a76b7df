//! A CRM destination's credentials: how it gets a token (`auth` in its settings), and
//! the token as it runs — cached, renewed before it expires, renewed once when the
//! vendor refuses it, and, when renewing fails, a destination `degraded` that keeps its
//! queue and tries again with backoff until the credentials work (see
//! `docs/delivery.md#credentials`).
//!
//! - [`config`]: the `auth` keys, parsed with every problem keyed;
//! - `secrets`: the grant's secrets and private key, read and checked;
//! - [`grant`]: the token requests and what their answers mean, pure;
//! - [`credentials`]: the token as it runs ([`Credentials`]);
//! - `refresh_file`: a rotated refresh token written back to its file.

pub mod config;
pub mod credentials;
pub mod grant;
mod refresh_file;
mod secrets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::EncodingKey;
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

pub use credentials::{AuthError, Credentials, Token};

/// How a destination gets its token.
#[derive(Clone)]
pub enum Grant {
    /// A token given in the config's `secret_env` or `secret_file`; a file is read again
    /// when the vendor refuses the token, so a person can replace it without a restart.
    Static {
        token: SecretString,
        file: Option<PathBuf>,
    },
    /// Salesforce's OAuth 2.0 JWT bearer flow: an assertion signed by the connected
    /// app's private key, for a user, posted to the login host.
    JwtBearer {
        client_id: String,
        username: String,
        /// The login host: where the assertion is posted, and its audience.
        login_url: Url,
        key: Arc<EncodingKey>,
    },
    /// OAuth 2.0 client credentials (Salesforce, on the org's My Domain host).
    ClientCredentials {
        client_id: String,
        secret: SecretString,
        login_url: Url,
    },
    /// OAuth 2.0 refresh token (Salesforce or HubSpot). HubSpot may answer with a new
    /// refresh token, which replaces the old one in `file`.
    RefreshToken {
        client_id: String,
        secret: SecretString,
        refresh_token: SecretString,
        file: Option<PathBuf>,
        login_url: Url,
    },
}

impl Grant {
    /// The `auth` value that chose this grant.
    pub fn name(&self) -> &'static str {
        match self {
            Grant::Static { .. } => "token",
            Grant::JwtBearer { .. } => "jwt_bearer",
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::RefreshToken { .. } => "refresh_token",
        }
    }

    /// The secrets this grant holds when it starts, for the redactor.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            Grant::Static { token, .. } => vec![token.expose_secret().to_owned()],
            Grant::JwtBearer { .. } => Vec::new(),
            Grant::ClientCredentials { secret, .. } => vec![secret.expose_secret().to_owned()],
            Grant::RefreshToken {
                secret,
                refresh_token,
                ..
            } => vec![
                secret.expose_secret().to_owned(),
                refresh_token.expose_secret().to_owned(),
            ],
        }
    }
}

impl std::fmt::Debug for Grant {
    /// The kind and the public parts only: never a secret or the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Grant::Static { file, .. } => f.debug_struct("Static").field("file", file).finish(),
            Grant::JwtBearer {
                client_id,
                username,
                login_url,
                ..
            } => f
                .debug_struct("JwtBearer")
                .field("client_id", client_id)
                .field("username", username)
                .field("login_url", &login_url.as_str())
                .finish(),
            Grant::ClientCredentials {
                client_id,
                login_url,
                ..
            } => f
                .debug_struct("ClientCredentials")
                .field("client_id", client_id)
                .field("login_url", &login_url.as_str())
                .finish(),
            Grant::RefreshToken {
                client_id,
                file,
                login_url,
                ..
            } => f
                .debug_struct("RefreshToken")
                .field("client_id", client_id)
                .field("file", file)
                .field("login_url", &login_url.as_str())
                .finish(),
        }
    }
}

/// A destination's `auth` settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub grant: Grant,
    /// The token endpoint of an OAuth grant.
    pub token_url: Option<Url>,
    /// How long a token lives when the vendor does not say (`session_lifetime`): it is
    /// renewed at about 75% of this.
    pub session_lifetime: Duration,
    /// The longest wait between two tries of failing credentials (`auth_retry_cap`).
    pub retry_cap: Duration,
}
