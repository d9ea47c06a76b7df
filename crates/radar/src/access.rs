//! Who may use the admin server, read from `[admin]`: the admin token (`POST
//! /v1/reload`), the read token (`/v1/accounts`, `/v1/playbooks`, `/v1/shadow`; required
//! by default once `admin.listen` is off loopback, since those answers hold every
//! account's health, entitlement, usage and score), and the peer token with the networks
//! peers may be at (instances asking each other for accounts, see [`crate::peer_auth`]).
//! Tokens are compared in constant time and never printed.

use std::net::SocketAddr;

use axum::http::{HeaderMap, header};
use ipnet::IpNet;
use radar_delivery::guard::Guard;
use radar_delivery::settings::Env;
use secrecy::{ExposeSecret, SecretString};

use crate::config::RawAdmin;

/// A problem in `[admin]`'s tokens or peer networks; the message starts with its key.
#[derive(Debug, thiserror::Error)]
pub enum AccessProblem {
    #[error("admin.{what}_env: environment variable {var} is not set")]
    TokenVariableUnset { what: &'static str, var: String },
    #[error("admin.{what}_file: reading {file}: {source}")]
    TokenFileUnreadable {
        what: &'static str,
        file: String,
        source: std::io::Error,
    },
    #[error("admin.{what}_env, admin.{what}_file: give one of them, not both")]
    TokenGivenTwice { what: &'static str },
    #[error("admin.{what}_env / admin.{what}_file: the token is shorter than 16 characters")]
    TokenTooShort { what: &'static str },
    #[error(
        "admin.read_token_env: admin.listen {listen} is not loopback, so /v1/accounts, /v1/playbooks and /v1/shadow need a read token: set admin.read_token_env or admin.read_token_file (or admin.read_token_required = false to serve them to whoever reaches the port)"
    )]
    ReadTokenRequired { listen: SocketAddr },
    #[error("admin.peer_networks[{index}]: {network:?} is not a network like 10.0.0.0/8")]
    PeerNetwork { index: usize, network: String },
}

/// The tokens the admin server checks, and where peers may be.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Mutating endpoints require it; none: they refuse everyone.
    pub admin: Option<SecretString>,
    /// Read endpoints require it (or the admin token); none: they are open.
    pub read: Option<SecretString>,
    /// Instances of the group prove to each other that they know it; none: this
    /// instance neither asks peers nor answers them as a peer.
    pub peer: Option<SecretString>,
    /// The addresses peers may be asked at: the delivery SSRF guard, with the pod
    /// network (`admin.peer_networks`) allowed.
    pub peer_guard: Guard,
}

impl Access {
    /// Reads `[admin]`'s tokens (through `env`) and networks; `listen` (when it parsed)
    /// decides whether the read token is required. Every problem names its key.
    pub fn from_raw(
        admin: &RawAdmin,
        listen: Option<SocketAddr>,
        env: Env<'_>,
    ) -> Result<Access, Vec<AccessProblem>> {
        let mut problems = Vec::new();
        let mut token = |what: &'static str, var: &str, file: &str| {
            read_token(what, var, file, env)
                .map_err(|p| problems.push(p))
                .ok()
                .flatten()
        };
        let admin_token = token("token", &admin.token_env, &admin.token_file);
        let read = token("read_token", &admin.read_token_env, &admin.read_token_file);
        let peer = token("peer_token", &admin.peer_token_env, &admin.peer_token_file)
            .or_else(|| admin_token.clone());
        if let Some(listen) = listen
            && read.is_none()
            && admin.read_token_required
            && !listen.ip().is_loopback()
        {
            problems.push(AccessProblem::ReadTokenRequired { listen });
        }
        let mut allow = Vec::new();
        for (i, network) in admin.peer_networks.iter().enumerate() {
            match network.trim().parse::<IpNet>() {
                Ok(net) => allow.push(net),
                Err(_) => problems.push(AccessProblem::PeerNetwork {
                    index: i,
                    network: network.clone(),
                }),
            }
        }
        if problems.is_empty() {
            Ok(Access {
                admin: admin_token,
                read,
                peer,
                peer_guard: Guard { allow },
            })
        } else {
            Err(problems)
        }
    }

    /// Whether `headers` may read: no read token configured, or a bearer of the read
    /// token or the admin token.
    pub fn may_read(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(read) = &self.read else {
            return Ok(());
        };
        let given = bearer(headers)?;
        if same(given, read) || self.admin.as_ref().is_some_and(|admin| same(given, admin)) {
            Ok(())
        } else {
            Err("the token is not the read token")
        }
    }

    /// Whether `headers` carry the admin token. No token configured refuses everyone: a
    /// reload must not be open to whoever reaches the port.
    pub fn may_change(&self, headers: &HeaderMap) -> Result<(), &'static str> {
        let Some(token) = &self.admin else {
            return Err("no admin token is configured (admin.token_env or admin.token_file)");
        };
        if same(bearer(headers)?, token) {
            Ok(())
        } else {
            Err("the token is not the admin token")
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, &'static str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or("an Authorization: Bearer <token> header is required")
}

