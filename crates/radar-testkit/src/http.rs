//! A test's view of a local HTTP server (radar's admin server): whether it listens, a
//! `GET`, and one sample of its Prometheus `/metrics`. Plain `std` sockets, so a sync
//! test needs no runtime for them.

use std::io::{Read, Write};
use std::net::TcpStream;

/// Whether something accepts connections on loopback `port`.
pub fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// `GET path` on loopback `port`: (status, body). Panics if nothing listens.
pub fn get(port: u16, path: &str) -> (u16, String) {
    get_as(port, path, None)
}

/// [`get`] with `Authorization: Bearer <token>` when a token is given.
pub fn get_as(port: u16, path: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let authorization = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: radar\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A sample without labels (a counter or gauge) from `/metrics` on `port`; `None` while
/// nothing listens or the series is not there.
pub fn metric(port: u16, name: &str) -> Option<u64> {
    if !listening(port) {
        return None;
    }
    get(port, "/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
