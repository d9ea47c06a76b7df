//! A schema registry's `GET /schemas/ids/{id}` (Confluent's, Karapace, Redpanda): the
//! writer schema of an id, or its word that there is none.
//!
//! Asked only for an id no schema file gave, once per id: the answer is kept. The
//! callers are synchronous (the source loop's thread, `radar map`), so each fetch runs on
//! a thread of its own with a one-off runtime, whatever runtime the caller is in.

use std::time::Duration;

use serde::Deserialize;

/// How long one request may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A registry's address.
#[derive(Clone, Debug)]
pub struct Registry {
    base: url::Url,
}

/// What the registry answered for an id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// The schema's text, and its type (`AVRO` when the registry leaves it out).
    Found { schema: String, schema_type: String },
    /// 404: the id does not exist; its records are dead letters (`unknown_schema`).
    Missing,
}

/// The registry could not answer now (down, refusing, slow): ask again later.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("schema registry {url}: {message}")]
pub struct Unavailable {
    pub url: String,
    pub message: String,
}

#[derive(Deserialize)]
struct Answer {
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: Option<String>,
}

impl Registry {
    pub fn new(url: &str) -> Result<Registry, String> {
        let mut base = url::Url::parse(url).map_err(|e| format!("{url:?}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("{url:?}: not an http(s) URL"));
        }
        // A registry under a path (`https://host/registry`) keeps it: `join` replaces the
        // last segment unless the path ends with a slash.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        Ok(Registry { base })
    }

    /// The schema of `id`; blocks for at most [`TIMEOUT`].
    pub fn fetch(&self, id: u32) -> Result<Fetched, Unavailable> {
        let url = self
            .base
            .join(&format!("schemas/ids/{id}"))
            .map_err(|e| self.unavailable(e.to_string()))?;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| self.unavailable(e.to_string()))?;
                    runtime.block_on(self.get(url))
                })
                .join()
                .unwrap_or_else(|_| Err(self.unavailable("the fetch panicked".into())))
        })
    }

    async fn get(&self, url: url::Url) -> Result<Fetched, Unavailable> {
        let client = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| self.unavailable(e.to_string()))?;
        let response = client
            .get(url)
            .header(
                "accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            )
            .send()
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(Fetched::Missing);
        }
        if !status.is_success() {
            return Err(self.unavailable(format!("answered {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|e| self.unavailable(format!("unreadable answer: {e}")))?;
        Ok(Fetched::Found {
            schema: answer.schema,
            schema_type: answer.schema_type.unwrap_or_else(|| "AVRO".into()),
        })
    }

    fn unavailable(&self, message: String) -> Unavailable {
        Unavailable {
            url: self.base.to_string(),
            message,
        }
    }
}
