//! What both stand-ins need around their handlers: a loopback listener, query strings and
//! form bodies, bearer tokens, wall-clock timestamps and random token material.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::SystemTime;

use axum::Router;
use axum::http::{HeaderMap, Uri, header};
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::net::TcpListener;

/// Binds 127.0.0.1 on a free port.
///
/// Loopback only: a stand-in is for tests and demos on this machine, never a network
/// service.
pub(crate) async fn bind() -> io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// Serves `router` on the current runtime. The server lives as long as the runtime: a
/// test's runtime ends with the test, the demo's with the process.
pub(crate) fn spawn(listener: TcpListener, router: Router) {
    tokio::spawn(async move {
        let addr = listener.local_addr().ok();
        if let Err(err) = axum::serve(listener, router).await {
            tracing::warn!(?addr, reason = %err, "stand-in server stopped");
        }
    });
}

/// The query string's pairs, percent-decoded, in order (repeated keys kept).
///
/// Hand-rolled because the workspace builds axum without its `query` feature.
pub(crate) fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    pairs(uri.query().unwrap_or(""))
}

/// The pairs of an `application/x-www-form-urlencoded` body, percent-decoded, in order.
///
/// Both vendors' OAuth token endpoints take their parameters this way. A body that is
/// not UTF-8 is read lossily: its pairs then match no parameter a client meant to send.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    pairs(&String::from_utf8_lossy(body))
}

/// The first value of `key` among `pairs`.
pub(crate) fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find_map(|(k, v)| (k == key).then_some(v.as_str()))
}

/// `key=value&key=value`, as a query string or a form body holds it.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
        .collect()
}

/// The first value of `key` in the query string.
pub(crate) fn query_value(uri: &Uri, key: &str) -> Option<String> {
    query_pairs(uri)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(text: &str) -> String {
    fn hex(byte: u8) -> Option<u8> {
        char::from(byte)
            .to_digit(16)
            .and_then(|digit| u8::try_from(digit).ok())
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', high, low]) => hex(high).zip(hex(low)).map(|(h, l)| h * 16 + l),
            _ => None,
        };
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(byte);
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// Now, in UTC. The stand-ins stamp records with wall-clock time as the vendors do.
pub(crate) fn now() -> DateTime<Utc> {
    DateTime::<Utc>::from(SystemTime::now())
}

/// RFC 3339 with milliseconds and `Z`, the form both vendors answer with.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `bytes` random bytes from the operating system, as lowercase hex: the unguessable
/// part of the tokens the stand-ins issue.
///
/// Should the OS refuse, the clock stands in: the tokens stay unique (each also carries
/// a counter) though no longer unguessable, which a loopback test server can live with.
pub(crate) fn random_hex(bytes: usize) -> String {
    use rsa::rand_core::{OsRng, RngCore};
    let mut buffer = vec![0_u8; bytes];
    if OsRng.try_fill_bytes(&mut buffer).is_err() {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        for (i, byte) in buffer.iter_mut().enumerate() {
            *byte = (nanos >> ((i % 16) * 8)).to_le_bytes()[0];
        }
    }
    buffer.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_are_decoded() {
        let uri: Uri = "/x?idProperty=radar_account_id&properties=a%2Cb,c&v=a+b"
            .parse()
            .unwrap();
        assert_eq!(
            query_pairs(&uri),
            vec![
                ("idProperty".to_owned(), "radar_account_id".to_owned()),
                ("properties".to_owned(), "a,b,c".to_owned()),
                ("v".to_owned(), "a b".to_owned()),
            ]
        );
        assert_eq!(query_value(&uri, "v").as_deref(), Some("a b"));
        assert_eq!(query_value(&uri, "missing"), None);
    }

    #[test]
    fn form_bodies_are_decoded() {
        let form = form_pairs(b"grant_type=urn%3Aietf%3Aparams&assertion=a.b.c&x&empty=");
        assert_eq!(value(&form, "grant_type"), Some("urn:ietf:params"));
        assert_eq!(value(&form, "assertion"), Some("a.b.c"));
        assert_eq!(value(&form, "x"), Some(""));
        assert_eq!(value(&form, "empty"), Some(""));
        assert_eq!(value(&form, "missing"), None);
        assert!(form_pairs(b"").is_empty());
        assert_eq!(
            value(&form_pairs(b"k=%ff%fe"), "k"),
            Some("\u{fffd}\u{fffd}")
        );
    }

    #[test]
    fn random_hex_is_hex_of_the_length_asked() {
        let a = random_hex(8);
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(8));
    }

    #[test]
    fn bearer_tokens_are_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
