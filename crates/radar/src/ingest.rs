//! The `[[sources]]` of a config, compiled (docs/events.md#sources): each source's
//! mapping, and the writer schemas of its `schema_dir`. Around the pure `radar-ingest`:
//! the files, the registry ([`registry`]), and records read from files ([`input`]).

pub mod input;
pub mod registry;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use radar_core::Settings;
use radar_ingest::spec::{Format, KeyedBy};
use radar_ingest::{Schemas, Source, SourceSpec};

/// A source ready to read: its compiled mapping and the schemas known at start.
#[derive(Debug)]
pub struct Ingest {
    pub source: Arc<Source>,
    pub schemas: Schemas,
    /// Where to ask for schemas not in `schema_dir`.
    pub registry: Option<registry::Registry>,
}

/// Compiles every `[[sources]]` entry; `base` is the directory relative `schema_dir`s
/// are read from (the config file's). Every problem is reported, each with its key.
pub fn compile(
    specs: &[SourceSpec],
    settings: &Settings,
    base: &Path,
) -> Result<Vec<Arc<Ingest>>, Vec<String>> {
    let mut problems = Vec::new();
    let mut compiled = Vec::new();
    for (n, spec) in specs.iter().enumerate() {
        if specs[..n].iter().any(|other| other.name == spec.name) {
            problems.push(format!(
                "sources.{}: a second source of that name",
                spec.name
            ));
            continue;
        }
        let known_type = |name: &str| settings.types.lookup(name).is_some();
        let source = match Source::compile(spec.clone(), known_type) {
            Ok(source) => source,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        let schemas = match &spec.schema_dir {
            Some(dir) => match read_schema_dir(&source, &base.join(dir)) {
                Ok(schemas) => schemas,
                Err(problem) => {
                    problems.push(format!("sources.{}.schema_dir: {problem}", spec.name));
                    continue;
                }
            },
            None => Schemas::default(),
        };
        let registry = match spec.registry_url.as_deref().map(registry::Registry::new) {
            Some(Ok(registry)) => Some(registry),
            Some(Err(problem)) => {
                problems.push(format!("sources.{}.registry_url: {problem}", spec.name));
                continue;
            }
            None => None,
        };
        compiled.push(Arc::new(Ingest {
            source: Arc::new(source),
            schemas,
            registry,
        }));
    }
    if problems.is_empty() {
        Ok(compiled)
    } else {
        Err(problems)
    }
}

/// The topics the engine consumes for these sources: those of the sources keyed by
/// account, and the repartition topic the sources keyed by user are re-keyed to.
pub fn engine_topics(sources: &[Arc<Ingest>], group_id: &str) -> Vec<String> {
    let mut topics: Vec<String> = Vec::new();
    for ingest in sources {
        let more = match ingest.source.keyed_by() {
            KeyedBy::Account => ingest.source.spec().topics.clone(),
            KeyedBy::User => vec![radar_kafka::RekeyConfig::repartition_topic(group_id)],
        };
        for topic in more {
            if !topics.contains(&topic) {
                topics.push(topic);
            }
        }
    }
    topics
}

/// The file extension of a format's writer schemas.
fn extension(format: Format) -> Option<&'static str> {
    match format {
        Format::Avro => Some("avsc"),
        Format::Protobuf => Some("proto"),
        Format::Json => None,
    }
}

/// The `<id>.avsc` / `<id>.proto` files of `dir`, compiled against the source's paths.
fn read_schema_dir(source: &Source, dir: &Path) -> Result<Schemas, String> {
    let mut schemas = Schemas::default();
    let Some(wanted) = extension(source.spec().format) else {
        return Ok(schemas);
    };
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path: PathBuf = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(wanted) {
            continue;
        }
        let Some(id) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let schema = source
            .compile_schema(&text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        schemas.insert(id, schema);
    }
    Ok(schemas)
}

/// The source called `name` among the `[[sources]]` of the config at `path`; without a
/// name, its only source.
pub fn named(
    path: Option<&Path>,
    settings: &Settings,
    name: Option<&str>,
) -> anyhow::Result<Arc<Ingest>> {
    let raw = crate::config::load_raw(path)?;
    let base = path
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let mut sources = compile(&raw.sources, settings, &base)
        .map_err(|problems| anyhow::anyhow!(problems.join("\n")))?;
    let names = || {
        sources
            .iter()
            .map(|s| s.source.name().to_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match name {
        Some(name) => sources.iter().position(|s| s.source.name() == name),
        None if sources.len() == 1 => Some(0),
        None => None,
    };
    match (found, name) {
        (Some(at), _) => Ok(sources.swap_remove(at)),
        (None, Some(name)) => {
            anyhow::bail!("no source {name:?} in the config (sources: {})", names())
        }
        (None, None) if sources.is_empty() => anyhow::bail!("the config has no [[sources]]"),
        (None, None) => anyhow::bail!(
            "the config has several sources: name one with --source ({})",
            names()
        ),
    }
}

/// The source as the Kafka side reads it: its schemas, those fetched before, and its
/// registry, whose answers are cached in `cache/<source>-<hash of the registry URL>/` (a
/// different registry's ids are other schemas).
pub fn mapped_source(ingest: &Ingest, cache: &Path) -> radar_kafka::MappedSource {
    let registry_hash = ingest
        .source
        .spec()
        .registry_url
        .as_deref()
        .map_or(0, |url| xxhash_rust::xxh3::xxh3_64(url.as_bytes()));
    let dir = cache.join(format!(
        "{}-{:08x}",
        ingest.source.name(),
        registry_hash as u32
    ));
    let mut schemas = ingest.schemas.clone();
    if let Ok(cached) = read_schema_dir(&ingest.source, &dir) {
        schemas.add_unknown(cached);
    }
    let fetch = ingest.registry.clone().map(|registry| {
        let extension = extension(ingest.source.spec().format).unwrap_or("schema");
        let fetch: Box<radar_kafka::mapped::FetchSchema> = Box::new(move |id| {
            match registry.fetch(id) {
                Ok(registry::Fetched::Found { schema, .. }) => {
                    // The cache is a convenience: a schema not written is fetched again
                    // after a restart.
                    let written = std::fs::create_dir_all(&dir).and_then(|()| {
                        std::fs::write(dir.join(format!("{id}.{extension}")), &schema)
                    });
                    if let Err(e) = written {
                        tracing::warn!(error = %e, schema_id = id, "caching a fetched schema");
                    }
                    Ok(radar_kafka::SchemaAnswer::Found(schema))
                }
                Ok(registry::Fetched::Missing) => Ok(radar_kafka::SchemaAnswer::Missing),
                Err(e) => Err(e.to_string()),
            }
        });
        fetch
    });
    radar_kafka::MappedSource::new(ingest.source.clone(), schemas, fetch)
}
