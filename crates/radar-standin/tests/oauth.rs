//! The stand-ins' OAuth token endpoints over real HTTP, as a client sees them: each test
//! starts its own server on a free loopback port.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use radar_standin::hubspot::{HubSpot, OAuthApp};
use radar_standin::salesforce::{ConnectedApp, KeyPair, Salesforce, generate_key_pair};
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN: &str = "static-token";
const CLIENT_ID: &str = "3MVG9-radar-consumer-key";
const CLIENT_SECRET: &str = "radar-consumer-secret";
const USERNAME: &str = "radar@example.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Posts `form` as `application/x-www-form-urlencoded`, percent-encoding each value.
async fn post_form(url: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let body = form
        .iter()
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect::<Vec<_>>()
        .join("&");
    send(
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body),
    )
    .await
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// Polls `status` until it answers `want`; fails if that takes more than 10 s.
async fn wait_for_status<F, Fut>(what: &str, want: StatusCode, mut status: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, body) = status().await;
        if got == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got} ({body}) after 10 s, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

// ---------------------------------------------------------------------------------------
// Salesforce

/// Two key pairs, made once per test binary: the app's and a stranger's.
fn keys() -> &'static (KeyPair, KeyPair) {
    static KEYS: OnceLock<(KeyPair, KeyPair)> = OnceLock::new();
    KEYS.get_or_init(|| (KeyPair::generate().unwrap(), generate_key_pair().unwrap()))
}

fn connected_app(lifetime: Duration) -> ConnectedApp {
    ConnectedApp {
        client_id: CLIENT_ID.into(),
        client_secret: Some(CLIENT_SECRET.into()),
        username: USERNAME.into(),
        public_key_pem: Some(keys().0.public_pem.clone()),
        refresh_token: Some("5Aep861-refresh".into()),
        token_lifetime: lifetime,
    }
}

async fn salesforce(lifetime: Duration) -> Salesforce {
    let salesforce = Salesforce::start(TOKEN).await.unwrap();
    salesforce.connect_app(connected_app(lifetime));
    salesforce
}

