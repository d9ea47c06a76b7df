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
    /// 404 with the registry's error code 40403: the id does not exist; its records are
    /// dead letters (`unknown_schema`).
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
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            // Only the registry's own "schema not found" (Confluent's, Karapace's and
            // Redpanda's code): a 404 from a proxy, or from a wrong `registry_url`, says
            // nothing about the id, and must not make its records dead letters.
            #[derive(Deserialize)]
            struct Error {
                error_code: u32,
            }
            return match serde_json::from_slice::<Error>(&body) {
                Ok(Error { error_code: 40403 }) => Ok(Fetched::Missing),
                _ => Err(self.unavailable(format!(
                    "answered {status} without the registry's \"schema not found\" (40403): is registry_url right?"
                ))),
            };
        }
        if !status.is_success() {
            return Err(self.unavailable(format!("answered {status}")));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A registry as Confluent's answers: a schema, its "not found", and a proxy's 404.
    #[test]
    fn only_the_registrys_own_not_found_settles_an_id_as_missing() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/schemas/ids/{id}",
            axum::routing::get(
                |axum::extract::Path(id): axum::extract::Path<u32>| async move {
                    use axum::http::StatusCode;
                    match id {
                        1 => (StatusCode::OK, r#"{"schema":"\"string\""}"#.to_owned()),
                        2 => (
                            StatusCode::NOT_FOUND,
                            r#"{"error_code":40403,"message":"Schema 2 not found"}"#.to_owned(),
                        ),
                        3 => (
                            StatusCode::NOT_FOUND,
                            "<html>404 Not Found</html>".to_owned(),
                        ),
                        _ => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
                    }
                },
            ),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        let registry = Registry::new(&format!("http://{address}")).unwrap();
        assert_eq!(
            registry.fetch(1),
            Ok(Fetched::Found {
                schema: "\"string\"".into(),
                schema_type: "AVRO".into()
            })
        );
        assert_eq!(registry.fetch(2), Ok(Fetched::Missing));
        let proxy = registry.fetch(3).unwrap_err();
        assert!(proxy.message.contains("40403"), "{proxy}");
        assert!(registry.fetch(4).is_err());
        // A base under a path keeps it.
        let under = Registry::new("http://registry.example/sr").unwrap();
        assert_eq!(under.base.as_str(), "http://registry.example/sr/");
    }
}
