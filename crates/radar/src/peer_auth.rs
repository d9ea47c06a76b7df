//! How instances of a group trust each other when one asks another for an account.
//! Anything that joins the consumer group names an admin address in its client id, so
//! an address from the group is no proof of being radar: each request carries an HMAC
//! under the peer token (with a fresh nonce, the time, the address asked and the path),
//! and each answer an HMAC of its body bound to that request. The token itself never
//! crosses the network, so a member that is not radar learns nothing it could answer
//! with, and a request captured on its way is good only at the address it was sent to,
//! for [`FRESH_MS`].

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// The request header: `<unix ms>.<nonce>.<hmac>`, hex.
pub const REQUEST_HEADER: &str = "radar-peer";
/// The answer header: the HMAC of the answer's body, bound to the request's, hex.
pub const PROOF_HEADER: &str = "radar-peer-proof";
/// How far a request's time may be from the answerer's clock.
const FRESH_MS: i64 = 30_000;

type HmacSha256 = Hmac<Sha256>;

/// Why a peer request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the radar-peer header is not <time>.<nonce>.<hmac>")]
    Malformed,
    #[error("the request's time is more than 30 s from this instance's clock")]
    Stale,
    #[error("the request's HMAC is not one of the peer token")]
    Forged,
}

/// A signed request: its header value, and its HMAC, which the answer's proof is bound to.
#[derive(Debug, Clone)]
pub struct Signed {
    pub header: String,
    mac: Vec<u8>,
}

fn mac(token: &SecretString, parts: &[&[u8]]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(token.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn request_mac(
    token: &SecretString,
    time: &str,
    nonce: &str,
    host: &str,
    path: &str,
) -> HmacSha256 {
    mac(
        token,
        &[
            b"radar-peer-request",
            time.as_bytes(),
            nonce.as_bytes(),
            host.as_bytes(),
            path.as_bytes(),
        ],
    )
}

/// Signs a request to `host` (as its `Host` header will say) for `path` (with its query).
pub fn sign(token: &SecretString, host: &str, path: &str, now_ms: i64) -> Signed {
    let nonce = hex(&rand::random::<[u8; 16]>());
    let time = now_ms.to_string();
    let mac = request_mac(token, &time, &nonce, host, path)
        .finalize()
        .into_bytes()
        .to_vec();
    Signed {
        header: format!("{time}.{nonce}.{}", hex(&mac)),
        mac,
    }
}

/// Checks a request's header against the `Host` it came with and its path, in constant
/// time; the request's HMAC, for [`prove`].
pub fn verify(
    token: &SecretString,
    header: &str,
    host: &str,
    path: &str,
    now_ms: i64,
) -> Result<Vec<u8>, Refused> {
    let mut parts = header.splitn(3, '.');
    let (Some(time), Some(nonce), Some(given)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refused::Malformed);
    };
    let at: i64 = time.parse().map_err(|_| Refused::Malformed)?;
    let given = unhex(given).ok_or(Refused::Malformed)?;
    if nonce.len() != 32 {
        return Err(Refused::Malformed);
    }
    if now_ms.abs_diff(at) > FRESH_MS.unsigned_abs() {
        return Err(Refused::Stale);
    }
    request_mac(token, time, nonce, host, path)
        .verify_slice(&given)
        .map_err(|_| Refused::Forged)?;
    Ok(given)
}

/// The proof an answer with `body` carries, bound to the request whose HMAC is `request`.
pub fn prove(token: &SecretString, request: &[u8], body: &[u8]) -> String {
    hex(&mac(token, &[b"radar-peer-answer", request, body])
        .finalize()
        .into_bytes())
}

/// Whether `proof` is the answer's to `signed` with `body`, in constant time.
pub fn proven(token: &SecretString, signed: &Signed, body: &[u8], proof: &str) -> bool {
    unhex(proof).is_some_and(|proof| {
        mac(token, &[b"radar-peer-answer", &signed.mac, body])
            .verify_slice(&proof)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn a_request_verifies_only_with_the_token_where_and_when_it_was_sent() {
        let key = token("a-peer-token-of-some-length");
        let path = "/v1/accounts/acme?local=true";
        let signed = sign(&key, "10.0.0.7:9464", path, 1_000_000);
        assert!(!signed.header.contains("a-peer-token"));
        let request = verify(&key, &signed.header, "10.0.0.7:9464", path, 1_010_000).unwrap();
        let other = token("another-token-of-some-length");
        for (key, host, path, now, refused) in [
            (&other, "10.0.0.7:9464", path, 1_000_000, Refused::Forged),
            (&key, "10.0.0.8:9464", path, 1_000_000, Refused::Forged),
            (
                &key,
                "10.0.0.7:9464",
                "/v1/accounts/globex?local=true",
                1_000_000,
                Refused::Forged,
            ),
            (&key, "10.0.0.7:9464", path, 1_031_000, Refused::Stale),
        ] {
            assert_eq!(verify(key, &signed.header, host, path, now), Err(refused));
        }
        assert_eq!(
            verify(&key, "1000000.x.y", "h", path, 1_000_000),
            Err(Refused::Malformed)
        );

        let body = br#"{"stream_time":1}"#;
        let proof = prove(&key, &request, body);
        assert!(proven(&key, &signed, body, &proof));
        assert!(!proven(&key, &signed, br#"{"stream_time":2}"#, &proof));
        assert!(!proven(&key, &signed, body, &prove(&other, &request, body)));
        let again = sign(&key, "10.0.0.7:9464", path, 1_000_000);
        assert!(!proven(&key, &again, body, &proof), "bound to its request");
    }
}