fn assertion(private_pem: &str, claims: &Value) -> String {
    let key = EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn claims(salesforce: &Salesforce) -> Value {
    json!({ "iss": CLIENT_ID, "sub": USERNAME, "aud": salesforce.url(), "exp": now_secs() + 120 })
}

async fn jwt_grant(salesforce: &Salesforce, assertion: &str) -> (StatusCode, Value) {
    post_form(
        &format!("{}/services/oauth2/token", salesforce.url()),
        &[("grant_type", JWT_BEARER), ("assertion", assertion)],
    )
    .await
}

/// `GET` of an Account by external ID with `token`: 404 when authenticated (no such
/// Account), 401 when not.
async fn account(salesforce: &Salesforce, token: &str) -> (StatusCode, Value) {
    send(
        reqwest::Client::new()
            .get(format!(
                "{}/services/data/v62.0/sobjects/Account/Radar_Account_Id__c/x",
                salesforce.url()
            ))
            .bearer_auth(token),
    )
    .await
}

fn assert_grant_answer(salesforce: &Salesforce, body: &Value) {
    let url = salesforce.url();
    assert!(
        body["access_token"]
            .as_str()
            .unwrap()
            .starts_with("00D000000000001!")
    );
    assert_eq!(body["scope"], "api");
    assert_eq!(body["instance_url"], url.as_str());
    assert_eq!(
        body["id"],
        format!("{url}/id/00D000000000001AAA/005000000000001AAA")
    );
    assert_eq!(body["token_type"], "Bearer");
    let issued_at: i64 = body["issued_at"].as_str().unwrap().parse().unwrap();
    assert!((issued_at / 1000 - now_secs()).abs() <= 5, "{body}");
    assert!(!body["signature"].as_str().unwrap().is_empty());
    assert!(body.get("expires_in").is_none(), "{body}");
    assert!(body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn salesforce_jwt_bearer_token_works_until_it_expires() {
    let salesforce = salesforce(Duration::from_secs(1)).await;
    let jwt = assertion(&keys().0.private_pem, &claims(&salesforce));
    let (status, body) = jwt_grant(&salesforce, &jwt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_grant_answer(&salesforce, &body);
    let token = body["access_token"].as_str().unwrap().to_owned();

    let (status, body) = account(&salesforce, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let body = wait_for_status("the issued token", StatusCode::UNAUTHORIZED, || {
        account(&salesforce, &token)
    })
    .await;
    assert_eq!(
        body,
        json!([{ "message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID" }])
    );
    // The static token is unaffected, and the endpoint logged the grant without a token.
    assert_eq!(account(&salesforce, TOKEN).await.0, StatusCode::NOT_FOUND);
    let grant = &salesforce.requests()[0];
    assert_eq!(
        (grant.method.as_str(), grant.path.as_str(), grant.status),
        ("POST", "/services/oauth2/token", 200)
    );
    assert_eq!(salesforce.token_requests(), 1);
}

#[tokio::test]
async fn salesforce_jwt_assertions_are_checked() {
    let salesforce = salesforce(Duration::from_secs(60)).await;
    let (key, stranger) = keys();
    let base = claims(&salesforce);
    let with = |name: &str, value: Value| {
        let mut claims = base.clone();
        claims[name] = value;
        claims
    };
    let refused = [
        (
            assertion(&key.private_pem, &with("exp", json!(now_secs() + 600))),
            "invalid assertion",
        ),
        (
            assertion(&key.private_pem, &with("exp", json!(now_secs() - 10))),
            "expired access/refresh token",
        ),
        (assertion(&stranger.private_pem, &base), "invalid assertion"),
        (
            assertion(&key.private_pem, &with("iss", json!("someone-else"))),
            "client identifier invalid",
        ),
        (
            assertion(&key.private_pem, &with("sub", json!("other@example.com"))),
            "user hasn't approved this consumer",
        ),
        (
            assertion(&key.private_pem, &with("aud", json!("https://example.com"))),
            "audience is invalid",
        ),
        (
            assertion(
                &key.private_pem,
                &json!({ "iss": CLIENT_ID, "sub": USERNAME, "aud": salesforce.url() }),
            ),
            "invalid assertion",
        ),
        ("not.a.jwt".to_owned(), "invalid assertion"),
        (String::new(), "invalid assertion"),
    ];
    for (jwt, description) in &refused {
        let (status, body) = jwt_grant(&salesforce, jwt).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{description}: {body}");
        assert_eq!(
            body,
            json!({ "error": "invalid_grant", "error_description": description })
        );
    }
    // The login hosts are audiences too.
    for aud in [
        "https://login.salesforce.com",
        "https://test.salesforce.com/",
    ] {
        let jwt = assertion(&key.private_pem, &with("aud", json!(aud)));
        let (status, body) = jwt_grant(&salesforce, &jwt).await;
        assert_eq!(status, StatusCode::OK, "{aud}: {body}");
    }
    assert_eq!(salesforce.token_requests(), refused.len() + 2);
}

#[tokio::test]
async fn salesforce_client_credentials_and_refresh_token_grants() {
    let salesforce = salesforce(Duration::from_secs(60)).await;
    let url = format!("{}/services/oauth2/token", salesforce.url());
    let credentials = |id: &'static str, secret: &'static str| {
        [
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ]
    };
    let (status, body) = post_form(&url, &credentials(CLIENT_ID, CLIENT_SECRET)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_grant_answer(&salesforce, &body);
    let first = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(account(&salesforce, &first).await.0, StatusCode::NOT_FOUND);

    let (status, body) = post_form(&url, &credentials(CLIENT_ID, "wrong")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "invalid_client", "error_description": "invalid client credentials" })
    );
    let (status, body) = post_form(&url, &credentials("unknown", CLIENT_SECRET)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client_id");

    let refresh = |token: &'static str| {
        [
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", token),
        ]
    };
    let (status, body) = post_form(&url, &refresh("5Aep861-refresh")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_grant_answer(&salesforce, &body);
    let second = body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(account(&salesforce, &second).await.0, StatusCode::NOT_FOUND);
    // Salesforce does not rotate: the same refresh token works again.
    assert_eq!(
        post_form(&url, &refresh("5Aep861-refresh")).await.0,
        StatusCode::OK
    );
    let (status, body) = post_form(&url, &refresh("5Aep861-other")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "invalid_grant", "error_description": "expired access/refresh token" })
    );

    // An app without a secret refreshes without one.
    salesforce.connect_app(ConnectedApp {
        client_secret: None,
        ..connected_app(Duration::from_secs(60))
    });
    let (status, body) = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("refresh_token", "5Aep861-refresh"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = post_form(&url, &[("grant_type", "password")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({ "error": "unsupported_grant_type", "error_description": "grant type not supported" })
    );
    assert_eq!(salesforce.token_requests(), 8);
}

#[tokio::test]
async fn salesforce_refused_grants_then_restored() {
    let salesforce = salesforce(Duration::from_secs(60)).await;
    let url = format!("{}/services/oauth2/token", salesforce.url());
    let jwt = assertion(&keys().0.private_pem, &claims(&salesforce));
    let grants: [Vec<(&str, &str)>; 3] = [
        vec![("grant_type", JWT_BEARER), ("assertion", jwt.as_str())],
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("refresh_token", "5Aep861-refresh"),
        ],
    ];
    salesforce.refuse_grants(true);
    for form in &grants {
        let (status, body) = post_form(&url, form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body,
            json!({ "error": "invalid_grant", "error_description": "user hasn't approved this consumer" })
        );
    }
    salesforce.refuse_grants(false);
    for form in &grants {
        let (status, body) = post_form(&url, form).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert_eq!(salesforce.token_requests(), 6);
}

#[tokio::test]
async fn salesforce_static_token_is_rotated_and_sessions_expire() {
    let salesforce = salesforce(Duration::from_secs(60)).await;
    let jwt = assertion(&keys().0.private_pem, &claims(&salesforce));
    let issued = jwt_grant(&salesforce, &jwt).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    salesforce.set_token("rotated");
    assert_eq!(
        account(&salesforce, TOKEN).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        account(&salesforce, "rotated").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(account(&salesforce, &issued).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        account(&salesforce, "00D000000000001!AQ-unknown").await.0,
        StatusCode::UNAUTHORIZED
    );

    // An expired session takes every token so far; a new grant works again.
    salesforce.expire_token();
    assert_eq!(
        account(&salesforce, "rotated").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        account(&salesforce, &issued).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = jwt_grant(&salesforce, &jwt).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(account(&salesforce, fresh).await.0, StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------------------------------
// HubSpot

const HS_CLIENT_ID: &str = "hs-client-id";
const HS_CLIENT_SECRET: &str = "hs-client-secret";
const HS_REFRESH: &str = "na1-0000-install";

async fn hubspot(lifetime: Duration, rotate: bool) -> HubSpot {
    let hubspot = HubSpot::start(TOKEN).await.unwrap();
    hubspot.connect_app(OAuthApp {
        client_id: HS_CLIENT_ID.into(),
        client_secret: HS_CLIENT_SECRET.into(),
        refresh_token: HS_REFRESH.into(),
        token_lifetime: lifetime,
        rotate_refresh_tokens: rotate,
    });
    hubspot
}

async fn hs_refresh(hubspot: &HubSpot, path: &str, refresh_token: &str) -> (StatusCode, Value) {
    post_form(
        &format!("{}{path}", hubspot.url()),
        &[
            ("grant_type", "refresh_token"),
            ("client_id", HS_CLIENT_ID),
            ("client_secret", HS_CLIENT_SECRET),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// `GET` of a company by `radar_account_id` with `token`: 404 when authenticated (no such
/// company), 401 when not.
async fn company(hubspot: &HubSpot, token: &str) -> (StatusCode, Value) {
    send(
        reqwest::Client::new()
            .get(format!(
                "{}/crm/v3/objects/companies/x?idProperty=radar_account_id",
                hubspot.url()
            ))
            .bearer_auth(token),
    )
    .await
}

fn assert_bad_refresh_token(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(body["message"], "missing or unknown refresh token");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "missing or unknown refresh token"
    );
    assert!(body["correlationId"].is_string(), "{body}");
}

#[tokio::test]
async fn hubspot_refresh_rotates_the_refresh_token() {
    for path in ["/oauth/2026-03/token", "/oauth/v1/token"] {
        let hubspot = hubspot(Duration::from_secs(1800), true).await;
        assert_eq!(hubspot.refresh_token().as_deref(), Some(HS_REFRESH));

        let (status, body) = hs_refresh(&hubspot, path, HS_REFRESH).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["token_type"], "bearer");
        assert_eq!(body["expires_in"], 1800);
        let rotated = body["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rotated, HS_REFRESH);
        assert_eq!(hubspot.refresh_token().as_deref(), Some(rotated.as_str()));
        let access = body["access_token"].as_str().unwrap().to_owned();
        let (status, body) = company(&hubspot, &access).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");

        let (status, body) = hs_refresh(&hubspot, path, HS_REFRESH).await;
        assert_bad_refresh_token(status, &body);

        let (status, body) = hs_refresh(&hubspot, path, &rotated).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let again = body["access_token"].as_str().unwrap();
        assert_ne!(again, access);
        assert_ne!(body["refresh_token"], rotated.as_str());
        assert_eq!(company(&hubspot, again).await.0, StatusCode::NOT_FOUND);
        assert_eq!(hubspot.token_requests(), 3);
        let logged: Vec<(String, u16)> = hubspot
            .requests()
            .into_iter()
            .filter(|request| request.path == path)
            .map(|request| (request.method, request.status))
            .collect();
        assert_eq!(
            logged,
            vec![
                ("POST".into(), 200),
                ("POST".into(), 400),
                ("POST".into(), 200)
            ]
        );
    }
}

#[tokio::test]
async fn hubspot_issued_token_expires() {
    let hubspot = hubspot(Duration::from_millis(1500), false).await;
    let (status, body) = hs_refresh(&hubspot, "/oauth/2026-03/token", HS_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Whole seconds, at least 1; without rotation the same refresh token comes back.
    assert_eq!(body["expires_in"], 1);
    assert_eq!(body["refresh_token"], HS_REFRESH);
    let access = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(company(&hubspot, &access).await.0, StatusCode::NOT_FOUND);

    let body = wait_for_status("the issued token", StatusCode::UNAUTHORIZED, || {
        company(&hubspot, &access)
    })
    .await;
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION", "{body}");
    let (status, body) = company(&hubspot, "CNQ-unknown").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION", "{body}");
    // The refresh token still works: a client refreshes and carries on.
    let (status, body) = hs_refresh(&hubspot, "/oauth/v1/token", HS_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn hubspot_token_endpoint_refuses_what_hubspot_refuses() {
    let hubspot = hubspot(Duration::from_secs(60), true).await;
    let url = format!("{}/oauth/2026-03/token", hubspot.url());
    let (status, body) = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", HS_CLIENT_ID),
            ("client_secret", "wrong"),
            ("refresh_token", HS_REFRESH),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client", "{body}");
    let (status, body) = post_form(
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "unknown"),
            ("client_secret", HS_CLIENT_SECRET),
            ("refresh_token", HS_REFRESH),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_client", "{body}");
    let (status, body) = post_form(
        &url,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", HS_CLIENT_ID),
            ("client_secret", HS_CLIENT_SECRET),
            ("code", "abc"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unsupported_grant_type", "{body}");

    hubspot.refuse_grants(true);
    let (status, body) = hs_refresh(&hubspot, "/oauth/2026-03/token", HS_REFRESH).await;
    assert_bad_refresh_token(status, &body);
    hubspot.refuse_grants(false);
    let (status, body) = hs_refresh(&hubspot, "/oauth/2026-03/token", HS_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Failures rotated nothing; the success did.
    assert_ne!(hubspot.refresh_token().as_deref(), Some(HS_REFRESH));
    assert_eq!(hubspot.token_requests(), 5);
}

#[tokio::test]
async fn hubspot_static_token_is_rotated() {
    let hubspot = hubspot(Duration::from_secs(60), false).await;
    let access = hs_refresh(&hubspot, "/oauth/v1/token", HS_REFRESH).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    hubspot.set_token("rotated");
    let (status, body) = company(&hubspot, TOKEN).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["category"], "INVALID_AUTHENTICATION", "{body}");
    assert_eq!(company(&hubspot, "rotated").await.0, StatusCode::NOT_FOUND);
    assert_eq!(company(&hubspot, &access).await.0, StatusCode::NOT_FOUND);

    // Expiring takes the static token and every access token so far.
    hubspot.expire_token();
    for token in ["rotated", access.as_str()] {
        let (status, body) = company(&hubspot, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["category"], "EXPIRED_AUTHENTICATION", "{body}");
    }
    let (status, body) = hs_refresh(&hubspot, "/oauth/v1/token", HS_REFRESH).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(company(&hubspot, fresh).await.0, StatusCode::NOT_FOUND);
}
