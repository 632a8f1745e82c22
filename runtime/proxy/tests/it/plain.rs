//! Plain HTTPRoutes on the AI Gateway's listener: path (exact, segment prefix), method, header
//! and query parameter matches in Gateway API precedence, weights, streamed bodies, the
//! client's own headers passed through, rule timeouts, and AI requests no AIGatewayRoute takes
//! falling through to a plain route.

use crate::harness::{Harness, chat_body};
use aigw_testkit::Behavior;
use bytes::Bytes;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_routes_proxy_by_path_method_header_and_query() {
    let gw = Harness::start().await;
    let auth = [("authorization", "Bearer client-own")];
    let reply = gw
        .send("GET", &gw.url("/api/items?page=2"), Bytes::new(), &auth)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["upstream"], "a");
    let seen = gw.a.last().expect("a got it");
    assert_eq!(seen.uri, "/api/items?page=2");
    assert_eq!(seen.method, http::Method::GET);
    // A plain proxy: the client's credentials and host go through, no key is injected.
    assert_eq!(seen.header("authorization"), Some("Bearer client-own"));
    let host = seen.authority.clone().unwrap_or_default();
    assert_eq!(host, gw.runtime.addr(8080).expect("8080").to_string());
    assert_eq!(seen.header("x-ai-eg-model"), None);

    // An exact path with a method beats the prefix; without the method, the prefix takes it.
    let reply = gw
        .send("DELETE", &gw.url("/api/special"), Bytes::new(), &[])
        .await;
    assert_eq!(reply.json()["upstream"], "b", "{}", reply.text());
    let reply = gw
        .send("GET", &gw.url("/api/special"), Bytes::new(), &[])
        .await;
    assert_eq!(reply.json()["upstream"], "a");

    // Prefixes match whole segments.
    let reply = gw.send("GET", &gw.url("/apis"), Bytes::new(), &[]).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert!(
        reply.text().contains("unsupported path"),
        "{}",
        reply.text()
    );

    // Headers (names without case) and query parameters (a regular expression).
    let reply = gw
        .send(
            "GET",
            &gw.url("/tier/x"),
            Bytes::new(),
            &[("x-tier", "gold")],
        )
        .await;
    assert_eq!(reply.json()["upstream"], "b");
    let reply = gw
        .send("GET", &gw.url("/tier/x?v=42"), Bytes::new(), &[])
        .await;
    assert_eq!(reply.json()["upstream"], "c");
    let reply = gw
        .send("GET", &gw.url("/tier/x?v=new"), Bytes::new(), &[])
        .await;
    assert_eq!(reply.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_weights_split_traffic_and_bodies_stream_through() {
    let gw = Harness::start().await;
    for _ in 0..200 {
        let reply = gw.send("GET", &gw.url("/split"), Bytes::new(), &[]).await;
        assert_eq!(reply.status, 200);
    }
    let (a, b) = (gw.a.count(), gw.b.count());
    assert_eq!(a + b, 200);
    assert!((60..=140).contains(&a), "1:1 split gave a={a} b={b}");

    // A body over the AI body limit is not the plain proxy's business: it streams through whole.
    gw.a.clear();
    let big = Bytes::from(vec![b'x'; 3 << 20]);
    let reply = gw
        .send(
            "PUT",
            &gw.url("/api/upload"),
            big.clone(),
            &[("content-type", "application/octet-stream")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(gw.a.last().expect("a got it").body, big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_rule_timeouts_and_ai_requests_without_an_ai_route() {
    let gw = Harness::start().await;
    gw.c.set_behavior(Behavior {
        delay: Duration::from_secs(2),
        ..Behavior::default()
    });
    let reply = gw.send("GET", &gw.url("/slow"), Bytes::new(), &[]).await;
    assert_eq!(reply.status, 504, "{}", reply.text());

    // No AIGatewayRoute serves `nope`: with the header of the plain rule, the request goes there
    // as it came (no model header, no key, the body untouched); without it, the reference's 404.
    let body = chat_body("nope");
    let reply = gw
        .post("/v1/chat/completions", body.clone(), &[("x-plain", "yes")])
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = gw.b.last().expect("b got it");
    assert_eq!(seen.json(), body);
    assert_eq!(seen.header("x-ai-eg-model"), None);
    assert_eq!(seen.header("authorization"), None);
    let reply = gw.post("/v1/chat/completions", body, &[]).await;
    assert_eq!(reply.status, 404);
    assert!(
        reply.text().contains("No matching route"),
        "{}",
        reply.text()
    );

    // A model an AI route serves still goes the AI way, header or not.
    let reply = gw
        .post(
            "/v1/chat/completions",
            chat_body("gpt-a"),
            &[("x-plain", "yes")],
        )
        .await;
    assert_eq!(reply.header("x-mock-upstream"), Some("a"));
    assert_eq!(
        gw.a.last().expect("a").header("authorization"),
        Some("Bearer sk-a-secret")
    );
}

/// Gateway API filters (issue #17): request and response headers edited, the URL rewritten
/// (host and matched prefix), and a redirect answered by the gateway itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_edit_headers_rewrite_urls_and_redirect() {
    let gw = Harness::start().await;
    let reply = gw
        .send(
            "GET",
            &gw.url("/old/page?x=1"),
            Bytes::new(),
            &[("x-drop", "1"), ("x-env", "dev")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-served-by"), Some("aigw"));
    let seen = gw.a.last().expect("a got it");
    assert_eq!(seen.uri, "/new/page?x=1");
    assert_eq!(
        seen.header("host").or(seen.authority.as_deref()),
        Some("internal.example")
    );
    assert_eq!(seen.header("x-env"), Some("prod"), "set replaces");
    assert_eq!(seen.header("x-tag"), Some("aigw"));
    assert_eq!(seen.header("x-drop"), None);

    let before = gw.a.requests().len();
    let moved = gw
        .send("GET", &gw.url("/moved?q=2"), Bytes::new(), &[])
        .await;
    assert_eq!(moved.status, 301);
    assert_eq!(
        moved.header("location"),
        Some("https://example.com/moved?q=2")
    );
    assert_eq!(gw.a.requests().len(), before, "a redirect calls no backend");
}

/// RequestMirror (issue #17): a copy of the request as the backend gets it goes to the mirror,
/// its `Host` shadowed, its answer ignored; a mirror at 0 percent gets nothing, and one whose
/// Backend refuses connections changes nothing for the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrors_get_a_copy_of_the_request() {
    let gw = Harness::start().await;
    let body = Bytes::from_static(b"a body to copy");
    let reply = gw
        .send(
            "POST",
            &gw.url("/mirrored/upload?v=1"),
            body.clone(),
            &[("x-env", "dev")],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let primary = gw.a.last().expect("a got it");
    assert_eq!(primary.body, body);
    // The copy is sent beside the request, not before its answer: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while gw.b.count() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let copy = gw.b.last().expect("the mirror got a copy");
    assert_eq!(copy.method, http::Method::POST);
    assert_eq!(copy.uri, "/mirrored/upload?v=1");
    assert_eq!(copy.body, body, "the whole body, teed as it streamed");
    assert_eq!(copy.header("x-env"), Some("prod"), "as the backend gets it");
    let host = primary.header("host").expect("a host").to_owned();
    let (name, port) = host.rsplit_once(':').expect("host:port");
    assert_eq!(
        copy.header("host"),
        Some(format!("{name}-shadow:{port}").as_str())
    );
    assert_eq!(gw.c.count(), 0, "percent 0 mirrors nothing");
    // The failing mirror is the rule's third: again and again, the client sees only a.
    for _ in 0..20 {
        let again = gw
            .send("POST", &gw.url("/mirrored/again"), body.clone(), &[])
            .await;
        assert_eq!(again.status, 200, "{}", again.text());
    }
    assert_eq!(gw.a.requests().len(), 21);
}
