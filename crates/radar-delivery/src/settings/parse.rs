//! [`build`]: the raw `[delivery]` section turned into typed settings, every problem
//! reported with its key; secrets read from the environment or from files.

use std::time::Duration;

use ipnet::IpNet;
use radar_core::Kind;
use radar_core::opportunity::Owner;
use radar_core::scoring::Tier;
use reqwest::Url;
use secrecy::SecretString;

use super::{
    DeliverySettings, Destination, Env, Filter, RawDelivery, RawDestination, SettingError, Target,
};
use crate::auth;
use crate::crm::config::Vendor;
use crate::signing::SigningSecret;

/// Builds typed settings from `raw`, or every problem found, each with its key.
pub fn build(raw: &RawDelivery, env: Env<'_>) -> Result<DeliverySettings, Vec<SettingError>> {
    let mut errors = Vec::new();
    let mut error = |key: String, message: String| errors.push(SettingError { key, message });
    let defaults = DeliverySettings::default();

    let mut policy = defaults.policy.clone();
    if let Some(schedule) = &raw.schedule {
        policy.schedule = schedule
            .iter()
            .enumerate()
            .filter_map(|(i, text)| {
                duration(text)
                    .map_err(|m| error(format!("delivery.schedule[{i}]"), m.to_string()))
                    .ok()
            })
            .collect();
    }
    if let Some(text) = &raw.retry_after_cap {
        match duration(text) {
            Ok(cap) => policy.retry_after_cap = cap,
            Err(m) => error("delivery.retry_after_cap".into(), m.to_string()),
        }
    }
    let mut settings = DeliverySettings {
        policy,
        breaker_failures: raw.breaker_failures.unwrap_or(defaults.breaker_failures),
        ..defaults
    };
    if settings.breaker_failures == 0 {
        error(
            "delivery.breaker_failures".into(),
            "must be at least 1".into(),
        );
    }
    for (key, text, field) in [
        (
            "delivery.breaker_cooldown",
            &raw.breaker_cooldown,
            &mut settings.breaker_cooldown,
        ),
        (
            "delivery.poll_interval",
            &raw.poll_interval,
            &mut settings.poll_interval,
        ),
    ] {
        if let Some(text) = text {
            match duration(text) {
                Ok(d) if !d.is_zero() => *field = d,
                Ok(_) => error(key.into(), "must be more than zero".into()),
                Err(m) => error(key.into(), m.to_string()),
            }
        }
    }
    for (i, net) in raw.allow_networks.iter().enumerate() {
        match net.parse::<IpNet>() {
            Ok(net) => settings.guard.allow.push(net),
            Err(_) => error(
                format!("delivery.allow_networks[{i}]"),
                format!("{net:?} is not a network in CIDR form, e.g. 127.0.0.0/8"),
            ),
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, raw) in raw.destinations.iter().enumerate() {
        let key = format!("delivery.destinations[{i}] ({})", raw.name);
        if !names.insert(raw.name.as_str()) {
            error(
                format!("{key}.name"),
                "another destination has this name".into(),
            );
        }
        if let Some(destination) = destination(raw, &key, env, &mut error) {
            settings.destinations.push(destination);
        }
    }
    if errors.is_empty() {
        Ok(settings)
    } else {
        Err(errors)
    }
}

fn destination(
    raw: &RawDestination,
    key: &str,
    env: Env<'_>,
    error: &mut impl FnMut(String, String),
) -> Option<Destination> {
    let before = std::cell::Cell::new(0u32);
    let mut fail = |field: &str, message: String| {
        before.set(before.get() + 1);
        error(format!("{key}.{field}"), message);
    };
    if raw.name.is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        fail(
            "name",
            "use letters, digits, '_' and '-' (it labels metrics)".into(),
        );
    }
    let url_text = match (&raw.url, &raw.url_env) {
        (Some(url), None) => Some(url.clone()),
        (None, Some(var)) => env(var).or_else(|| {
            fail("url_env", format!("environment variable {var} is not set"));
            None
        }),
        _ => {
            fail("url", "give exactly one of url and url_env".into());
            None
        }
    };
    let url = url_text.and_then(|text| match Url::parse(&text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Some(url),
        _ => {
            let shown = if raw.url_env.is_some() {
                "the URL from url_env".to_owned()
            } else {
                format!("{text:?}")
            };
            fail("url", format!("{shown} is not an http(s) URL"));
            None
        }
    });
    if matches!(raw.kind.as_str(), "webhook" | "slack") {
        let auth = raw.auth();
        let auth_keys = [
            ("auth", auth.auth.is_some()),
            ("session_lifetime", auth.session_lifetime.is_some()),
            ("auth_retry_cap", auth.auth_retry_cap.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key));
        for key in raw
            .crm()
            .given()
            .into_iter()
            .chain(auth_keys)
            .chain(auth.oauth_keys_given())
        {
            fail(
                key,
                "only a hubspot or salesforce destination takes it".into(),
            );
        }
    }
    let mut secret = || -> Option<String> {
        match (&raw.secret_env, &raw.secret_file) {
            (Some(var), None) => env(var).or_else(|| {
                fail(
                    "secret_env",
                    format!("environment variable {var} is not set"),
                );
                None
            }),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    fail("secret_file", format!("reading {}: {e}", path.display()));
                    None
                }
            },
            _ => {
                fail(
                    "secret_env",
                    format!(
                        "a {} destination needs exactly one of secret_env and secret_file",
                        raw.kind
                    ),
                );
                None
            }
        }
    };
    let target = match raw.kind.as_str() {
        "webhook" => secret().and_then(|text| match SigningSecret::parse_all(&text) {
            Ok(secrets) => Some(Target::Webhook { secrets }),
            Err(e) => {
                fail(
                    if raw.secret_env.is_some() {
                        "secret_env"
                    } else {
                        "secret_file"
                    },
                    e.to_string(),
                );
                None
            }
        }),
        "slack" => Some(Target::Slack),
        "hubspot" | "salesforce" => {
            let raw_auth = raw.auth();
            let token = if raw_auth.is_static() {
                secret().and_then(|token| crm_token(token, raw, &mut fail))
            } else {
                for (key, given) in [
                    ("secret_env", raw.secret_env.is_some()),
                    ("secret_file", raw.secret_file.is_some()),
                ] {
                    if given {
                        fail(
                            key,
                            "only auth = \"token\" takes it; OAuth secrets go in client_secret_env or client_secret_file".into(),
                        );
                    }
                }
                None
            };
            let vendor = if raw.kind == "hubspot" {
                Vendor::HubSpot
            } else {
                Vendor::Salesforce
            };
            let crm = crate::crm::config::build(vendor, &raw.crm(), &mut |key, message| {
                fail(key, message)
            });
            let context = auth::config::Context {
                vendor,
                url: url.as_ref(),
                token,
                token_file: raw.secret_file.clone(),
                env,
            };
            auth::config::build(&raw_auth, context, &mut |key, message| fail(key, message)).map(
                |auth| match vendor {
                    Vendor::HubSpot => Target::HubSpot { auth, crm },
                    Vendor::Salesforce => Target::Salesforce { auth, crm },
                },
            )
        }
        other => {
            fail(
                "kind",
                format!("{other:?} is not one of webhook, slack, hubspot, salesforce"),
            );
            None
        }
    };
    let timeout = match raw.timeout.as_deref().map(duration) {
        None => Duration::from_secs(15),
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            fail("timeout", "must be more than zero".into());
            Duration::ZERO
        }
        Some(Err(m)) => {
            fail("timeout", m.to_string());
            Duration::ZERO
        }
    };
    let max_in_flight = raw.max_in_flight.unwrap_or(4);
    if max_in_flight == 0 {
        fail("max_in_flight", "must be at least 1".into());
    }
    if let Some(rate) = raw.rate_limit
        && !(rate.is_finite() && rate > 0.0)
    {
        fail(
            "rate_limit",
            "must be a positive number of requests per second".into(),
        );
    }
    let mut filter = Filter::default();
    for (i, kind) in raw.kinds.iter().enumerate() {
        match Kind::parse(kind) {
            Some(kind) => filter.kinds.push(kind),
            None => fail(
                &format!("kinds[{i}]"),
                format!("{kind:?} is not an opportunity kind"),
            ),
        }
    }
    if let Some(tier) = &raw.min_tier {
        filter.min_tier = Tier::parse(tier);
        if filter.min_tier.is_none() {
            fail(
                "min_tier",
                format!("{tier:?} is not one of cold, warm, hot, critical"),
            );
        }
    }
    filter.playbooks = raw.playbooks.clone();
    filter.owner = match raw.owner.as_deref() {
        None => None,
        Some("cs") => Some(Owner::Cs),
        Some("sales") => Some(Owner::Sales),
        Some(other) => {
            fail("owner", format!("{other:?} is not cs or sales"));
            None
        }
    };
    if before.get() > 0 {
        return None;
    }
    Some(Destination {
        name: raw.name.clone(),
        target: target?,
        url: url?,
        url_is_secret: raw.url_env.is_some(),
        timeout,
        max_in_flight: max_in_flight as usize,
        rate_limit: raw.rate_limit,
        filter,
    })
}

