//! Property-based fuzzing of the table loader (issue #21), on the stable toolchain: proptest
//! takes the committed tables of `testdata/compiled` and changes their JSON where a bad or
//! hostile table would (indices and numbers out of range, strings that are not regexes or
//! header names, fields removed or of another type). The properties: loading never panics;
//! and a table that loads is safe to route with: every lookup (AI, plain and MCP routes,
//! models, tool selectors) answers without a panic, whatever the request.
//!
//! `AIGW_FUZZ_CASES` sets the cases (64 by default); `cargo xtask fuzz` runs many more.
//! Failing cases are shrunk and saved under `tests/proptest-regressions/` (committed).

#![expect(clippy::expect_used, reason = "a test: a missing fixture fails it")]

use proptest::prelude::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

fn tables(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("testdata").flatten() {
        let path = entry.path();
        if path.is_dir() {
            tables(&path, out);
        } else if path.file_name().is_some_and(|n| n == "table.json") {
            out.push(path);
        }
    }
}

static SEEDS: LazyLock<Vec<Value>> = LazyLock::new(|| {
    let mut paths = Vec::new();
    tables(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/compiled"),
        &mut paths,
    );
    paths.sort();
    paths
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).expect("table")).expect("json"))
        .collect()
});

fn config() -> ProptestConfig {
    let cases = std::env::var("AIGW_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        max_shrink_iters: 1_000,
        ..ProptestConfig::default()
    }
}

/// What replaces a value: a number (an index, a port, a weight), a string, or nothing.
#[derive(Clone, Debug)]
enum Edit {
    Number(u64),
    Text(String),
    Remove,
    Null,
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(2),
            Just(7),
            Just(65_535),
            Just(65_536),
            Just(u64::MAX),
            any::<u64>()
        ]
        .prop_map(Edit::Number),
        prop_oneof![
            Just("(".to_owned()),
            Just("a{99999}".to_owned()),
            Just("".to_owned()),
            Just("bad header".to_owned()),
            Just("\u{e9}\u{0}".to_owned()),
            Just("9.9".to_owned()),
            "[a-z*.(/]{0,12}",
        ]
        .prop_map(Edit::Text),
        Just(Edit::Remove),
        Just(Edit::Null),
    ]
}

/// Applies `edit` to the `pick`-th leaf of `value` (depth first), counting down `pick`.
fn apply(value: &mut Value, pick: &mut usize, edit: &Edit) -> bool {
    match value {
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                if *pick == 0 && matches!(edit, Edit::Remove) {
                    map.remove(&key);
                    return true;
                }
                if let Some(child) = map.get_mut(&key)
                    && apply(child, pick, edit)
                {
                    return true;
                }
            }
            false
        }
        Value::Array(items) => items.iter_mut().any(|item| apply(item, pick, edit)),
        leaf => {
            if *pick > 0 {
                *pick -= 1;
                return false;
            }
            *leaf = match edit {
                Edit::Number(n) => Value::from(*n),
                Edit::Text(t) => Value::from(t.clone()),
                Edit::Remove | Edit::Null => Value::Null,
            };
            true
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn a_table_that_loads_routes_without_a_panic(
        seed in any::<usize>(),
        edits in prop::collection::vec((any::<usize>(), edit()), 1..6),
        host in prop_oneof![Just("api.example.com".to_owned()), Just("[::1]:8080".to_owned()), "[a-z.:\\[\\]0-9]{0,20}"],
        model in prop_oneof![Just("gpt-4o-mini".to_owned()), "[a-z0-9-]{0,12}"],
        path in prop_oneof![Just("/mcp".to_owned()), Just("/v1/chat/completions".to_owned()), "/[a-z/]{0,12}"],
        tool in "[a-z_]{0,10}",
    ) {
        let mut table = SEEDS[seed % SEEDS.len()].clone();
        for (pick, edit) in &edits {
            let mut pick = *pick % 400;
            apply(&mut table, &mut pick, edit);
        }
        let Ok(text) = serde_json::to_vec(&table) else { return Ok(()) };
        let Ok(snapshot) = aigw_table::load(&text) else { return Ok(()) };
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = http::HeaderValue::from_str(&model) {
            headers.insert("x-ai-eg-model", value);
        }
        let method = http::Method::POST;
        let ids: Vec<_> = snapshot.listeners().map(|(id, _, _)| id).collect();
        for id in ids {
            let _ = snapshot.select(id, &host, &headers);
            let _ = snapshot.models(id, &host);
            let plain = aigw_table::PlainRequest { host: &host, method: &method, path: &path, query: Some("a=b"), headers: &headers };
            let _ = snapshot.select_plain(id, &plain);
            if let Some(route) = snapshot.select_mcp(id, &host, &path, &headers) {
                let backends = snapshot.table().mcp_routes[route].backends.len();
                for b in 0..backends {
                    let _ = snapshot.mcp_tools(route, b).map(|t| t.allows(&tool));
                }
            }
        }
        for route in &snapshot.table().routes {
            for rule in &route.rules {
                let _ = snapshot.table().sole_endpoint(rule);
            }
        }
    }
}

#[test]
fn the_seeds_are_there() {
    assert!(SEEDS.len() >= 8, "{} tables", SEEDS.len());
}
