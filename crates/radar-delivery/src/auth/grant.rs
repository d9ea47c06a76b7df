//! The OAuth 2.0 token requests a CRM destination makes and what their answers mean,
//! pure: the form each grant posts, the RS256 assertion of Salesforce's JWT bearer flow,
//! and the token (or the refusal) an answer carries.
//!
//! Salesforce answers a JWT bearer or client-credentials grant without `expires_in` and
//! without a refresh token; HubSpot answers a refresh with `expires_in` and, when it
//! rotates them, a new refresh token. Both refuse with RFC 6749's `error` and
//! `error_description` (HubSpot adds `status` and `message`).

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Url};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::payload::HttpRequest;

/// The grant type of Salesforce's JWT bearer flow (RFC 7523).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How long an assertion is valid: Salesforce refuses one whose `exp` is more than three
/// minutes ahead, so this leaves room for a clock that runs a little ahead of the org's.
pub const ASSERTION_LIFETIME_S: u64 = 150;

/// A token request: `POST` of `form` to the token endpoint. No `Authorization` header:
/// the client authenticates in the body, as both vendors document.
pub fn request(token_url: &Url, form: &[(&str, &str)]) -> HttpRequest {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    HttpRequest {
        method: Method::POST,
        url: token_url.clone(),
        headers: vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_owned(),
            ),
            ("accept", "application/json".to_owned()),
        ],
        body: body.into_bytes(),
    }
}

/// The audience of a JWT bearer assertion: Salesforce takes only its login hosts, so a
/// sandbox (`test.salesforce.com`, or a My Domain under `.sandbox.my.salesforce.com`)
/// is `https://test.salesforce.com`, and anything else `https://login.salesforce.com`,
/// wherever the assertion is posted.
pub fn audience(login_url: &Url) -> &'static str {
    let host = login_url.host_str().unwrap_or_default();
    if host == "test.salesforce.com" || host.ends_with(".sandbox.my.salesforce.com") {
        "https://test.salesforce.com"
    } else {
        "https://login.salesforce.com"
    }
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
}

/// The signed assertion of the JWT bearer flow: issued by the connected app
/// (`client_id`), for `username`, to `audience` (the login host), valid until
/// [`ASSERTION_LIFETIME_S`] after `now_s`.
pub fn assertion(
    client_id: &str,
    username: &str,
    audience: &str,
    now_s: u64,
    key: &EncodingKey,
) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims {
        iss: client_id,
        sub: username,
        aud: audience,
        exp: now_s + ASSERTION_LIFETIME_S,
    };
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, key)
}

/// A token the endpoint issued.
#[derive(Debug)]
pub struct Issued {
    pub access_token: SecretString,
    /// Salesforce: the org's instance, where the REST API is called.
    pub instance_url: Option<Url>,
    /// Seconds the token lives, when the vendor says (HubSpot does, Salesforce does not).
    pub expires_in: Option<u64>,
    /// A new refresh token, when the vendor rotates them.
    pub refresh_token: Option<SecretString>,
}

/// Why no token was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    /// The endpoint refused the credentials (`invalid_grant`, `invalid_client`, …): they
    /// will not work until someone (or the vendor) changes something.
    #[error("the token endpoint refused the credentials: {0}")]
    Refused(String),
    /// The endpoint did not answer usefully (an outage, a rate limit, a body that is not
    /// a token): it may work when asked again.
    #[error("the token endpoint did not issue a token: {0}")]
    Unavailable(String),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(alias = "accessToken")]
    access_token: Option<String>,
    instance_url: Option<String>,
    #[serde(alias = "expiresIn")]
    expires_in: Option<u64>,
    #[serde(alias = "refreshToken")]
    refresh_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct Refusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
    /// HubSpot's own fields, beside (or instead of) RFC 6749's.
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

