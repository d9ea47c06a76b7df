//! The secrets of an OAuth grant, read from `<name>_env` or `<name>_file` (never from
//! the config), and the JWT bearer flow's private key, parsed and tried, each problem
//! reported under its key.

use std::path::Path;

use jsonwebtoken::EncodingKey;

use super::config::RawAuth;
use super::grant;
use crate::settings::Env;

/// What a secret read from `<name>_env` or `<name>_file` gave.
pub(super) fn read_secret(
    name: &str,
    env_var: Option<&str>,
    file: Option<&Path>,
    env: Env<'_>,
    fail: &mut dyn FnMut(&str, String),
) -> Option<String> {
    let text = match (env_var, file) {
        (Some(var), None) => env(var).or_else(|| {
            fail(
                &format!("{name}_env"),
                format!("environment variable {var} is not set"),
            );
            None
        })?,
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) => {
                fail(
                    &format!("{name}_file"),
                    format!("reading {}: {e}", path.display()),
                );
                return None;
            }
        },
        (None, None) => {
            fail(
                &format!("{name}_env"),
                format!("give {name}_env or {name}_file"),
            );
            return None;
        }
        (Some(_), Some(_)) => {
            fail(
                &format!("{name}_env"),
                format!("give one of {name}_env and {name}_file, not both"),
            );
            return None;
        }
    };
    let text = text.trim().to_owned();
    if text.is_empty() {
        fail(
            &format!("{name}_{}", if env_var.is_some() { "env" } else { "file" }),
            "it is empty".into(),
        );
        return None;
    }
    Some(text)
}

/// The private key of the JWT bearer flow, parsed and tried: a key that cannot sign is
/// refused here, not at the first delivery.
pub(super) fn private_key(
    raw: &RawAuth<'_>,
    env: Env<'_>,
    fail: &mut dyn FnMut(&str, String),
) -> Option<EncodingKey> {
    let pem = read_secret(
        "private_key",
        raw.private_key_env,
        raw.private_key_file,
        env,
        fail,
    )?;
    let key_name = if raw.private_key_env.is_some() {
        "private_key_env"
    } else {
        "private_key_file"
    };
    let key = EncodingKey::from_rsa_pem(pem.as_bytes())
        .and_then(|key| grant::assertion("check", "check", "check", 0, &key).map(|_| key));
    match key {
        Ok(key) => Some(key),
        Err(e) => {
            fail(
                key_name,
                format!("not an RSA private key in PEM form (PKCS#1 or PKCS#8): {e}"),
            );
            None
        }
    }
}