/// The CRM token, trimmed, if an Authorization header can carry it: refused now rather
/// than dead-lettering every delivery later.
fn crm_token(
    token: String,
    raw: &RawDestination,
    fail: &mut impl FnMut(&str, String),
) -> Option<SecretString> {
    let token = token.trim().to_owned();
    if token.is_empty()
        || reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).is_err()
    {
        let key = if raw.secret_env.is_some() {
            "secret_env"
        } else {
            "secret_file"
        };
        fail(
            key,
            "the token is empty or not a valid HTTP header value".into(),
        );
        return None;
    }
    Some(token.into())
}

/// A setting that is not a duration.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a duration like 5s or 10m: {source}")]
struct NotADuration {
    text: String,
    source: humantime::DurationError,
}

fn duration(text: &str) -> Result<Duration, NotADuration> {
    humantime::parse_duration(text).map_err(|source| NotADuration {
        text: text.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::config::RawOwners;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn env(name: &str) -> Option<String> {
        match name {
            "HOOK_SECRET" => Some(SECRET.into()),
            "HUBSPOT_TOKEN" => Some("pat-na1-abc".into()),
            "SLACK_URL" => Some("https://hooks.slack.com/services/T0/B0/XYZ".into()),
            _ => None,
        }
    }

    fn raw(kind: &str) -> RawDestination {
        RawDestination {
            name: kind.into(),
            kind: kind.into(),
            url: Some("https://example.com/hook".into()),
            ..RawDestination::default()
        }
    }

    #[test]
    fn a_full_section_builds() {
        let raw = RawDelivery {
            schedule: Some(vec!["0s".into(), "10ms".into()]),
            allow_networks: vec!["127.0.0.0/8".into()],
            destinations: vec![
                RawDestination {
                    secret_env: Some("HOOK_SECRET".into()),
                    kinds: vec!["seat_expansion".into()],
                    min_tier: Some("warm".into()),
                    owner: Some("cs".into()),
                    ..raw("webhook")
                },
                RawDestination {
                    url: None,
                    url_env: Some("SLACK_URL".into()),
                    ..raw("slack")
                },
                RawDestination {
                    secret_env: Some("HUBSPOT_TOKEN".into()),
                    ..raw("hubspot")
                },
            ],
            ..RawDelivery::default()
        };
        let settings = build(&raw, &env).unwrap();
        assert_eq!(
            settings.policy.schedule,
            vec![Duration::ZERO, Duration::from_millis(10)]
        );
        assert_eq!(settings.destinations.len(), 3);
        assert_eq!(settings.destinations[0].filter.min_tier, Some(Tier::Warm));
        assert_eq!(settings.destinations[0].timeout, Duration::from_secs(15));
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("MfKQ") && !printed.contains("pat-na1") && !printed.contains("XYZ"),
            "{printed}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let raw = RawDelivery {
            schedule: Some(vec!["soon".into()]),
            allow_networks: vec!["localhost".into()],
            destinations: vec![
                RawDestination {
                    secret_env: Some("MISSING".into()),
                    ..raw("webhook")
                },
                RawDestination {
                    secret_env: Some("HUBSPOT_TOKEN".into()),
                    ..raw("webhook")
                },
                RawDestination {
                    url: Some("ftp://x".into()),
                    min_tier: Some("lukewarm".into()),
                    ..raw("slack")
                },
                raw("pager"),
                RawDestination {
                    name: "salesforce".into(),
                    ..raw("salesforce")
                },
            ],
            ..RawDelivery::default()
        };
        let errors = build(&raw, &env).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "delivery.schedule[0]",
                "delivery.allow_networks[0]",
                "delivery.destinations[0] (webhook).secret_env",
                "delivery.destinations[1] (webhook).name",
                "delivery.destinations[1] (webhook).secret_env",
                "delivery.destinations[2] (slack).url",
                "delivery.destinations[2] (slack).min_tier",
                "delivery.destinations[3] (pager).kind",
                "delivery.destinations[4] (salesforce).secret_env",
            ],
            "{errors:#?}"
        );
        assert!(errors[4].message.contains("whsec_"), "{:?}", errors[4]);
    }

    #[test]
    fn crm_keys_build_the_crm_settings_and_are_refused_elsewhere() {
        let raw = RawDelivery {
            destinations: vec![
                RawDestination {
                    secret_env: Some("HUBSPOT_TOKEN".into()),
                    object: Some("deal".into()),
                    stage: Some("qualifiedtobuy".into()),
                    close_in: Some("30d".into()),
                    create_missing_company: Some(true),
                    owners: Some(RawOwners {
                        cs: Some(crate::crm::config::RawRouting::One("1001".into())),
                        sales: None,
                    }),
                    ..raw("hubspot")
                },
                RawDestination {
                    secret_env: Some("HOOK_SECRET".into()),
                    stage: Some("qualifiedtobuy".into()),
                    batch_size: Some(10),
                    ..raw("webhook")
                },
            ],
            ..RawDelivery::default()
        };
        let errors = build(&raw, &env).unwrap_err();
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "delivery.destinations[1] (webhook).stage",
                "delivery.destinations[1] (webhook).batch_size"
            ],
            "{errors:#?}"
        );
        let settings = build(
            &RawDelivery {
                destinations: raw.destinations[..1].to_vec(),
                ..RawDelivery::default()
            },
            &env,
        )
        .unwrap();
        let Target::HubSpot { crm, .. } = &settings.destinations[0].target else {
            panic!("{settings:?}");
        };
        assert_eq!(crm.stage, "qualifiedtobuy");
        assert_eq!(crm.close_in, Duration::from_secs(30 * 86_400));
        assert!(crm.create_missing_company);
        assert_eq!(crm.cs, crate::crm::config::Routing::Fixed("1001".into()));
        assert_eq!(crm.sales, crate::crm::config::Routing::CompanyOwner);
    }
}
