//! Hot reload: a new table under load fails no request; a stream in flight finishes on the
//! generation it started on; a table that cannot be served is refused and the old one stays.

use crate::harness::{Harness, compile, manifests};
use crate::streaming::stream;
use aigw_testkit::Behavior;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_fails_no_request_and_streams_finish_on_their_generation() {
    let gw = Arc::new(Harness::start().await);
    gw.a.set_behavior(Behavior {
        chunks: Some(6),
        interval: Duration::from_millis(100),
        ..Behavior::default()
    });
    let in_flight = tokio::spawn({
        let gw = gw.clone();
        async move { stream(&gw, "gpt-a", false).await }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (gw, stop, sent, failed) = (gw.clone(), stop.clone(), sent.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let reply = gw.chat("gpt-a").await;
                sent.fetch_add(1, Ordering::Relaxed);
                if reply.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    // The new table sends backend a's traffic to upstream b.
    let (snapshot, secrets) = compile(&manifests(
        gw.b.port(),
        gw.b.port(),
        gw.c.port(),
        gw.cohere.port(),
    ));
    assert_eq!(
        gw.runtime
            .reload(snapshot, &secrets)
            .expect("the new table loads"),
        2
    );
    gw.b.clear();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.expect("load task");
    }
    let frames = in_flight
        .await
        .expect("stream task")
        .expect("the stream started before the reload finished");
    let all: String = frames
        .iter()
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(
        all.contains("tok5 ") && all.contains("\"system_fingerprint\":\"a\""),
        "{all}"
    );
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(sent > 20, "the load ran: {sent} requests");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed across the reload"
    );
    assert!(
        gw.b.count() > 0,
        "after the reload, backend a's traffic reaches upstream b"
    );
    assert_eq!(gw.chat("gpt-a").await.header("x-mock-upstream"), Some("b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_that_cannot_be_served_is_refused_and_the_old_one_keeps_serving() {
    let gw = Harness::start().await;
    // The same table, but with no place to find its Secrets in.
    let (snapshot, _) = compile(&manifests(
        gw.a.port(),
        gw.b.port(),
        gw.c.port(),
        gw.cohere.port(),
    ));
    let error = gw
        .runtime
        .reload(snapshot, &aigw_proxy::secrets::Secrets::default())
        .expect_err("refused");
    assert!(
        error.to_string().contains("default/a-key") && !error.to_string().contains("sk-"),
        "{error}"
    );
    let reply = gw.chat("gpt-a").await;
    assert_eq!(
        (reply.status, reply.header("x-mock-upstream")),
        (200, Some("a"))
    );
    let metrics = gw
        .send("GET", &gw.admin_url("/metrics"), bytes::Bytes::new(), &[])
        .await;
    assert!(
        metrics
            .text()
            .contains("aigw_table_reloads_total{outcome=\"rejected\"} 1"),
        "{}",
        metrics.text()
    );
    assert!(
        metrics.text().contains("aigw_table_generation 1"),
        "{}",
        metrics.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_table_file_is_reloaded_when_it_changes() {
    let gw = Harness::start().await;
    let dir = std::env::temp_dir().join(format!("aigw-reload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("table.json");
    let secrets = compile(&manifests(
        gw.a.port(),
        gw.b.port(),
        gw.c.port(),
        gw.cohere.port(),
    ))
    .1;
    let source = Arc::new(aigw_proxy::reload::TableFile {
        path: path.clone(),
        secrets: secrets.clone(),
    });
    let write = |a: u16| {
        let (snapshot, _) = compile(&manifests(a, gw.b.port(), gw.c.port(), gw.cohere.port()));
        std::fs::write(&path, aigw_table::to_json(snapshot.table()).expect("json")).expect("write");
    };
    write(gw.a.port());
    let watcher = tokio::spawn(aigw_proxy::reload::watch(
        gw.runtime.handle(),
        source,
        Duration::from_millis(50),
    ));
    tokio::time::sleep(Duration::from_millis(120)).await;
    write(gw.b.port());
    let mut served_by_b = false;
    for _ in 0..50 {
        if gw.chat("gpt-a").await.header("x-mock-upstream") == Some("b") {
            served_by_b = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.abort();
    std::fs::remove_dir_all(&dir).expect("clean up");
    assert!(served_by_b, "the changed table file was picked up");
}
