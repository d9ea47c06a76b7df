//! The `auth` keys of a CRM destination turned into [`AuthSettings`]: which grant, its
//! keys complete, its secrets read (from the environment or files, never the config),
//! the private key parsed and tried — every problem reported under its key, so `radar
//! validate` lists everything missing at once.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use secrecy::SecretString;

use super::secrets::{private_key, read_secret};
use super::{AuthSettings, Grant};
use crate::crm::config::Vendor;
use crate::settings::Env;

/// A token whose lifetime the vendor does not say lives this long: Salesforce's default
/// session timeout.
pub const DEFAULT_SESSION_LIFETIME: Duration = Duration::from_secs(2 * 3_600);
/// The longest wait between two tries of credentials that fail.
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_secs(15 * 60);
/// Where Salesforce's OAuth flows log in unless `login_url` says otherwise.
const SALESFORCE_LOGIN: &str = "https://login.salesforce.com";

/// The `auth` keys of a destination, as written.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawAuth<'a> {
    pub auth: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub username: Option<&'a str>,
    pub login_url: Option<&'a str>,
    pub private_key_file: Option<&'a Path>,
    pub private_key_env: Option<&'a str>,
    pub client_secret_file: Option<&'a Path>,
    pub client_secret_env: Option<&'a str>,
    pub refresh_token_file: Option<&'a Path>,
    pub refresh_token_env: Option<&'a str>,
    pub session_lifetime: Option<&'a str>,
    pub auth_retry_cap: Option<&'a str>,
}

impl RawAuth<'_> {
    /// Whether the destination uses a static token (`auth = "token"`, the default).
    pub fn is_static(&self) -> bool {
        matches!(self.auth, None | Some("token"))
    }

    /// The OAuth keys given, for refusing them where they mean nothing.
    pub fn oauth_keys_given(&self) -> Vec<&'static str> {
        [
            ("client_id", self.client_id.is_some()),
            ("username", self.username.is_some()),
            ("login_url", self.login_url.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
            ("private_key_env", self.private_key_env.is_some()),
            ("client_secret_file", self.client_secret_file.is_some()),
            ("client_secret_env", self.client_secret_env.is_some()),
            ("refresh_token_file", self.refresh_token_file.is_some()),
            ("refresh_token_env", self.refresh_token_env.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
        .collect()
    }
}

fn duration(
    key: &str,
    text: Option<&str>,
    default: Duration,
    fail: &mut dyn FnMut(&str, String),
) -> Duration {
    match text.map(humantime::parse_duration) {
        None => default,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            fail(key, "must be more than zero".into());
            default
        }
        Some(Err(e)) => {
            fail(key, format!("not a duration like 2h or 15m: {e}"));
            default
        }
    }
}

