//! Loading the routing table: parse, validate and build the lookup structure, on the table that
//! `cargo xtask bench compile` wrote for its 10,000-route input (`target/bench/out-10000`), and
//! one lookup on it. Without that file there is nothing to measure, and the bench says so.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn table_path() -> std::path::PathBuf {
    std::env::var_os("AIGW_BENCH_TABLE").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/bench/out-10000/table.json")
        },
        std::path::PathBuf::from,
    )
}

fn load(c: &mut Criterion) {
    let path = table_path();
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!(
            "SKIPPED: {} is absent; run `cargo xtask bench compile` first",
            path.display()
        );
        return;
    };
    c.bench_function("load table.json (10k routes)", |b| {
        b.iter(|| aigw_table::load(black_box(&bytes)))
    });
    let Ok(snapshot) = aigw_table::load(&bytes) else {
        eprintln!("SKIPPED: {} does not load", path.display());
        return;
    };
    let (listener, _, _) = match snapshot.listeners().next() {
        Some(first) => first,
        None => return,
    };
    // The last model of the table: the worst case of the ordered walk.
    let last = snapshot
        .table()
        .routes
        .last()
        .and_then(|r| r.rules[0].models.first())
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = last.parse() {
        headers.insert("x-ai-eg-model", value);
    }
    c.bench_function("select the last of 10k routes", |b| {
        b.iter(|| {
            snapshot
                .select(listener, black_box("localhost"), black_box(&headers))
                .map(|s| s.rule_index)
        })
    });
}

criterion_group!(benches, load);
criterion_main!(benches);
