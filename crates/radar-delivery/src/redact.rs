//! Secrets taken out of every reason delivery stores or logs. A reason quotes what the
//! receiver answered, and a vendor or a proxy that echoes the request (its
//! `Authorization` header, a token in a JSON field) would otherwise put the token into
//! the dead-letter store, the dead-letter topic, `radar dlq list` and the logs.
//!
//! Removed: the destination's own secrets wherever they appear (also JSON-escaped), the
//! credential after `Bearer`, the value of an `Authorization` header or field, and the
//! value of any `key: value`, `"key": "value"` or `key=value` whose key names a
//! credential (`access_token`, `refresh_token`, `client_secret`, `password`, `api_key`…).
//! The scan is by bytes and cuts only at ASCII bytes, so any text is safe to give it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::outcome::DeliveryDecision;
use crate::queue::Settlement;
use crate::settings::{Destination, Target};

/// What replaces a secret.
pub const REDACTED: &str = "[redacted]";

/// Words that make a key's value a credential, matched in the key lowercased without
/// `_`, `-` and `.` (so `access_token`, `X-Api-Key` and `clientSecret` all match).
const CREDENTIAL_KEYS: &[&str] = &[
    "authorization",
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "credential",
    "cookie",
    "signature",
];

/// Removes secrets from reasons (see the module documentation).
#[derive(Clone, Default)]
pub struct Redactor {
    /// The destination's own secrets, longest first (so a secret containing another is
    /// removed whole), each also as JSON escapes it.
    secrets: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

impl Redactor {
    /// A redactor of `secrets` besides the credentials it recognises by their form.
    pub fn new<S: AsRef<str>>(secrets: impl IntoIterator<Item = S>) -> Redactor {
        let mut all = Vec::new();
        for secret in secrets {
            let secret = secret.as_ref();
            if secret.is_empty() {
                continue;
            }
            all.push(secret.to_owned());
            let escaped = secret.replace('\\', "\\\\").replace('/', "\\/");
            if escaped != secret {
                all.push(escaped);
            }
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        all.dedup();
        Redactor { secrets: all }
    }

    /// The redactor of a destination: its token, its signing secrets, or its URL when the
    /// URL is the secret (Slack's).
    pub fn for_destination(destination: &Destination) -> Redactor {
        let mut secrets = Vec::new();
        match &destination.target {
            Target::HubSpot { auth, .. } | Target::Salesforce { auth, .. } => {
                secrets.extend(auth.grant.secrets());
            }
            Target::Webhook { secrets: signing } => {
                for secret in signing {
                    let encoded = STANDARD.encode(secret.bytes());
                    secrets.push(format!("whsec_{encoded}"));
                    secrets.push(encoded);
                }
            }
            Target::Slack => {}
        }
        if destination.url_is_secret {
            secrets.push(destination.url.as_str().to_owned());
            let path = destination.url.path();
            if path.len() > 1 {
                secrets.push(path.to_owned());
            }
        }
        Redactor::new(secrets)
    }

    /// This redactor, and `more` besides: the tokens a destination holds now (renewed
    /// access tokens, rotated refresh tokens), which no configuration named.
    pub fn with<S: AsRef<str>>(&self, more: impl IntoIterator<Item = S>) -> Redactor {
        let more: Vec<String> = more.into_iter().map(|s| s.as_ref().to_owned()).collect();
        Redactor::new(
            self.secrets
                .iter()
                .map(String::as_str)
                .chain(more.iter().map(String::as_str)),
        )
    }

    /// `text` without the secrets it holds.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for secret in &self.secrets {
            if text.contains(secret.as_str()) {
                text = text.replace(secret.as_str(), REDACTED);
            }
        }
        by_form(&text)
    }