/// Everything [`build`] needs besides the `auth` keys.
pub struct Context<'a> {
    pub vendor: Vendor,
    /// The destination's `url`, once it parsed.
    pub url: Option<&'a Url>,
    /// The static token, read from `secret_env` or `secret_file` when `auth = "token"`.
    pub token: Option<SecretString>,
    /// `secret_file`, read again when the vendor refuses a static token.
    pub token_file: Option<PathBuf>,
    pub env: Env<'a>,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("vendor", &self.vendor)
            .field("url", &self.url.map(Url::as_str))
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// The destination's auth settings from `raw`; each problem goes to `fail` with its key.
pub fn build(
    raw: &RawAuth<'_>,
    context: Context<'_>,
    fail: &mut dyn FnMut(&str, String),
) -> Option<AuthSettings> {
    let Context {
        vendor,
        url,
        token,
        token_file,
        env,
    } = context;
    let session_lifetime = duration(
        "session_lifetime",
        raw.session_lifetime,
        DEFAULT_SESSION_LIFETIME,
        fail,
    );
    let retry_cap = duration(
        "auth_retry_cap",
        raw.auth_retry_cap,
        DEFAULT_RETRY_CAP,
        fail,
    );
    let salesforce_only = |fail: &mut dyn FnMut(&str, String), name: &str| {
        if vendor == Vendor::HubSpot {
            fail(
                "auth",
                format!("{name:?} is Salesforce's; HubSpot takes \"token\" or \"refresh_token\""),
            );
        }
    };
    let required = |key: &str, value: Option<&str>, fail: &mut dyn FnMut(&str, String)| match value
        .map(str::trim)
    {
        Some(value) if !value.is_empty() => Some(value.to_owned()),
        _ => {
            fail(
                key,
                format!("auth = {:?} needs it", raw.auth.unwrap_or("token")),
            );
            None
        }
    };
    let login_url = |default: Option<&Url>, fail: &mut dyn FnMut(&str, String)| {
        let text = match (raw.login_url, default) {
            (Some(text), _) => text.to_owned(),
            (None, Some(url)) => url.as_str().to_owned(),
            (None, None) => return None,
        };
        match Url::parse(&text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Some(url)
            }
            _ => {
                fail("login_url", format!("{text:?} is not an http(s) URL"));
                None
            }
        }
    };
    let salesforce_login = Url::parse(SALESFORCE_LOGIN).ok();
    let name = raw.auth.unwrap_or("token");
    let takes: &[&str] = match name {
        "jwt_bearer" => &[
            "client_id",
            "username",
            "login_url",
            "private_key_file",
            "private_key_env",
        ],
        "client_credentials" => &[
            "client_id",
            "login_url",
            "client_secret_file",
            "client_secret_env",
        ],
        "refresh_token" => &[
            "client_id",
            "login_url",
            "client_secret_file",
            "client_secret_env",
            "refresh_token_file",
            "refresh_token_env",
        ],
        _ => &[],
    };
    if name != "token" {
        for key in raw.oauth_keys_given() {
            if !takes.contains(&key) {
                fail(key, format!("auth = {name:?} does not take it"));
            }
        }
    }
    let grant = match name {
        "token" => {
            for key in raw.oauth_keys_given() {
                fail(
                    key,
                    "only an OAuth auth takes it (jwt_bearer, client_credentials, refresh_token)"
                        .into(),
                );
            }
            if raw.session_lifetime.is_some() {
                fail(
                    "session_lifetime",
                    "a static token is not renewed by age, only when it is refused".into(),
                );
            }
            Some(Grant::Static {
                token: token?,
                file: token_file,
            })
        }
        "jwt_bearer" => {
            salesforce_only(fail, "jwt_bearer");
            let client_id = required("client_id", raw.client_id, fail);
            let username = required("username", raw.username, fail);
            let key = private_key(raw, env, fail);
            let login_url = login_url(salesforce_login.as_ref(), fail);
            Some(Grant::JwtBearer {
                client_id: client_id?,
                username: username?,
                login_url: login_url?,
                key: Arc::new(key?),
            })
        }
        "client_credentials" => {
            salesforce_only(fail, "client_credentials");
            let client_id = required("client_id", raw.client_id, fail);
            let secret = read_secret(
                "client_secret",
                raw.client_secret_env,
                raw.client_secret_file,
                env,
                fail,
            );
            // The flow runs on the org's My Domain host, which is the destination's url.
            let login_url = login_url(url, fail);
            Some(Grant::ClientCredentials {
                client_id: client_id?,
                secret: secret?.into(),
                login_url: login_url?,
            })
        }
        "refresh_token" => {
            let client_id = required("client_id", raw.client_id, fail);
            let secret = read_secret(
                "client_secret",
                raw.client_secret_env,
                raw.client_secret_file,
                env,
                fail,
            );
            if vendor == Vendor::HubSpot && raw.refresh_token_env.is_some() {
                fail(
                    "refresh_token_env",
                    "HubSpot may rotate refresh tokens: give refresh_token_file, which radar \
                     rewrites with each new one so a restart uses it"
                        .into(),
                );
            }
            let refresh_token = read_secret(
                "refresh_token",
                raw.refresh_token_env,
                raw.refresh_token_file,
                env,
                fail,
            );
            let login_url = match vendor {
                Vendor::HubSpot => login_url(url, fail),
                Vendor::Salesforce => login_url(salesforce_login.as_ref(), fail),
            };
            Some(Grant::RefreshToken {
                client_id: client_id?,
                secret: secret?.into(),
                refresh_token: refresh_token?.into(),
                file: raw.refresh_token_file.map(Path::to_path_buf),
                login_url: login_url?,
            })
        }
        other => {
            fail(
                "auth",
                format!(
                    "{other:?} is not one of token, jwt_bearer, client_credentials, refresh_token"
                ),
            );
            None
        }
    }?;
    let token_url = match &grant {
        Grant::Static { .. } => None,
        Grant::JwtBearer { login_url, .. }
        | Grant::ClientCredentials { login_url, .. }
        | Grant::RefreshToken { login_url, .. } => {
            let path = match vendor {
                Vendor::Salesforce => "services/oauth2/token",
                Vendor::HubSpot => "oauth/2026-03/token",
            };
            let mut base = login_url.clone();
            if !base.path().ends_with('/') {
                base.set_path(&format!("{}/", base.path()));
            }
            match base.join(path) {
                Ok(url) => Some(url),
                Err(e) => {
                    fail("login_url", format!("no token endpoint under it: {e}"));
                    return None;
                }
            }
        }
    };
    Some(AuthSettings {
        grant,
        token_url,
        session_lifetime,
        retry_cap,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn problems(vendor: Vendor, raw: &RawAuth<'_>) -> (Option<AuthSettings>, Vec<String>) {
        let url = Url::parse("https://acme.my.salesforce.com").unwrap();
        let env = |name: &str| (name == "KEY").then(|| "not a key".to_owned());
        let mut found = Vec::new();
        let context = Context {
            vendor,
            url: Some(&url),
            token: Some("static".to_owned().into()),
            token_file: None,
            env: &env,
        };
        let settings = build(raw, context, &mut |key, message| {
            found.push(format!("{key}: {message}"))
        });
        (settings, found)
    }

    fn keys(found: &[String]) -> Vec<&str> {
        found
            .iter()
            .map(|e| e.split(':').next().unwrap_or_default())
            .collect()
    }

    #[test]
    fn what_a_grant_lacks_is_listed_by_key() {
        let (settings, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("jwt_bearer"),
                ..RawAuth::default()
            },
        );
        assert!(settings.is_none());
        assert_eq!(
            keys(&found),
            ["client_id", "username", "private_key_env"],
            "{found:#?}"
        );
        let (_, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("refresh_token"),
                client_id: Some("app"),
                ..RawAuth::default()
            },
        );
        assert_eq!(
            keys(&found),
            ["client_secret_env", "refresh_token_env"],
            "{found:#?}"
        );
    }

    #[test]
    fn a_private_key_that_cannot_sign_is_refused_at_start() {
        let (_, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("jwt_bearer"),
                client_id: Some("app"),
                username: Some("u@acme.test"),
                private_key_env: Some("KEY"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["private_key_env"], "{found:#?}");
        assert!(found[0].contains("not an RSA private key"), "{found:?}");
    }

    #[test]
    fn a_jwt_bearer_grant_posts_to_the_login_host() {
        let dir = tempfile::tempdir().unwrap();
        let keys = radar_standin::salesforce::KeyPair::generate().unwrap();
        let key = dir.path().join("radar.key");
        std::fs::write(&key, keys.private_pem).unwrap();
        let (settings, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("jwt_bearer"),
                client_id: Some("app"),
                username: Some("u@acme.test"),
                private_key_file: Some(&key),
                session_lifetime: Some("8h"),
                ..RawAuth::default()
            },
        );
        assert!(found.is_empty(), "{found:?}");
        let settings = settings.unwrap();
        assert_eq!(settings.grant.name(), "jwt_bearer");
        assert_eq!(
            settings.token_url.unwrap().as_str(),
            "https://login.salesforce.com/services/oauth2/token"
        );
        assert_eq!(settings.session_lifetime, Duration::from_secs(8 * 3_600));
        assert_eq!(settings.retry_cap, DEFAULT_RETRY_CAP);
    }

    #[test]
    fn each_vendor_takes_only_its_own_flows() {
        let (_, found) = problems(
            Vendor::HubSpot,
            &RawAuth {
                auth: Some("client_credentials"),
                client_id: Some("app"),
                client_secret_env: Some("KEY"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["auth"], "{found:#?}");
        let (_, found) = problems(
            Vendor::HubSpot,
            &RawAuth {
                auth: Some("refresh_token"),
                client_id: Some("app"),
                client_secret_env: Some("KEY"),
                refresh_token_env: Some("KEY"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["refresh_token_env"], "{found:#?}");
        let (settings, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("client_credentials"),
                client_id: Some("app"),
                client_secret_env: Some("KEY"),
                ..RawAuth::default()
            },
        );
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(
            settings.unwrap().token_url.unwrap().as_str(),
            "https://acme.my.salesforce.com/services/oauth2/token",
            "client credentials run on the org's My Domain host"
        );
    }

    #[test]
    fn a_key_the_chosen_grant_does_not_use_is_refused() {
        let (_, found) = problems(
            Vendor::Salesforce,
            &RawAuth {
                auth: Some("client_credentials"),
                client_id: Some("app"),
                client_secret_env: Some("KEY"),
                username: Some("u@acme.test"),
                refresh_token_env: Some("KEY"),
                ..RawAuth::default()
            },
        );
        assert_eq!(
            keys(&found),
            ["username", "refresh_token_env"],
            "{found:#?}"
        );
        let (_, found) = problems(
            Vendor::HubSpot,
            &RawAuth {
                session_lifetime: Some("2h"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["session_lifetime"], "{found:#?}");
    }

    #[test]
    fn a_static_token_takes_no_oauth_keys_and_unknown_auths_are_named() {
        let (_, found) = problems(
            Vendor::HubSpot,
            &RawAuth {
                client_id: Some("app"),
                auth_retry_cap: Some("0s"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["auth_retry_cap", "client_id"], "{found:#?}");
        let (_, found) = problems(
            Vendor::HubSpot,
            &RawAuth {
                auth: Some("password"),
                ..RawAuth::default()
            },
        );
        assert_eq!(keys(&found), ["auth"], "{found:#?}");
    }
}