/// Whether `given` is `token`, compared as digests of equal length in constant time:
/// neither the token's length nor where it differs shows in the response time.
fn same(given: &str, token: &SecretString) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(token.expose_secret().as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The token of `admin.<what>_env` / `admin.<what>_file`, if one is configured: 16
/// characters or more.
fn read_token(
    what: &'static str,
    var: &str,
    file: &str,
    env: Env<'_>,
) -> Result<Option<SecretString>, AccessProblem> {
    let token = match (var.trim(), file.trim()) {
        ("", "") => return Ok(None),
        (var, "") => env(var).ok_or_else(|| AccessProblem::TokenVariableUnset {
            what,
            var: var.to_owned(),
        })?,
        ("", file) => {
            std::fs::read_to_string(file).map_err(|source| AccessProblem::TokenFileUnreadable {
                what,
                file: file.to_owned(),
                source,
            })?
        }
        _ => return Err(AccessProblem::TokenGivenTwice { what }),
    };
    let token = token.trim();
    if token.chars().count() < 16 {
        return Err(AccessProblem::TokenTooShort { what });
    }
    Ok(Some(SecretString::from(token.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The problems of a config refused, as the messages an operator reads.
    fn problems(refused: Result<Access, Vec<AccessProblem>>) -> Vec<String> {
        refused
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    fn raw() -> RawAdmin {
        crate::config::load_raw(None).unwrap().admin
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "READ" => Some("a-read-token-of-some-length".into()),
            "SHORT" => Some("short".into()),
            _ => None,
        }
    }

    fn bearing(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn off_loopback_the_read_token_is_required_unless_opted_out() {
        let anywhere = Some("0.0.0.0:9464".parse().unwrap());
        let problems = problems(Access::from_raw(&raw(), anywhere, &env));
        assert!(
            problems.len() == 1 && problems[0].starts_with("admin.read_token_env:"),
            "{problems:?}"
        );
        let loopback = Some("127.0.0.1:9464".parse().unwrap());
        let open = Access::from_raw(&raw(), loopback, &env).unwrap();
        assert!(open.may_read(&HeaderMap::new()).is_ok());
        let mut opted_out = raw();
        opted_out.read_token_required = false;
        assert!(Access::from_raw(&opted_out, anywhere, &env).is_ok());

        let mut with_token = raw();
        with_token.read_token_env = "READ".into();
        let access = Access::from_raw(&with_token, anywhere, &env).unwrap();
        assert!(access.may_read(&HeaderMap::new()).is_err());
        assert!(
            access
                .may_read(&bearing("wrong-token-of-some-length"))
                .is_err()
        );
        assert!(
            access
                .may_read(&bearing("a-read-token-of-some-length"))
                .is_ok()
        );
        assert!(
            access
                .may_change(&bearing("a-read-token-of-some-length"))
                .is_err(),
            "reading is not changing"
        );
        assert!(
            !format!("{access:?}").contains("a-read-token"),
            "never printed"
        );
    }

    #[test]
    fn bad_tokens_and_networks_are_named_by_their_key() {
        let mut bad = raw();
        bad.read_token_env = "SHORT".into();
        bad.peer_token_env = "MISSING".into();
        bad.peer_networks = vec!["10.0.0.0/8".into(), "pods".into()];
        let problems = problems(Access::from_raw(&bad, None, &env));
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("admin.read_token_env / admin.read_token_file"));
        assert!(problems[1].starts_with("admin.peer_token_env: environment variable MISSING"));
        assert!(problems[2].starts_with("admin.peer_networks[1]:"));
    }
}