    /// Redacts every reason `outcome` carries: the retry's last error, the dead letter's
    /// reason, the reason to disable the destination.
    pub fn outcome(&self, outcome: &mut DeliveryDecision) {
        match &mut outcome.settlement {
            Settlement::Delivered(_) => {}
            Settlement::Retry { next, .. } => {
                if let Some(error) = &mut next.last_error {
                    *error = self.redact(error);
                }
            }
            Settlement::DeadLettered { dead, .. } => dead.reason = self.redact(&dead.reason),
        }
        if let Some(reason) = &mut outcome.disable {
            *reason = self.redact(reason);
        }
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.')
}

/// Where an unquoted credential ends: at white space, a quote, or punctuation that
/// separates fields in headers, JSON, query strings and prose.
fn ends_token(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || matches!(
            byte,
            b'"' | b'\'' | b',' | b';' | b'&' | b'}' | b']' | b')' | b'<' | b'>' | b'\\'
        )
}

/// Where an unquoted header value ends: `Authorization: Basic dXNl…` has a space in it.
fn ends_header(byte: u8) -> bool {
    matches!(
        byte,
        b'\n' | b'\r' | b'"' | b'\'' | b',' | b';' | b'&' | b'}' | b']' | b'\\'
    )
}

fn normalized(word: &[u8]) -> String {
    word.iter()
        .filter(|b| !matches!(b, b'_' | b'-' | b'.'))
        .map(|b| char::from(b.to_ascii_lowercase()))
        .collect()
}

/// The end of the value that starts at `at` (just past the separator and blanks), and
/// whether it was quoted (the end is then that of its content, before the closing quote).
fn value_end(bytes: &[u8], at: usize, header: bool) -> usize {
    match bytes.get(at) {
        Some(b'"') => {
            let mut i = at + 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i.min(bytes.len())
        }
        _ => {
            let ends = if header { ends_header } else { ends_token };
            let mut i = at;
            while i < bytes.len() && !ends(bytes[i]) {
                i += 1;
            }
            // A header value ends before the blanks that trail it.
            while header && i > at && bytes[i - 1].is_ascii_whitespace() {
                i -= 1;
            }
            i
        }
    }
}

/// Redacts the credentials recognised by their form (see the module documentation).
fn by_form(text: &str) -> String {
    let bytes = text.as_bytes();
    // (start, end) of each value to redact, in order and not overlapping.
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word(bytes[i]) || (i > 0 && is_word(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word(bytes[i]) {
            i += 1;
        }
        let word = normalized(&bytes[start..i]);
        let mut j = i;
        if word.ends_with("bearer") {
            // `Bearer <credential>`, whatever it is found in.
            while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
                j += 1;
            }
            let end = value_end(bytes, j, false);
            if j > i && end > j && bytes[j] != b'"' {
                cuts.push((j, end));
                i = end;
            }
            continue;
        }
        if !CREDENTIAL_KEYS.iter().any(|key| word.contains(key)) {
            continue;
        }
        // A key: its closing quote if quoted, blanks, `:` or `=`, blanks, the value.
        if bytes.get(j) == Some(&b'"') {
            j += 1;
        }
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        if !matches!(bytes.get(j), Some(b':' | b'=')) {
            continue;
        }
        j += 1;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\t') {
            j += 1;
        }
        let quoted = bytes.get(j) == Some(&b'"');
        let end = value_end(bytes, j, word.contains("authorization"));
        let from = if quoted { j + 1 } else { j };
        if end > from {
            cuts.push((from, end));
        }
        i = end.max(i);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end) in cuts {
        // Every cut starts and ends next to an ASCII byte (or the text's end): both are
        // character boundaries.
        out.push_str(&text[at..start]);
        out.push_str(REDACTED);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn redact(text: &str) -> String {
        Redactor::new(["configured-Secret/42"]).redact(text)
    }

    #[test]
    fn tokens_learned_at_run_time_are_removed_with_the_configured_ones() {
        let learned = Redactor::new(["configured-Secret/42"]).with(["na1-rotated-7f3e"]);
        assert_eq!(
            learned.redact("refused na1-rotated-7f3e after configured-Secret/42"),
            "refused [redacted] after [redacted]"
        );
    }

    #[test]
    fn echoed_credentials_are_removed_and_the_message_kept() {
        let cases = [
            (
                "HubSpot answered 400 VALIDATION_ERROR: bad header Authorization: Bearer pat-na1-1234",
                "HubSpot answered 400 VALIDATION_ERROR: bad header Authorization: [redacted]",
            ),
            (
                r#"{"message":"denied","request":{"headers":{"Authorization":"Bearer 00D!AQ4x.y"}}}"#,
                r#"{"message":"denied","request":{"headers":{"Authorization":"[redacted]"}}}"#,
            ),
            (
                r#"{"access_token": "ya29.a0Af", "refresh_token":"1//0g", "client_secret" : "s3", "expires_in": 3599}"#,
                r#"{"access_token": "[redacted]", "refresh_token":"[redacted]", "client_secret" : "[redacted]", "expires_in": 3599}"#,
            ),
            (
                "POST /token?grant_type=refresh&client_secret=abc&x=1 failed",
                "POST /token?grant_type=refresh&client_secret=[redacted]&x=1 failed",
            ),
            (
                "proxy said: authorization: Basic dXNlcjpwYXNz\nthen closed",
                "proxy said: authorization: [redacted]\nthen closed",
            ),
            (
                "token bearer abc.def-123 refused",
                "token bearer [redacted] refused",
            ),
            (
                r#"echo {"k":"configured-Secret\/42"} and configured-Secret/42"#,
                r#"echo {"k":"[redacted]"} and [redacted]"#,
            ),
        ];
        for (text, redacted) in cases {
            assert_eq!(redact(text), redacted, "{text}");
        }
        // What vendors say without a credential stays as it is.
        for kept in [
            "Salesforce answered 401 INVALID_SESSION_ID: Session expired or invalid",
            "HubSpot answered 401 EXPIRED_AUTHENTICATION: The OAuth token used to make this call expired 2 hour(s) ago.",
            "HTTP 503; gave up after 8 attempts",
            "",
            "é Bearer",
        ] {
            assert_eq!(redact(kept), kept);
        }
    }

    #[test]
    fn a_destinations_secrets_are_its_token_signing_secrets_and_secret_url() {
        let env = |name: &str| match name {
            "TOKEN" => Some("pat-na1-0123456789".to_owned()),
            "SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
            "SLACK" => Some("https://hooks.slack.com/services/T0/B0/XyZ123secret".to_owned()),
            _ => None,
        };
        let raw: crate::RawDelivery = toml::from_str(
            r#"
            [[destinations]]
            name = "crm"
            kind = "hubspot"
            url = "https://api.hubapi.com"
            secret_env = "TOKEN"
            [[destinations]]
            name = "hook"
            kind = "webhook"
            url = "https://example.com/hook"
            secret_env = "SECRET"
            [[destinations]]
            name = "slack"
            kind = "slack"
            url_env = "SLACK"
            "#,
        )
        .unwrap();
        let settings = crate::settings::build(&raw, &env).unwrap();
        let said = "echo: pat-na1-0123456789 whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw https://hooks.slack.com/services/T0/B0/XyZ123secret /services/T0/B0/XyZ123secret";
        for destination in &settings.destinations {
            let redacted = Redactor::for_destination(destination).redact(said);
            let secret = match destination.name.as_str() {
                "crm" => "pat-na1",
                "hook" => "MfKQ9r8",
                _ => "XyZ123secret",
            };
            assert!(!redacted.contains(secret), "{redacted}");
        }
    }

    /// A credential in any of the forms an echo puts it in, amid any text.
    fn echoed() -> impl Strategy<Value = (String, String)> {
        let token = "[A-Za-z0-9._~+/=!-]{6,40}";
        let form = prop_oneof![
            Just("Authorization: Bearer {}"),
            Just("authorization: {}"),
            Just(r#""Authorization":"Bearer {}""#),
            Just(r#"{"access_token":"{}","x":1}"#),
            Just(r#""refresh_token" : "{}""#),
            Just(r#"{"client_secret": "{}"}"#),
            Just("client_secret={}&next=1"),
            Just("password={}"),
            Just("X-Api-Key: {}"),
            Just("Bearer {}"),
            Just("configured {}"),
        ];
        (token, form).prop_map(|(token, form)| (token.clone(), form.replace("{}", &token)))
    }

    proptest! {
        #[test]
        fn no_echoed_credential_survives(
            (token, echo) in echoed(),
            before in "\\PC{0,40}",
            after in "\\PC{0,40}",
            separator in prop_oneof![Just(" "), Just("\n"), Just(", "), Just("{")],
        ) {
            let redactor = Redactor::new([&token]);
            let text = format!("{before}{separator}{echo}{separator}{after}");
            let redacted = redactor.redact(&text);
            prop_assert!(!redacted.contains(&token), "{text:?} → {redacted:?}");
            // A form alone, without the secret configured.
            if !echo.starts_with("configured") {
                let by_form = Redactor::default().redact(&format!("{separator}{echo}{separator}"));
                prop_assert!(!by_form.contains(&token), "{echo:?} → {by_form:?}");
            }
        }

        #[test]
        fn any_text_is_redacted_without_panicking(text in "\\PC{0,200}", bytes in any::<Vec<u8>>()) {
            redact(&text);
            redact(&String::from_utf8_lossy(&bytes));
        }
    }
}
