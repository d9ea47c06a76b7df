//! The other members of the consumer group, and where their admin servers are, so that
//! any instance can answer for an account another one holds (Kafka Streams' interactive
//! queries). Each member names its admin address in its Kafka `client.id`
//! (`radar@<address>#<instance>`: the instance part tells apart members that advertise
//! the same `:port`); the group's description (the broker's DescribeGroups) lists every
//! member with its client id, the host the broker sees it on, and its assignment.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::error::SourceError;

/// What a member's `client.id` starts with, before its admin address.
const PREFIX: &str = "radar@";

/// How long asking the broker for the group's members may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A `client.id` that advertises `admin` (an address like `10.0.0.7:9464`, or `:9464`
/// for "the host the broker sees me on, at this port"), unique to this instance.
pub fn client_id(admin: &str) -> String {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{PREFIX}{admin}#{:x}{started:x}", std::process::id())
}

/// A member's admin address from its client id and the host the broker sees it on;
/// `None` for a member that is not a radar or advertises nothing usable.
fn admin_address(client_id: &str, client_host: &str) -> Option<String> {
    let advertised = client_id.strip_prefix(PREFIX)?;
    let advertised = advertised
        .split_once('#')
        .map_or(advertised, |(admin, _)| admin);
    // Only a host and a port: nothing a member could smuggle into the URL asked.
    let plain = |host: &str| {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    };
    match advertised.strip_prefix(':') {
        Some(port) => {
            let host = client_host.trim_start_matches('/');
            (plain(host) && port.parse::<u16>().is_ok()).then(|| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
        }
        None => {
            let (host, port) = advertised.rsplit_once(':')?;
            (plain(host) && port.parse::<u16>().is_ok()).then(|| advertised.to_owned())
        }
    }
}

/// A member's client id; from its member id (the client id, a dash and a UUID, as
/// brokers make them) when the broker leaves the client id out (tansu does).
fn client_id_of<'a>(client_id: &'a str, member_id: &'a str) -> &'a str {
    if !client_id.is_empty() {
        return client_id;
    }
    match member_id.len().checked_sub(37) {
        Some(cut) if member_id.is_char_boundary(cut) && member_id[cut..].starts_with('-') => {
            &member_id[..cut]
        }
        _ => member_id,
    }
}

/// Whether a member's assignment (the consumer protocol's bytes: version, then topics
/// each with their partitions) holds any partition.
fn holds_partitions(assignment: &[u8]) -> bool {
    fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
        let (head, rest) = bytes.split_first_chunk::<N>()?;
        *bytes = rest;
        Some(*head)
    }
    let mut bytes = assignment;
    let mut holds = || -> Option<bool> {
        take::<2>(&mut bytes)?; // version
        let topics = i32::from_be_bytes(take(&mut bytes)?);
        for _ in 0..topics {
            let name = usize::try_from(i16::from_be_bytes(take(&mut bytes)?)).ok()?;
            bytes = bytes.get(name..)?;
            let partitions = i32::from_be_bytes(take(&mut bytes)?);
            if partitions > 0 {
                return Some(true);
            }
        }
        Some(false)
    };
    holds().unwrap_or(false)
}

/// Finds the other members of a consumer group.
pub struct Peers {
    client: BaseConsumer,
    group: String,
    /// This instance's client id, to leave it out.
    this: String,
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peers")
            .field("group", &self.group)
            .field("this", &self.this)
            .finish_non_exhaustive()
    }
}

impl Peers {
    /// `client` reaches the brokers (TLS, SASL…); `this` is this instance's client id
    /// (see [`client_id`]).
    pub fn new(client: &ClientConfig, group: &str, this: &str) -> Result<Peers, SourceError> {
        Ok(Peers {
            client: client.create()?,
            group: group.to_owned(),
            this: this.to_owned(),
        })
    }

    /// The admin addresses of the other members that hold partitions now.
    pub fn others(&self) -> Result<Vec<String>, SourceError> {
        let groups = self.client.fetch_group_list(Some(&self.group), TIMEOUT)?;
        Ok(groups
            .groups()
            .iter()
            .filter(|g| g.name() == self.group)
            .flat_map(|g| g.members())
            .filter(|m| {
                // A broker that leaves the assignment out (tansu does) may be hiding a
                // member that holds partitions: ask it too.
                m.assignment()
                    .is_none_or(|a| a.is_empty() || holds_partitions(a))
            })
            .filter_map(|m| {
                let client_id = client_id_of(m.client_id(), m.id());
                (client_id != self.this)
                    .then(|| admin_address(client_id, m.client_host()))
                    .flatten()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The consumer protocol's assignment: version, topics with their partitions, and
    /// user data.
    fn assignment(topics: &[(&str, &[i32])]) -> Vec<u8> {
        let mut bytes = 1i16.to_be_bytes().to_vec();
        bytes.extend((topics.len() as i32).to_be_bytes());
        for (topic, partitions) in topics {
            bytes.extend((topic.len() as i16).to_be_bytes());
            bytes.extend(topic.as_bytes());
            bytes.extend((partitions.len() as i32).to_be_bytes());
            for p in *partitions {
                bytes.extend(p.to_be_bytes());
            }
        }
        bytes.extend((-1i32).to_be_bytes());
        bytes
    }

    #[test]
    fn a_member_holds_partitions_when_its_assignment_names_any() {
        assert!(holds_partitions(&assignment(&[("events", &[0, 3])])));
        assert!(holds_partitions(&assignment(&[
            ("a", &[]),
            ("events", &[1])
        ])));
        assert!(!holds_partitions(&assignment(&[("events", &[])])));
        assert!(!holds_partitions(&assignment(&[])));
        assert!(!holds_partitions(&[]));
        assert!(!holds_partitions(&[0, 1, 0, 0, 0, 9, 0]), "cut short");
    }

    #[test]
    fn the_admin_address_comes_from_the_client_id_or_the_members_host() {
        assert_eq!(
            admin_address("radar@10.0.0.7:9464", "/10.0.0.7").as_deref(),
            Some("10.0.0.7:9464")
        );
        let id = client_id(":9464");
        assert_ne!(id, client_id(":9464"), "unique per instance");
        assert_eq!(
            admin_address(&id, "/10.0.0.9").as_deref(),
            Some("10.0.0.9:9464")
        );
        assert_eq!(
            admin_address("radar@radar-0.radar:9464#1f", "/x").as_deref(),
            Some("radar-0.radar:9464")
        );
        assert_eq!(admin_address("radar@10.0.0.1:80/x#1", "/x"), None);
        assert_eq!(admin_address("radar@user@evil:80", "/x"), None);
        assert_eq!(
            admin_address("radar@:9464", "/10.0.0.9").as_deref(),
            Some("10.0.0.9:9464")
        );
        assert_eq!(
            admin_address("radar@:9464", "/::1").as_deref(),
            Some("[::1]:9464")
        );
        assert_eq!(admin_address("rdkafka", "/10.0.0.9"), None);
        assert_eq!(
            client_id_of(
                "",
                "radar@127.0.0.1:33325-c5ef3c9a-63d2-4208-8b63-da2747fd19c8"
            ),
            "radar@127.0.0.1:33325"
        );
        assert_eq!(client_id_of("radar@:9464", "whatever"), "radar@:9464");
        assert_eq!(admin_address("radar@:port", "/10.0.0.9"), None);
    }
}
