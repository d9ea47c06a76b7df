//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, one entry per secret, space-separated, so a receiver can
//! rotate its secret without missing a delivery. Pure; secrets never print.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;

/// A signing secret: the bytes behind `whsec_<base64>`.
#[derive(Debug, Clone)]
pub struct SigningSecret(SecretSlice<u8>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("a webhook secret must look like whsec_<base64>")]
    Prefix,
    #[error("the part after whsec_ is not base64")]
    Base64,
    #[error("a webhook secret must decode to 24 to 64 bytes, this one is {0}")]
    Length(usize),
}

impl SigningSecret {
    pub fn parse(text: &str) -> Result<SigningSecret, SecretError> {
        let encoded = text
            .trim()
            .strip_prefix("whsec_")
            .ok_or(SecretError::Prefix)?;
        let bytes = STANDARD.decode(encoded).map_err(|_| SecretError::Base64)?;
        if !(24..=64).contains(&bytes.len()) {
            return Err(SecretError::Length(bytes.len()));
        }
        Ok(SigningSecret(bytes.into()))
    }

    /// The secret's bytes, for taking it out of what receivers echo (see
    /// [`crate::redact`]).
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// Every secret in `text`, separated by whitespace (rotation: old and new at once).
    pub fn parse_all(text: &str) -> Result<Vec<SigningSecret>, SecretError> {
        let secrets: Vec<_> = text
            .split_whitespace()
            .map(SigningSecret::parse)
            .collect::<Result<_, _>>()?;
        if secrets.is_empty() {
            return Err(SecretError::Prefix);
        }
        Ok(secrets)
    }
}

/// The `webhook-signature` header value for message `id` sent at `timestamp` (Unix s).
pub fn sign(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut header = String::new();
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.0.expose_secret())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference vector published with the Standard Webhooks specification.
    #[test]
    fn matches_the_specifications_reference_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            sign(
                &[secret],
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn several_secrets_give_several_signatures_in_order() {
        let secrets = SigningSecret::parse_all(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA==",
        )
        .unwrap();
        let header = sign(
            &secrets,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let parts: Vec<_> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(parts[1].starts_with("v1,") && parts[1] != parts[0]);
    }

    #[test]
    fn malformed_secrets_are_refused_and_never_printed() {
        assert_eq!(
            SigningSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::Prefix
        );
        assert_eq!(
            SigningSecret::parse("whsec_not base64!").unwrap_err(),
            SecretError::Base64
        );
        assert_eq!(
            SigningSecret::parse("whsec_c2hvcnQ=").unwrap_err(),
            SecretError::Length(5)
        );
        assert!(SigningSecret::parse_all("   ").is_err());
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert!(!format!("{secret:?}").contains("MfKQ"));
    }
}
