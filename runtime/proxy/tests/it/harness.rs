//! Starts the runtime on `127.0.0.1:0` with the routing case compiled against four test
//! upstreams, and sends requests to it.

use aigw_proxy::reload::Source;
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/routing.yaml"
);

pub struct Harness {
    pub runtime: Runtime,
    pub a: MockUpstream,
    pub b: MockUpstream,
    pub c: MockUpstream,
    pub cohere: MockUpstream,
    pub client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap_or("(not utf-8)")
    }

    /// `error.message` of an OpenAI error body (empty when there is none).
    pub fn error_message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends a request with `client` and reads the whole answer.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: &str,
    url: &str,
    body: Bytes,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body)).expect("request");
    let response = client.request(request).await.expect("the gateway answers");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("the body arrives whole")
        .to_bytes();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// A port nothing listens on.
pub fn dead_port() -> u16 {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    socket.local_addr().expect("addr").port()
}

/// The routing case with the upstream ports put in (`a_port` overrides a's).
pub fn manifests(a: u16, b: u16, c: u16, cohere: u16) -> String {
    std::fs::read_to_string(CASE)
        .expect("the routing case")
        .replace("65001", &a.to_string())
        .replace("65002", &b.to_string())
        .replace("65003", &c.to_string())
        .replace("65004", &cohere.to_string())
}

/// Compiles manifests as `aigw run` does.
pub fn compile(text: &str) -> (aigw_table::Snapshot, aigw_proxy::secrets::Secrets) {
    let source = aigw_compiler::run::Manifests {
        paths: Vec::new(),
        text: Some(text.to_owned()),
        secrets_dir: None,
        options: aigw_compiler::CheckOptions::default(),
        inline: Vec::new(),
    };
    source.load().expect("the routing case compiles")
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with(Config::loopback(), false).await
    }

    /// `dead_a`: backend a points at a port nothing listens on.
    pub async fn start_with(config: Config, dead_a: bool) -> Self {
        let a = MockUpstream::start("a").await.expect("upstream a");
        let b = MockUpstream::start("b").await.expect("upstream b");
        let c = MockUpstream::start("c").await.expect("upstream c");
        let cohere = MockUpstream::start("cohere")
            .await
            .expect("upstream cohere");
        let a_port = if dead_a { dead_port() } else { a.port() };
        let (snapshot, secrets) = compile(&manifests(a_port, b.port(), c.port(), cohere.port()));
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the runtime starts");
        let client = Client::builder(TokioExecutor::new()).build_http();
        Harness {
            runtime,
            a,
            b,
            c,
            cohere,
            client,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!(
            "http://{}{path}",
            self.runtime.addr(8080).expect("port 8080 is served")
        )
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.runtime.admin_addr().expect("admin"))
    }

    /// Sends a request and reads the whole answer.
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        body: Bytes,
        headers: &[(&str, &str)],
    ) -> Reply {
        send(&self.client, method, url, body, headers).await
    }

    pub async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/json")];
        all.extend_from_slice(headers);
        self.send("POST", &self.url(path), Bytes::from(body.to_string()), &all)
            .await
    }

    /// A chat completion for `model`.
    pub async fn chat(&self, model: &str) -> Reply {
        self.post("/v1/chat/completions", chat_body(model), &[])
            .await
    }
}

pub fn chat_body(model: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Say hi"}]})
}
