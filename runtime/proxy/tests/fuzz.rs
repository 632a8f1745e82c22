//! Property-based fuzzing of the data plane's own parsers (issue #21), on the stable
//! toolchain: the request body read once for `model` and `stream` (`body::peek`), the multipart
//! model, the per-backend body rewrite, and the CEL cost expressions run over any token counts
//! (a hostile upstream may report any number). Seeds are the chat requests of
//! `testdata/translate/openai`, mutated. The properties: nothing panics; a body rewritten with a
//! model override says that model; a cost is a number whatever the counts.
//!
//! Found: token counts near `u64::MAX` overflowed the total, the Bedrock, Gemini and Anthropic
//! usage sums and the quota estimate (a panic in debug builds, a wrapped count in release);
//! they saturate now.
//!
//! `AIGW_FUZZ_CASES` sets the cases (64 by default); `cargo xtask fuzz` runs many more.

#![expect(clippy::expect_used, reason = "a test: a missing fixture fails it")]

use aigw_providers::Usage;
use aigw_proxy::body::{Rewrite, multipart_model, peek, rewrite};
use aigw_proxy::costs::{Cel, Vars, run_cel};
use proptest::prelude::*;
use std::path::Path;
use std::sync::LazyLock;

static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/translate/openai");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("testdata")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect()
});

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: aigw_testkit::fuzz_cases(64),
        max_shrink_iters: 1_000,
        // This crate has both a lib.rs and a main.rs: name the file outright.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "tests/proptest-regressions/fuzz.txt",
            ),
        )),
        ..ProptestConfig::default()
    }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..6),
        Just(br#""model":"#.to_vec()),
        Just(br#""stream":true,"#.to_vec()),
        Just(br#""max_tokens":-1,"#.to_vec()),
        Just(br#""stream_options":{"include_usage":false},"#.to_vec()),
        Just(b"[[[[{{".to_vec()),
        Just("\"\u{e9}\\ud800\"".as_bytes().to_vec()),
    ];
    (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), fragment), 0..4),
        prop::option::weighted(0.2, any::<usize>()),
    )
        .prop_map(|(seed, inserts, cut)| {
            let mut bytes = SEEDS[seed % SEEDS.len()].clone();
            for (at, fragment) in inserts {
                let at = at % (bytes.len() + 1);
                bytes.splice(at..at, fragment);
            }
            if let Some(cut) = cut {
                bytes.truncate(cut % (bytes.len() + 1));
            }
            bytes
        })
}

/// CEL expressions of the shape cost expressions have, and some that are not.
fn expression() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("input_tokens".to_owned()),
        Just("output_tokens".to_owned()),
        Just("total_tokens".to_owned()),
        Just("cached_input_tokens".to_owned()),
        Just("reasoning_tokens".to_owned()),
        Just("model".to_owned()),
        Just("backend".to_owned()),
        Just("18446744073709551615u".to_owned()),
        Just("0u".to_owned()),
        Just("-1".to_owned()),
        Just("'gpt-4o'".to_owned()),
        (0u64..1000).prop_map(|n| format!("{n}u")),
    ];
    let op = prop_oneof![
        Just(" + "),
        Just(" * "),
        Just(" - "),
        Just(" / "),
        Just(" % "),
        Just(" == "),
        Just(" > ")
    ];
    (
        atom.clone(),
        prop::collection::vec((op, atom), 0..4),
        any::<bool>(),
    )
        .prop_map(|(first, rest, ternary)| {
            let mut text = first;
            for (op, atom) in rest {
                text.push_str(op);
                text.push_str(&atom);
            }
            if ternary {
                text = format!("model == 'x' ? {text} : uint(1)");
            }
            text
        })
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(u64::MAX),
        Just(u64::MAX / 2 + 1),
        any::<u64>()
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bodies_are_read_and_rewritten_without_a_panic(bytes in body(), model in "[a-z0-9.:-]{1,16}", usage in any::<bool>()) {
        let Ok(peeked) = peek(&bytes) else { return Ok(()) };
        let _ = (peeked.streaming(), peeked.max_output(), peeked.asked_for_usage());
        let _ = multipart_model("multipart/form-data; boundary=x", &bytes);
        let changes = Rewrite { model: Some(&model), mutation: None, include_usage: usage };
        if let Ok(rewritten) = rewrite(&bytes, &changes) {
            let value: serde_json::Value = serde_json::from_slice(&rewritten).expect("the rewrite is JSON");
            prop_assert_eq!(value["model"].as_str(), Some(model.as_str()));
        }
    }

    #[test]
    fn costs_are_numbers_whatever_the_counts(
        expression in expression(),
        (input, output, cached, reasoning) in (count(), count(), count(), count()),
        total in prop::option::of(count()),
    ) {
        let Ok(cel) = Cel::compile(&expression) else { return Ok(()) };
        let usage = Usage { input, output, cached_input: cached, reasoning, total, ..Usage::default() };
        let vars = Vars { model: "gpt-4o", backend: "default/b", route: "default/r" };
        let _ = run_cel(&cel, "fuzz", &usage, &vars);
    }
}
