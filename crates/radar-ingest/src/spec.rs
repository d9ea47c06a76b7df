//! A `[[sources]]` entry as the config file writes it: what [`crate::source::Source`]
//! compiles at start. Every key is named in docs/events.md#sources; unknown keys are
//! refused, so a typo fails at startup instead of mapping nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One source: where its records are, how they are written, and how they map onto
/// Radar's events.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    pub name: String,
    pub topics: Vec<String>,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub framing: Framing,
    #[serde(default)]
    pub envelope: Envelope,
    /// What the records are keyed by; the envelope's usual keying when absent
    /// ([`Envelope::usual_key`]).
    #[serde(default)]
    pub key: Option<KeyedBy>,
    /// Writer schemas as `<id>.avsc` / `<id>.proto` files.
    #[serde(default)]
    pub schema_dir: Option<String>,
    /// A schema registry (`GET /schemas/ids/{id}`): Confluent's, Karapace or Redpanda.
    #[serde(default)]
    pub registry_url: Option<String>,
    /// Radar field → paths, the first non-null wins.
    #[serde(default)]
    pub fields: BTreeMap<String, Paths>,
    /// Radar field or property → converter name.
    #[serde(default)]
    pub convert: BTreeMap<String, String>,
    /// Radar property → paths.
    #[serde(default)]
    pub properties: BTreeMap<String, Paths>,
    /// Their event name → Radar type.
    #[serde(default)]
    pub types: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Avro,
    Protobuf,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Framing {
    #[default]
    None,
    /// The schema-registry wire format ([`crate::framing`]).
    Confluent,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// Radar's own fields (docs/events.md#the-envelope).
    #[default]
    Radar,
    /// Segment's and RudderStack's track, group and identify calls.
    Segment,
    /// CloudEvents, binary or structured mode.
    Cloudevents,
    /// Nothing preset: `fields` names every path.
    Custom,
}

impl Envelope {
    /// How such records are usually keyed: Segment's and RudderStack's Kafka
    /// destinations key by user (RudderStack by `userId`, else `anonymousId`).
    pub fn usual_key(self) -> KeyedBy {
        match self {
            Envelope::Segment => KeyedBy::User,
            _ => KeyedBy::Account,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Envelope::Radar => "radar",
            Envelope::Segment => "segment",
            Envelope::Cloudevents => "cloudevents",
            Envelope::Custom => "custom",
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KeyedBy {
    /// Keyed by the account id: read by the engine directly (a record whose key is not
    /// its account is `key_mismatch`).
    Account,
    /// Keyed by anything else: re-keyed by account through the repartition topic.
    User,
}

/// One path or several (the first non-null wins).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn as_slice(&self) -> &[String] {
        match self {
            Paths::One(path) => std::slice::from_ref(path),
            Paths::Many(paths) => paths,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        sources: Vec<SourceSpec>,
    }

    #[test]
    fn a_source_reads_from_toml_with_one_path_or_several() {
        let file: File = toml::from_str(
            r#"
            [[sources]]
            name = "web"
            topics = ["segment-events"]
            envelope = "segment"
            [sources.fields]
            account_id = ["context.groupId", "properties.accountId"]
            [sources.properties]
            seats_used = "properties.seatCount"
            [sources.convert]
            seats_used = "number_string"
            [sources.types]
            "Seat Added" = "seat_threshold_90pct"
            "#,
        )
        .unwrap();
        let source = &file.sources[0];
        assert_eq!(source.format, Format::Json);
        assert_eq!(source.framing, Framing::None);
        assert_eq!(source.key, None);
        assert_eq!(source.envelope.usual_key(), KeyedBy::User);
        assert_eq!(source.fields["account_id"].as_slice().len(), 2);
        assert_eq!(
            source.properties["seats_used"].as_slice(),
            ["properties.seatCount"]
        );
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let refused = toml::from_str::<File>(
            "[[sources]]\nname = \"x\"\ntopics = [\"t\"]\nformt = \"avro\"\n",
        );
        assert!(refused.err().unwrap().to_string().contains("formt"));
    }
}