/// What the token endpoint's answer (`status`, `body`) means.
pub fn parse(status: u16, body: &[u8]) -> Result<Issued, GrantError> {
    if (200..300).contains(&status) {
        let answer: Answer = serde_json::from_slice(body)
            .map_err(|e| GrantError::Unavailable(format!("the answer is not a token: {e}")))?;
        let access_token = answer
            .access_token
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| GrantError::Unavailable("the answer has no access_token".into()))?;
        let instance_url = match answer.instance_url {
            None => None,
            Some(text) => Some(Url::parse(&text).map_err(|e| {
                GrantError::Unavailable(format!("its instance_url {text:?} is not a URL: {e}"))
            })?),
        };
        return Ok(Issued {
            access_token: access_token.trim().to_owned().into(),
            instance_url,
            expires_in: answer.expires_in,
            refresh_token: answer.refresh_token.map(SecretString::from),
        });
    }
    let refusal: Refusal = serde_json::from_slice(body).unwrap_or_default();
    let said = [
        refusal.error.as_str(),
        refusal.error_description.as_str(),
        refusal.status.as_str(),
        refusal.message.as_str(),
    ]
    .iter()
    .filter(|part| !part.is_empty())
    .copied()
    .collect::<Vec<_>>()
    .join(": ");
    let said = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status} {said}")
    };
    match status {
        408 | 429 | 500.. => Err(GrantError::Unavailable(said)),
        _ => Err(GrantError::Refused(said)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_salesforce_answer_has_an_instance_and_no_lifetime() {
        let body = br#"{"access_token":"00D!AQ","scope":"api","instance_url":"https://acme.my.salesforce.com","id":"x","token_type":"Bearer","issued_at":"1","signature":"s"}"#;
        let issued = parse(200, body).unwrap();
        assert_eq!(issued.access_token.expose_secret(), "00D!AQ");
        assert_eq!(
            issued.instance_url.unwrap().as_str(),
            "https://acme.my.salesforce.com/"
        );
        assert_eq!(issued.expires_in, None);
        assert!(issued.refresh_token.is_none());
    }

    #[test]
    fn a_hubspot_refresh_gives_a_lifetime_and_maybe_a_new_refresh_token() {
        let body = br#"{"token_type":"bearer","refresh_token":"rt-2","access_token":"at","expires_in":1800}"#;
        let issued = parse(200, body).unwrap();
        assert_eq!(issued.expires_in, Some(1800));
        assert_eq!(issued.refresh_token.unwrap().expose_secret(), "rt-2");
    }

    #[test]
    fn refusals_and_outages_are_told_apart_with_what_the_vendor_said() {
        let refused = parse(
            400,
            br#"{"error":"invalid_grant","error_description":"user hasn't approved this consumer"}"#,
        );
        assert_eq!(
            refused.unwrap_err(),
            GrantError::Refused(
                "HTTP 400 invalid_grant: user hasn't approved this consumer".into()
            )
        );
        let hubspot = parse(
            400,
            br#"{"status":"BAD_REFRESH_TOKEN","message":"missing or unknown refresh token"}"#,
        );
        assert!(
            matches!(hubspot, Err(GrantError::Refused(ref s)) if s.contains("BAD_REFRESH_TOKEN")),
            "{hubspot:?}"
        );
        assert!(matches!(
            parse(503, b"<html>down</html>"),
            Err(GrantError::Unavailable(_))
        ));
        assert!(matches!(
            parse(200, br#"{"token_type":"bearer"}"#),
            Err(GrantError::Unavailable(_))
        ));
    }

    #[test]
    fn the_audience_is_a_login_host_whatever_the_url() {
        let audience = |url: &str| audience(&Url::parse(url).unwrap());
        assert_eq!(
            audience("https://login.salesforce.com"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience("https://acme.my.salesforce.com/"),
            "https://login.salesforce.com"
        );
        assert_eq!(
            audience("https://test.salesforce.com"),
            "https://test.salesforce.com"
        );
        assert_eq!(
            audience("https://acme--uat.sandbox.my.salesforce.com"),
            "https://test.salesforce.com"
        );
    }

    #[test]
    fn a_token_request_is_a_form_without_authorization() {
        let url = Url::parse("https://login.salesforce.com/services/oauth2/token").unwrap();
        let request = request(&url, &[("grant_type", JWT_BEARER), ("assertion", "a.b+c")]);
        assert_eq!(request.method, Method::POST);
        assert_eq!(
            String::from_utf8(request.body).unwrap(),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=a.b%2Bc"
        );
        assert!(
            request
                .headers
                .iter()
                .all(|(name, _)| *name != "authorization")
        );
    }
}
