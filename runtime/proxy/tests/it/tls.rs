//! TLS and HTTP/2: the HTTPS listener (certificate from its Secret, HTTP/1.1 and h2 by ALPN),
//! h2c with prior knowledge on a plain listener, and upstream TLS verified as the
//! BackendTLSPolicy says (its CA bundle and hostname), refusing what does not verify.
//!
//! The certificates are made per test run by `openssl` (the apt package `.ci/run` installs):
//! a test CA and a certificate for `aigw.test` and `127.0.0.1` that it signed.

use crate::harness::{Reply, chat_body};
use aigw_proxy::reload::Source;
use aigw_proxy::{Config, Runtime};
use aigw_testkit::MockUpstream;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const CASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/runtime/tls.yaml"
);

/// A test CA and a server certificate it signed, as PEM.
struct Pki {
    ca: Vec<u8>,
    chain: Vec<u8>,
    key: Vec<u8>,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (apt package `openssl`) is needed to make test certificates");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Pki {
    fn make() -> Pki {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir: PathBuf =
            std::env::temp_dir().join(format!("aigw-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=aigw test CA"];
        ca.extend(ec);
        ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
        openssl(&dir, &ca);
        let mut csr = vec!["req", "-subj", "/CN=aigw.test"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(&dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=DNS:aigw.test,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions");
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        );
        let read = |name: &str| std::fs::read(dir.join(name)).expect("a made file");
        let pki = Pki {
            ca: read("ca.crt"),
            chain: read("server.crt"),
            key: read("server.key"),
        };
        let _ = std::fs::remove_dir_all(&dir);
        pki
    }

    /// A rustls client trusting only the test CA, offering `alpn`.
    fn connector(&self, alpn: &[u8]) -> tokio_rustls::TlsConnector {
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&self.ca) {
            roots.add(cert.expect("PEM")).expect("the test CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

struct Gateway {
    runtime: Runtime,
    pki: Pki,
    plain: MockUpstream,
    secure: MockUpstream,
}

impl Gateway {
    async fn start() -> Gateway {
        Self::start_with(Config::loopback()).await
    }

    async fn start_with(config: Config) -> Gateway {
        let pki = Pki::make();
        let plain = MockUpstream::start("plain").await.expect("plain upstream");
        let secure = MockUpstream::start_tls("secure", &pki.chain, &pki.key)
            .await
            .expect("TLS upstream");
        let text = std::fs::read_to_string(CASE)
            .expect("the TLS case")
            .replace("65011", &plain.port().to_string())
            .replace("65012", &secure.port().to_string());
        let key = |name: &str, key: &str| ("default".to_owned(), name.to_owned(), key.to_owned());
        let source = aigw_compiler::run::Manifests {
            paths: Vec::new(),
            text: Some(text),
            secrets_dir: None,
            options: aigw_compiler::CheckOptions::default(),
            inline: vec![
                (key("gw-cert", "tls.crt"), Bytes::from(pki.chain.clone())),
                (key("gw-cert", "tls.key"), Bytes::from(pki.key.clone())),
                (key("test-ca", "ca.crt"), Bytes::from(pki.ca.clone())),
            ],
        };
        let (snapshot, secrets) = source.load().expect("the TLS case compiles");
        let runtime = Runtime::start(config, snapshot, &secrets)
            .await
            .expect("the runtime starts");
        Gateway {
            runtime,
            pki,
            plain,
            secure,
        }
    }

    /// A chat completion for `model` over TLS to the HTTPS listener, by `alpn` (h2 or http/1.1).
    async fn https_chat(&self, alpn: &[u8], model: &str) -> (http::Version, Reply) {
        let addr = self.runtime.addr(8443).expect("8443 is served");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("aigw.test").expect("name");
        let tls = self
            .pki
            .connector(alpn)
            .connect(name, tcp)
            .await
            .expect("the handshake succeeds with the listener's certificate");
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(negotiated.as_deref(), Some(alpn), "ALPN");
        let request = http::Request::post("https://aigw.test/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(chat_body(model).to_string())))
            .expect("request");
        let io = TokioIo::new(tls);
        let response = if alpn == b"h2" {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .expect("h2 handshake");
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .expect("http/1.1 handshake");
            tokio::spawn(connection);
            let mut request = request;
            request
                .headers_mut()
                .insert("host", http::HeaderValue::from_static("aigw.test"));
            *request.uri_mut() = http::Uri::from_static("/v1/chat/completions");
            sender.send_request(request).await
        }
        .expect("an answer");
        let version = response.version();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        let reply = Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        };
        (version, reply)
    }

    /// A chat completion for `model` on the plain listener.
    async fn chat(&self, model: &str) -> Reply {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        let url = format!(
            "http://{}/v1/chat/completions",
            self.runtime.addr(8080).expect("8080 is served")
        );
        send(&client, &url, model).await.1
    }
}

async fn send<C>(
    client: &hyper_util::client::legacy::Client<C, Full<Bytes>>,
    url: &str,
    model: &str,
) -> (http::Version, Reply)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(chat_body(model).to_string())))
        .expect("request");
    let response = client.request(request).await.expect("an answer");
    let version = response.version();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (
        version,
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_https_listener_serves_http1_and_h2_with_its_secret_s_certificate() {
    let gw = Gateway::start().await;
    for alpn in [&b"http/1.1"[..], b"h2"] {
        let (version, reply) = gw.https_chat(alpn, "plain").await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            reply.json()["choices"][0]["message"]["content"],
            "Hello from plain"
        );
        let expected = if alpn == b"h2" {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(version, expected);
    }
    assert_eq!(gw.plain.count(), 2);

    // Plain HTTP to the HTTPS port gets no answer in the clear.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
    let url = format!("http://{}/v1/models", gw.runtime.addr(8443).expect("8443"));
    let request = http::Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert!(
        client.request(request).await.is_err(),
        "cleartext on the HTTPS port"
    );
    gw.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_is_served_on_a_plain_listener() {
    let gw = Gateway::start().await;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let url = format!(
        "http://{}/v1/chat/completions",
        gw.runtime.addr(8080).expect("8080")
    );
    for _ in 0..3 {
        let (version, reply) = send(&client, &url, "plain").await;
        assert_eq!(version, http::Version::HTTP_2);
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["model"], "plain");
    }
    gw.runtime.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_tls_is_verified_against_the_policy_s_ca_and_hostname() {
    let gw = Gateway::start().await;
    let reply = gw.chat("secure").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-mock-upstream"), Some("secure"));
    assert_eq!(gw.secure.count(), 1);
    // The TLS name asked for is the policy's hostname; the authority stays the endpoint, as
    // Envoy Gateway leaves it (the hostname is for SNI and verification). HTTP/2, as the
    // upstream's ALPN offered.
    let seen = gw.secure.last().expect("recorded");
    assert_eq!(seen.sni.as_deref(), Some("aigw.test"));
    let endpoint = format!("127.0.0.1:{}", gw.secure.port());
    assert_eq!(seen.authority.as_deref(), Some(endpoint.as_str()));
    assert_eq!(seen.version, http::Version::HTTP_2);

    // A name the certificate does not carry, and a CA the client does not trust: refused before
    // any request is sent, answered as an upstream failure, never sent in the clear.
    for model in ["wrong-name", "untrusted"] {
        let reply = gw.chat(model).await;
        assert!(
            reply.status == 502 || reply.status == 503,
            "{model}: {} {}",
            reply.status,
            reply.text()
        );
        assert_eq!(
            reply.json()["error"]["type"],
            "upstream_error",
            "{}",
            reply.text()
        );
    }
    assert_eq!(
        gw.secure.count(),
        1,
        "nothing reached the upstream unverified"
    );
    // Both are counted as what they are: a failed handshake.
    let admin = gw.runtime.admin_addr().expect("admin");
    let metrics = crate::governance::reqwest_like_get(&format!("http://{admin}/metrics")).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "aigw_upstream_faults_total{fault=\"tls\"} 2"),
        "{metrics}"
    );
    gw.runtime.shutdown().await;
}

/// A client that opens a connection to the HTTPS listener and never finishes its handshake is
/// closed at the handshake's bound (the head's time, at most 10 s; 300 ms here), its
/// connection slot given back; the listener serves the next client as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_finishes_is_closed_at_its_bound() {
    let mut config = Config::loopback();
    config.limits.header_timeout = std::time::Duration::from_millis(300);
    config.limits.max_connections = 1;
    let gw = Gateway::start_with(config).await;
    let addr = gw.runtime.addr(8443).expect("8443 is served");
    let started = std::time::Instant::now();
    let mut silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut silent, &mut buffer),
    )
    .await
    .expect("closed before 5 s");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "closed, not answered: {read:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(250) && took < std::time::Duration::from_secs(3),
        "closed at the bound: {took:?}"
    );
    // The one connection slot came back: a real client is served.
    let (_, reply) = gw.https_chat(b"http/1.1", "plain").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gw.runtime.shutdown().await;
}
