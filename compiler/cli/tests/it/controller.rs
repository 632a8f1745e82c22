//! `aigw controller` against a loopback fake API server (runtime/testkit/kube) that speaks the
//! Kubernetes wire protocol, with the official `kubernetes` Python client as the tests' own
//! client: statuses written by server-side apply with the right reasons, a refused edit that
//! keeps the table, a fix that publishes a new one, Events, no duplicate writes after a
//! restart, one leader of two replicas, and a data plane following the controller under load.

use aigw_testkit::{FakeKube, MockUpstream, free_port, http, http_with};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Secret's value: it must appear in no write, status, Event or table.
const SECRET: &str = "sk-test-never-written-anywhere";

/// A Gateway on `gateway`, a route for `models` to an OpenAI backend on `upstream` with an API
/// key, and the key's Secret.
fn manifests(gateway: u16, upstream: u16, models: &[&str], backend: &str) -> String {
    let matches: String = models
        .iter()
        .map(|m| format!("    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {m}\n      backendRefs:\n        - name: {backend}\n"))
        .collect();
    let key = base64_of(SECRET);
    format!(
        "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n  name: gw\n  namespace: default\nspec:\n  gatewayClassName: aigw\n  listeners:\n    - name: http\n      protocol: HTTP\n      port: {gateway}\n---\n\
apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIGatewayRoute\nmetadata:\n  name: chat\n  namespace: default\nspec:\n  parentRefs:\n    - name: gw\n  rules:\n{matches}---\n\
apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: AIServiceBackend\nmetadata:\n  name: mock\n  namespace: default\nspec:\n  schema:\n    name: OpenAI\n  backendRef:\n    name: mock\n    kind: Backend\n    group: gateway.envoyproxy.io\n---\n\
apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: mock\n  namespace: default\nspec:\n  endpoints:\n    - ip:\n        address: 127.0.0.1\n        port: {upstream}\n---\n\
apiVersion: aigateway.envoyproxy.io/v1beta1\nkind: BackendSecurityPolicy\nmetadata:\n  name: mock-key\n  namespace: default\nspec:\n  type: APIKey\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: mock\n  apiKey:\n    secretRef:\n      name: openai-key\n---\n\
apiVersion: v1\nkind: Secret\nmetadata:\n  name: openai-key\n  namespace: default\ntype: Opaque\ndata:\n  apiKey: {key}\n"
    )
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// One `aigw controller` process; killed when dropped.
struct Controller {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Controller {
    fn start(kube: &FakeKube, dir: &Path, identity: &str) -> Controller {
        Controller::start_with(kube, dir, identity, &[])
    }

    fn start_with(kube: &FakeKube, dir: &Path, identity: &str, extra: &[&str]) -> Controller {
        let port = free_port();
        let log = dir.join(format!("controller-{identity}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_aigw"))
            .arg("controller")
            .arg("--kubeconfig")
            .arg(kube.kubeconfig())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--identity",
                identity,
                "--lease-duration",
                "2",
                "--debounce-ms",
                "50",
            ])
            .args(extra)
            .env("RUST_LOG", "info,aigw_compiler=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("aigw controller starts");
        Controller { child, port, log }
    }

    fn status(&self) -> Value {
        let (_, body) = http(self.port, "GET", "/v1/status");
        serde_json::from_str(&body).unwrap_or_default()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, and wait for the exit (the Lease is released on the way out).
    fn terminate(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `what` until it returns `Some`, for at most `secs` seconds.
fn eventually<T>(
    secs: u64,
    context: impl Fn() -> String,
    mut what: impl FnMut() -> Option<T>,
) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = what() {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "timed out; {}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn condition(kube: &FakeKube, api_version: &str, kind: &str, name: &str) -> Value {
    kube.get(api_version, kind, "default", name)["status"]["conditions"][0].clone()
}

const AI: &str = "aigateway.envoyproxy.io/v1beta1";

fn status_writes(kube: &FakeKube) -> Vec<Value> {
    kube.requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.ends_with("/status")))
        .collect()
}

fn setup(test: &str) -> Option<(tempfile::TempDir, FakeKube)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let kube = FakeKube::start(test, dir.path())?;
    Some((dir, kube))
}

#[test]
fn the_controller_writes_statuses_refuses_a_bad_edit_and_publishes_the_fix() {
    let Some((dir, kube)) = setup("controller statuses") else {
        return;
    };
    let gateway = free_port();
    kube.apply(&manifests(gateway, 9, &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start(&kube, dir.path(), "a");
    let first = eventually(
        20,
        || controller.log(),
        || {
            let status = controller.status();
            status["table"].as_str().map(str::to_owned)
        },
    );
    eventually(
        10,
        || controller.log(),
        || {
            let c = condition(&kube, AI, "AIGatewayRoute", "chat");
            (c["type"] == "Accepted").then_some(())
        },
    );
    let accepted = condition(&kube, AI, "AIGatewayRoute", "chat");
    assert_eq!(accepted["status"], "True");
    assert_eq!(accepted["reason"], "ReconciliationSucceeded");
    assert_eq!(
        accepted["message"],
        "AI Gateway Route reconciled successfully"
    );
    assert_eq!(accepted["observedGeneration"], 1);
    assert!(
        accepted["lastTransitionTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    for (kind, name) in [
        ("AIServiceBackend", "mock"),
        ("BackendSecurityPolicy", "mock-key"),
    ] {
        let c = eventually(
            10,
            || controller.log(),
            || {
                let c = condition(&kube, AI, kind, name);
                (c["type"] == "Accepted").then_some(c)
            },
        );
        assert_eq!(c["status"], "True", "{kind}");
    }
    // Every status write is a server-side apply of the status subresource by `aigw`.
    let writes = status_writes(&kube);
    assert_eq!(writes.len(), 3, "{writes:#?}");
    for write in &writes {
        assert_eq!(write["method"], "PATCH");
        assert_eq!(write["contentType"], "application/apply-patch+yaml");
        assert_eq!(write["fieldManager"], "aigw");
    }
    let (code, table) = http(controller.port, "GET", "/v1/table");
    assert_eq!(code, 200);
    let table: Value = serde_json::from_str(&table).expect("the table is JSON");
    assert!(table.to_string().contains("m1"));

    // An edit that names a backend that does not exist: refused, the table stays.
    kube.apply(&manifests(gateway, 9, &["m1", "m2"], "missing"))
        .expect("apply");
    let refused = eventually(
        10,
        || controller.log(),
        || {
            let c = condition(&kube, AI, "AIGatewayRoute", "chat");
            (c["type"] == "NotAccepted").then_some(c)
        },
    );
    assert_eq!(refused["status"], "False");
    assert_eq!(refused["reason"], "ReconciliationFailed");
    assert_eq!(refused["observedGeneration"], 2);
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains("missing"), "{message}");
    assert!(
        message.contains("AIGatewayRoute/default/chat:"),
        "{message}"
    );
    assert!(
        message.contains("spec.rules[0].backendRefs[0]"),
        "{message}"
    );
    assert_ne!(refused["lastTransitionTime"], Value::Null);
    let status = controller.status();
    assert!(status["errors"].as_u64() > Some(0), "{status}");
    assert_eq!(
        status["table"].as_str(),
        Some(first.as_str()),
        "the last good table serves"
    );
    let events = kube.kubectl(&["events", "default"]).expect("events");
    let events: Value = serde_json::from_str(&events).expect("events JSON");
    let warning = events["items"]
        .as_array()
        .and_then(|items| items.iter().find(|e| e["reason"] == "NotAccepted"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(warning["type"], "Warning", "{events}");
    assert_eq!(warning["regarding"]["name"], "chat");
    assert_eq!(warning["reportingController"], "aigw");

    // The fix: accepted again, with a new transition time, and a new table with both models.
    kube.apply(&manifests(gateway, 9, &["m1", "m2"], "mock"))
        .expect("apply");
    let fixed = eventually(
        10,
        || controller.log(),
        || {
            let c = condition(&kube, AI, "AIGatewayRoute", "chat");
            (c["type"] == "Accepted").then_some(c)
        },
    );
    assert_eq!(fixed["observedGeneration"], 3);
    let second = eventually(
        10,
        || controller.log(),
        || {
            let status = controller.status();
            let table = status["table"].as_str().map(str::to_owned)?;
            (table != first).then_some(table)
        },
    );
    assert_ne!(second, first);
    let (_, table) = http(controller.port, "GET", "/v1/table");
    assert!(table.contains("m2"));

    // No Secret value anywhere the controller wrote or serves (the test's own applies, by
    // the manager `kubectl`, are left out: they wrote the Secret).
    let controller_writes: Vec<Value> = kube
        .requests()
        .into_iter()
        .filter(|r| r["fieldManager"] != "kubectl")
        .collect();
    assert!(controller_writes.len() >= 6, "{controller_writes:#?}");
    let everything = format!(
        "{:?}{}{}{}",
        controller_writes,
        controller.status(),
        table,
        controller.log()
    );
    for needle in [SECRET, &base64_of(SECRET)] {
        assert!(
            !everything.contains(needle),
            "a Secret value was written or served"
        );
    }
}

#[test]
fn a_long_poll_answers_when_a_new_table_is_published() {
    let Some((dir, kube)) = setup("controller long poll") else {
        return;
    };
    let gateway = free_port();
    kube.apply(&manifests(gateway, 9, &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start(&kube, dir.path(), "a");
    let version = eventually(
        20,
        || controller.log(),
        || {
            controller.status()["table"]
                .as_str()
                .map(|t| format!("\"{t}\""))
        },
    );
    // The same version, no wait: 304 at once.
    let (code, _) = http_with(
        controller.port,
        "GET",
        "/v1/table",
        &[("If-None-Match", &version)],
        "",
    );
    assert_eq!(code, 304);
    // Waiting: the answer comes with the new table.
    let port = controller.port;
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = http_with(
            port,
            "GET",
            "/v1/table?wait=20",
            &[("If-None-Match", &version)],
            "",
        );
        (answer, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    kube.apply(&manifests(gateway, 9, &["m1", "m9"], "mock"))
        .expect("apply");
    let ((code, body), took) = waiter.join().expect("the waiter");
    assert_eq!(code, 200);
    assert!(body.contains("m9"));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(15),
        "{took:?}"
    );
}

#[test]
fn a_restarted_controller_writes_nothing_that_is_already_true() {
    let Some((dir, kube)) = setup("controller restart") else {
        return;
    };
    kube.apply(&manifests(free_port(), 9, &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start(&kube, dir.path(), "a");
    eventually(
        20,
        || controller.log(),
        || (status_writes(&kube).len() == 3).then_some(()),
    );
    controller.terminate();
    kube.hook("requests/clear");
    let restarted = Controller::start(&kube, dir.path(), "b");
    eventually(
        20,
        || restarted.log(),
        || {
            let status = restarted.status();
            (status["leader"] == true && status["table"].is_string()).then_some(())
        },
    );
    // Several renewals later, still no status write and no Event.
    std::thread::sleep(Duration::from_secs(2));
    let writes: Vec<Value> = kube
        .requests()
        .into_iter()
        .filter(|r| !r["path"].as_str().is_some_and(|p| p.contains("/leases")))
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
}

#[test]
fn of_two_replicas_one_leads_and_the_other_takes_over() {
    let Some((dir, kube)) = setup("controller leader election") else {
        return;
    };
    kube.apply(&manifests(free_port(), 9, &["m1"], "mock"))
        .expect("apply");
    let a = Controller::start(&kube, dir.path(), "a");
    let b = Controller::start(&kube, dir.path(), "b");
    let leaders = || {
        [&a, &b]
            .iter()
            .filter(|c| c.status()["leader"] == true)
            .count()
    };
    eventually(
        20,
        || format!("{}\n{}", a.log(), b.log()),
        || (leaders() == 1).then_some(()),
    );
    // Over several Lease periods, never two leaders, and both serve the same table.
    for _ in 0..20 {
        assert!(leaders() <= 1, "two leaders");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Both serve the same table (the follower's first compile may still be running on a busy
    // machine: wait for it).
    eventually(
        20,
        || format!("{}\n{}", a.log(), b.log()),
        || (!a.status()["table"].is_null() && !b.status()["table"].is_null()).then_some(()),
    );
    assert_eq!(a.status()["table"], b.status()["table"]);
    let lease = kube.get(
        "coordination.k8s.io/v1",
        "Lease",
        "aigw-system",
        "aigw-controller",
    );
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (leader, follower) = if holder == "a" { (a, b) } else { (b, a) };
    assert_eq!(leader.status()["leader"], true, "the holder {holder} leads");
    // The leader dies without releasing: the other takes over once the Lease expires.
    drop(leader);
    let started = Instant::now();
    eventually(
        10,
        || follower.log(),
        || (follower.status()["leader"] == true).then_some(()),
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "took over before the Lease expired"
    );
    let lease = kube.get(
        "coordination.k8s.io/v1",
        "Lease",
        "aigw-system",
        "aigw-controller",
    );
    assert_ne!(
        lease["spec"]["holderIdentity"].as_str(),
        Some(holder.as_str())
    );
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}

#[test]
fn a_data_plane_follows_the_controller_with_no_failed_request() {
    let Some((dir, kube)) = setup("controller data plane") else {
        return;
    };
    let tokio = tokio::runtime::Runtime::new().expect("tokio");
    let upstream = tokio
        .block_on(MockUpstream::start("openai"))
        .expect("upstream");
    let gateway = free_port();
    kube.apply(&manifests(gateway, upstream.port(), &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start(&kube, dir.path(), "a");
    eventually(
        20,
        || controller.log(),
        || controller.status()["table"].as_str().map(|_| ()),
    );
    let cache = dir.path().join("table-cache.json");
    let plane_log = dir.path().join("plane.log");
    let mut plane = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .arg("serve")
        .args([
            "--table-url",
            &format!("http://127.0.0.1:{}/v1/table", controller.port),
        ])
        .arg("--table")
        .arg(&cache)
        .args(["--bind", "127.0.0.1", "--admin-port", "0"])
        .env("AIGW_SECRET_DEFAULT_OPENAI_KEY_APIKEY", SECRET)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&plane_log).expect("log"))
        .spawn()
        .expect("aigw serve starts");
    let chat = |model: &str| {
        let body =
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        http_with(
            gateway,
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &body,
        )
        .0
    };
    let plane_log_text = || std::fs::read_to_string(&plane_log).unwrap_or_default();
    eventually(20, plane_log_text, || (chat("m1") == 200).then_some(()));
    assert_eq!(
        upstream
            .last()
            .and_then(|r| r.header("authorization").map(str::to_owned)),
        Some(format!("Bearer {SECRET}"))
    );
    let cached = std::fs::read_to_string(&cache).unwrap_or_default();
    assert!(cached.contains("m1"), "the first table served is cached");

    // Load on m1 from four threads while the controller publishes a table with m2 as well.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0, 0);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let body = r#"{"model":"m1","messages":[{"role":"user","content":"hi"}]}"#;
                    let code = http_with(
                        gateway,
                        "POST",
                        "/v1/chat/completions",
                        &[("Content-Type", "application/json")],
                        body,
                    )
                    .0;
                    if code == 200 { ok += 1 } else { failed += 1 }
                }
                (ok, failed)
            })
        })
        .collect();
    let changed = Instant::now();
    kube.apply(&manifests(gateway, upstream.port(), &["m1", "m2"], "mock"))
        .expect("apply");
    eventually(20, plane_log_text, || (chat("m2") == 200).then_some(()));
    let followed_in = changed.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (ok, failed) = load
        .into_iter()
        .map(|t| t.join().expect("load thread"))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    assert_eq!(failed, 0, "{ok} ok, {failed} failed");
    assert!(ok > 20, "{ok} requests");
    eprintln!(
        "the data plane served the new table {followed_in:?} after the change; {ok} requests, 0 failed"
    );
    let cached = std::fs::read_to_string(&cache).unwrap_or_default();
    assert!(cached.contains("m2"), "the cache holds the installed table");

    // The controller goes away: the data plane keeps serving the last good table.
    let port = controller.port;
    drop(controller);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(chat("m2"), 200);
    assert_eq!(chat("m1"), 200);
    let _ = plane.kill();
    let _ = plane.wait();

    // A data plane restarted while the controller is down starts from its cache.
    let restarted = Instant::now();
    let mut plane = Command::new(env!("CARGO_BIN_EXE_aigw"))
        .arg("serve")
        .args(["--table-url", &format!("http://127.0.0.1:{port}/v1/table")])
        .arg("--table")
        .arg(&cache)
        .args(["--bind", "127.0.0.1", "--admin-port", "0"])
        .env("AIGW_SECRET_DEFAULT_OPENAI_KEY_APIKEY", SECRET)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&plane_log).expect("log"))
        .spawn()
        .expect("aigw serve starts");
    eventually(20, plane_log_text, || (chat("m2") == 200).then_some(()));
    let waited = restarted.elapsed();
    assert!(
        waited >= Duration::from_secs(4) && waited < Duration::from_secs(8),
        "started from the cache after {waited:?} (the grace is 5 s)"
    );
    assert!(plane_log_text().contains("starting from the cached table"));
    let _ = plane.kill();
    let _ = plane.wait();
}

#[test]
fn after_410_gone_the_controller_relists_and_sees_the_change() {
    let Some((dir, kube)) = setup("controller relist") else {
        return;
    };
    let gateway = free_port();
    kube.apply(&manifests(gateway, 9, &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start(&kube, dir.path(), "a");
    let first = eventually(
        20,
        || controller.log(),
        || controller.status()["table"].as_str().map(str::to_owned),
    );
    // The history is gone and every watch ends: resuming gets 410 Gone, then a relist.
    kube.hook("compact");
    kube.hook("close-watches");
    kube.apply(&manifests(gateway, 9, &["m1", "m3"], "mock"))
        .expect("apply");
    eventually(
        20,
        || controller.log(),
        || {
            let table = controller.status()["table"].as_str().map(str::to_owned)?;
            (table != first).then_some(())
        },
    );
    let (_, table) = http(controller.port, "GET", "/v1/table");
    assert!(table.contains("m3"));
}

#[test]
fn generated_gateway_api_resources_are_applied_owned_by_their_route() {
    let Some((dir, kube)) = setup("controller apply gateway api") else {
        return;
    };
    let gateway = free_port();
    kube.apply(&manifests(gateway, 9, &["m1"], "mock"))
        .expect("apply");
    let controller = Controller::start_with(&kube, dir.path(), "a", &["--apply-gateway-api"]);
    let route_uid = kube.get(AI, "AIGatewayRoute", "default", "chat")["metadata"]["uid"].clone();
    let http_route = eventually(
        20,
        || controller.log(),
        || {
            let r = kube.get(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                "default",
                "chat",
            );
            r["spec"].is_object().then_some(r)
        },
    );
    let owner = &http_route["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "AIGatewayRoute");
    assert_eq!(owner["uid"], route_uid);
    assert_eq!(owner["controller"], true);
    assert!(http_route.to_string().contains("m1"));
    for filter in [
        "ai-eg-host-rewrite-chat",
        "ai-eg-route-not-found-response-chat",
    ] {
        let f = kube.get(
            "gateway.envoyproxy.io/v1alpha1",
            "HTTPRouteFilter",
            "default",
            filter,
        );
        assert_eq!(
            f["metadata"]["ownerReferences"][0]["uid"], route_uid,
            "{filter}"
        );
    }
    // What aigw applied is not read back as input: the route stays accepted, alone.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        condition(&kube, AI, "AIGatewayRoute", "chat")["type"],
        "Accepted"
    );
    assert_eq!(controller.status()["errors"], 0);
    // Nothing is applied again while nothing changes.
    kube.hook("requests/clear");
    std::thread::sleep(Duration::from_millis(1500));
    let applied: Vec<Value> = kube
        .requests()
        .into_iter()
        .filter(|r| r["path"].as_str().is_some_and(|p| p.contains("httproute")))
        .collect();
    assert!(applied.is_empty(), "{applied:#?}");
    // A change of the route is applied to its HTTPRoute.
    kube.apply(&manifests(gateway, 9, &["m1", "m4"], "mock"))
        .expect("apply");
    eventually(
        20,
        || controller.log(),
        || {
            let r = kube.get(
                "gateway.networking.k8s.io/v1",
                "HTTPRoute",
                "default",
                "chat",
            );
            r.to_string().contains("m4").then_some(())
        },
    );
}
