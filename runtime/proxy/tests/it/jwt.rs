//! JWT callers, authorization rules and CORS (issue #17), over real loopback:
//! `testdata/runtime/jwt.yaml` in front of a recording upstream, with RSA keys made per run by
//! `openssl`, tokens signed here with them, one provider's JWK set in the policy and the
//! other's served by the testkit's JWKS endpoint.

use crate::cloud::{Keys, keys};
use crate::harness::{Reply, chat_body, compile, send};
use aigw_proxy::{Config, Runtime};
use aigw_testkit::{JwksServer, MockUpstream};
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/jwt.yaml"
);
const CORP: &str = "https://login.corp.test";
const PARTNER: &str = "https://partner.test";

/// An RSA key as a JWK (its modulus read by `openssl`).
pub(crate) fn jwk(keys: &Keys, kid: &str) -> Value {
    let output = std::process::Command::new("openssl")
        .args(["rsa", "-pubin", "-noout", "-modulus", "-in"])
        .arg(&keys.public_file)
        .output()
        .expect("openssl reads the modulus");
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let hex = text.trim().trim_start_matches("Modulus=");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    json!({"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64.encode(bytes), "e": "AQAB"})
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

pub(crate) fn sign(keys: &Keys, kid: &str, claims: &Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(keys.private.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}

/// A corp token for `sub`, valid for an hour, with `scope` and `org.team`.
fn corp_claims(sub: &str, scope: &str, team: &str) -> Value {
    json!({"iss": CORP, "aud": "aigw", "sub": sub, "scope": scope, "org": {"team": team}, "exp": now() + 3600})
}

struct Gateway {
    runtime: Runtime,
    upstream: MockUpstream,
    jwks: JwksServer,
    corp: Keys,
    partner: Keys,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Gateway {
    /// `cache` replaces the remote set's `cacheDuration`; `failing` starts the JWKS endpoint
    /// broken.
    async fn start(cache: &str, failing: bool) -> Self {
        let upstream = MockUpstream::start("a").await.expect("upstream");
        let (corp, partner) = (keys(), keys());
        let jwks = JwksServer::start(json!({"keys": [jwk(&partner, "p1")]}))
            .await
            .expect("jwks");
        if failing {
            jwks.set_failing(Some(http::StatusCode::SERVICE_UNAVAILABLE));
        }
        let local = json!({"keys": [jwk(&corp, "c1")]}).to_string();
        let manifests = std::fs::read_to_string(CASE)
            .expect("the JWT case")
            .replace("65001", &upstream.port().to_string())
            .replace("JWKS_URL", &jwks.url())
            .replace("LOCAL_JWKS", &local)
            .replace("cacheDuration: 60s", &format!("cacheDuration: {cache}"));
        let (snapshot, secrets) = compile(&manifests);
        let runtime = Runtime::start(Config::loopback(), snapshot, &secrets)
            .await
            .expect("the runtime starts");
        Gateway {
            runtime,
            upstream,
            jwks,
            corp,
            partner,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.runtime.addr(8080).expect("port"))
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
        let body = if method == "POST" {
            Bytes::from(chat_body("gpt-a").to_string())
        } else {
            Bytes::new()
        };
        send(&self.client, method, &self.url(path), body, headers).await
    }

    async fn chat(&self, model: &str, token: Option<&str>) -> Reply {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("authorization", b));
        }
        let url = self.url("/v1/chat/completions");
        let body = Bytes::from(chat_body(model).to_string());
        send(&self.client, "POST", &url, body, &headers).await
    }

    fn corp_token(&self, sub: &str, scope: &str, team: &str) -> String {
        sign(&self.corp, "c1", &corp_claims(sub, scope, team))
    }

    fn partner_token(&self, roles: &[&str]) -> String {
        let claims =
            json!({"iss": PARTNER, "sub": "partner-svc", "roles": roles, "exp": now() + 600});
        sign(&self.partner, "p1", &claims)
    }
}

fn error_message(reply: &Reply) -> String {
    reply.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_verified_and_rules_decide() {
    let g = Gateway::start("60s", false).await;

    let none = g.chat("gpt-a", None).await;
    assert_eq!(none.status, 401, "{}", none.text());
    assert_eq!(none.json()["error"]["type"], "authentication_error");
    assert_eq!(error_message(&none), "Jwt is missing");
    let realm = format!("Bearer realm=\"{}\"", g.url("/v1/chat/completions"));
    assert_eq!(none.header("www-authenticate"), Some(realm.as_str()));

    // A good corp token: served, its claim copied into `x-team` over what the caller sent.
    let bob = g.corp_token("bob", "openid chat", "ml");
    let url = g.url("/v1/chat/completions");
    let bearer = format!("Bearer {bob}");
    let body = Bytes::from(chat_body("gpt-a").to_string());
    let headers = [
        ("content-type", "application/json"),
        ("authorization", bearer.as_str()),
        ("x-team", "admins"),
    ];
    let ok = send(&g.client, "POST", &url, body, &headers).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let seen = g.upstream.last().expect("the upstream was called");
    assert_eq!(seen.header("x-team"), Some("ml"));

    // Verified, then refused by a rule, or by the default.
    let banned = g
        .chat("gpt-a", Some(&g.corp_token("eve", "chat", "banned")))
        .await;
    assert_eq!(banned.status, 403, "{}", banned.text());
    assert_eq!(banned.json()["error"]["type"], "permission_error");
    assert_eq!(error_message(&banned), "RBAC: access denied");
    let no_scope = g
        .chat("gpt-a", Some(&g.corp_token("bob", "openid chatty", "ml")))
        .await;
    assert_eq!(no_scope.status, 403, "{}", no_scope.text());

    // Invalid tokens, each with Envoy's reason and the `invalid_token` challenge.
    let mut expired = corp_claims("bob", "chat", "ml");
    expired["exp"] = json!(now() - 3600);
    let reply = g.chat("gpt-a", Some(&sign(&g.corp, "c1", &expired))).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(error_message(&reply), "Jwt is expired");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.ends_with("error=\"invalid_token\"")),
        "{:?}",
        reply.headers
    );
    let mut other_audience = corp_claims("bob", "chat", "ml");
    other_audience["aud"] = json!("someone-else");
    let reply = g
        .chat("gpt-a", Some(&sign(&g.corp, "c1", &other_audience)))
        .await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert_eq!(error_message(&reply), "Audiences in Jwt are not allowed");
    let mut other_issuer = corp_claims("bob", "chat", "ml");
    other_issuer["iss"] = json!("https://evil.test");
    let reply = g
        .chat("gpt-a", Some(&sign(&g.corp, "c1", &other_issuer)))
        .await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    // Signed by another key under the corp key's id.
    let forged = sign(&g.partner, "c1", &corp_claims("bob", "chat", "ml"));
    let reply = g.chat("gpt-a", Some(&forged)).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(error_message(&reply), "Jwt verification fails");
    // HS256 "signed" with the public key: never checked against an RSA key.
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("c1".to_owned());
    let hmac = jsonwebtoken::EncodingKey::from_secret(&g.corp.public);
    let confused =
        jsonwebtoken::encode(&header, &corp_claims("bob", "chat", "ml"), &hmac).expect("signed");
    let reply = g.chat("gpt-a", Some(&confused)).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    let reply = g.chat("gpt-a", Some("not.a.jwt")).await;
    assert_eq!(reply.status, 401, "{}", reply.text());

    // The allowlist keys on `sub`.
    let reply = g.chat("gpt-admin", Some(&bob)).await;
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(
        error_message(&reply).contains("gpt-admin"),
        "{}",
        reply.text()
    );
    let alice = g.corp_token("alice", "chat", "ml");
    assert_eq!(g.chat("gpt-admin", Some(&alice)).await.status, 200);

    // `/v1/models` lists what the token's subject may use.
    let models = |token: &str| {
        let bearer = format!("Bearer {token}");
        let g = &g;
        async move {
            let reply = g
                .request("GET", "/v1/models", &[("authorization", &bearer)])
                .await;
            let mut ids: Vec<String> = reply.json()["data"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .filter_map(|m| m["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            ids.sort();
            (reply.status, ids)
        }
    };
    assert_eq!(models(&bob).await, (200, vec!["gpt-a".to_owned()]));
    assert_eq!(
        models(&alice).await,
        (200, vec!["gpt-a".to_owned(), "gpt-admin".to_owned()])
    );
    assert_eq!(g.request("GET", "/v1/models", &[]).await.status, 401);

    // The plain route is behind the same policy.
    assert_eq!(g.request("GET", "/docs/x", &[]).await.status, 401);
    let bearer = format!("Bearer {bob}");
    let docs = g
        .request("GET", "/docs/x", &[("authorization", &bearer)])
        .await;
    assert_eq!(docs.status, 200, "{}", docs.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_key_set_is_fetched_once_and_kept() {
    let g = Gateway::start("60s", false).await;
    let token = g.partner_token(&["llm"]);
    let send_partner = |token: String| {
        let g = &g;
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("x-partner-token", token.as_str()),
            ];
            let url = g.url("/v1/chat/completions");
            let body = Bytes::from(chat_body("gpt-a").to_string());
            send(&g.client, "POST", &url, body, &headers).await
        }
    };
    for _ in 0..3 {
        let reply = send_partner(token.clone()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(g.jwks.fetches(), 1, "the set is kept for its cacheDuration");
    let wrong_role = send_partner(g.partner_token(&["viewer"])).await;
    assert_eq!(wrong_role.status, 403, "{}", wrong_role.text());
    // The partner's key does not verify corp tokens, nor the corp key partner tokens.
    let corp_signed = sign(&g.corp, "p1", &json!({"iss": PARTNER, "roles": ["llm"]}));
    assert_eq!(send_partner(corp_signed).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_that_cannot_be_fetched_is_tried_again_later_and_rotates() {
    let g = Gateway::start("1s", true).await;
    let partner = |token: String| {
        let g = &g;
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("x-partner-token", token.as_str()),
            ];
            let url = g.url("/v1/chat/completions");
            let body = Bytes::from(chat_body("gpt-a").to_string());
            send(&g.client, "POST", &url, body, &headers).await
        }
    };
    let token = g.partner_token(&["llm"]);
    let reply = partner(token.clone()).await;
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert_eq!(error_message(&reply), "Jwks remote fetch is failed");
    assert_eq!(partner(token.clone()).await.status, 401);
    assert_eq!(
        g.jwks.fetches(),
        1,
        "no fetch again within failedRefetchDuration"
    );

    g.jwks.set_failing(None);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = partner(token.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(g.jwks.fetches(), 2);

    // The partner rotates to a new key: tokens it signs verify once the cached set expires.
    let rotated = keys();
    g.jwks.set_keys(json!({"keys": [jwk(&rotated, "p2")]}));
    let claims =
        json!({"iss": PARTNER, "sub": "partner-svc", "roles": ["llm"], "exp": now() + 600});
    let new_token = sign(&rotated, "p2", &claims);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let reply = partner(new_token).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(partner(token).await.status, 401, "the old key is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_before_authentication() {
    let g = Gateway::start("60s", false).await;
    let origin = "https://app.example.com";
    let preflight = g
        .request(
            "OPTIONS",
            "/v1/chat/completions",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        )
        .await;
    assert_eq!(preflight.status, 200, "{}", preflight.text());
    assert!(preflight.body.is_empty());
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(origin)
    );
    assert_eq!(
        preflight.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST, GET")
    );
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("authorization, content-type")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("600"));
    assert_eq!(
        g.upstream.count(),
        0,
        "a preflight is answered by the gateway"
    );

    // The bare domain is not `*.example.com`, nor is another scheme.
    for other in [
        "https://example.com",
        "http://app.example.com",
        "https://evil.test",
    ] {
        let reply = g
            .request(
                "OPTIONS",
                "/v1/chat/completions",
                &[("origin", other), ("access-control-request-method", "POST")],
            )
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("access-control-allow-origin"), None, "{other}");
    }

    // Answers to an allowed origin, refusals included, can be read by the page.
    let refused = g
        .request(
            "POST",
            "/v1/chat/completions",
            &[("origin", origin), ("content-type", "application/json")],
        )
        .await;
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some(origin));
    let bearer = format!("Bearer {}", g.corp_token("bob", "chat", "ml"));
    let served = g
        .request(
            "POST",
            "/v1/chat/completions",
            &[
                ("origin", origin),
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
        )
        .await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("access-control-allow-origin"), Some(origin));
    assert_eq!(
        served.header("access-control-expose-headers"),
        Some("x-ratelimit-remaining")
    );
    let elsewhere = g
        .request(
            "POST",
            "/v1/chat/completions",
            &[
                ("origin", "https://evil.test"),
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
        )
        .await;
    assert_eq!(elsewhere.status, 200);
    assert_eq!(elsewhere.header("access-control-allow-origin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_sees_jwt_refusals_as_its_error_types() {
    let Some(python) = aigw_testkit::python("JWT SDK client", &["openai"]) else {
        return;
    };
    let g = Gateway::start("60s", false).await;
    let base = format!("http://{}", g.runtime.addr(8080).expect("port"));
    let good = g.corp_token("bob", "chat", "ml");
    let unscoped = g.corp_token("bob", "openid", "ml");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/jwt_client.py");
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("AIGW_BASE_URL", base)
            .env("AIGW_TOKEN", good)
            .env("AIGW_TOKEN_UNSCOPED", unscoped)
            .env_remove("OPENAI_API_KEY")
            .output()
    })
    .await
    .expect("joined")
    .expect("python runs");
    let report = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK tests failed:\n{report}");
    assert!(
        report.contains("Ran 3 tests"),
        "every SDK test ran:\n{report}"
    );
}
