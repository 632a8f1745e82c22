//! Property-based fuzzing of the compiler (issue #21), on the stable toolchain: proptest
//! mutates real manifests (our `testdata/compile` cases and, where it is beside us, the
//! reference corpus's examples and admission files, read in place) with YAML's sharp edges
//! (anchors and aliases, merge keys, tabs, flow collections, document markers, a BOM, bytes
//! that are not UTF-8) and checks them. The properties: nothing panics; the diagnostics render
//! as text and JSON; and an input that checks without errors compiles into artifacts whose
//! table the data plane loads, and routes with.
//!
//! `AIGW_FUZZ_CASES` sets the cases (32 by default, which the test command and CI run);
//! `cargo xtask fuzz` runs many more. Failing cases are shrunk and saved under
//! `proptest-regressions/` (committed), and run first every time.

use aigw_compiler::compile::Target;
use aigw_compiler::{CheckOptions, check};
use aigw_diag::SourceMap;
use proptest::prelude::*;
use std::sync::LazyLock;

static SEEDS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    const YAML: &[&str] = &["yaml", "yml"];
    let mut paths = aigw_testkit::files_below(&crate::root().join("testdata/compile"), YAML);
    if let Some(corpus) = aigw_compiler::conformance::corpus_dir() {
        paths.extend(aigw_testkit::files_below(&corpus.join("examples"), YAML));
        paths.extend(aigw_testkit::files_below(&corpus.join("admission"), YAML));
    }
    paths.sort();
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
});

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: aigw_testkit::fuzz_cases(32),
        max_shrink_iters: 500,
        ..ProptestConfig::default()
    }
}

/// What is done to a seed: fragments put in at places, lines swapped, maybe a cut.
#[derive(Clone, Debug)]
struct Mutation {
    seed: usize,
    insert: Vec<(usize, &'static str)>,
    swap: Vec<(usize, usize)>,
    cut: Option<usize>,
}

const FRAGMENTS: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "\t",
    "---\n",
    "...\n",
    "{",
    "}",
    "[",
    "]",
    ": ",
    "- ",
    "\"",
    "'",
    "\u{feff}",
    "\n  x: 1\n",
    "!!binary ",
    "? ",
    "|\n",
    ">-\n",
    "~",
    "0x10",
    "1e400",
    ".nan",
    "\u{e9}",
    "\\",
    "#",
    "null",
    "name: \n",
    "kind: Secret\n",
    "apiVersion: v9\n",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), prop::sample::select(FRAGMENTS)), 0..5),
        prop::collection::vec((any::<usize>(), any::<usize>()), 0..2),
        prop::option::weighted(0.2, any::<usize>()),
    )
        .prop_map(|(seed, insert, swap, cut)| Mutation {
            seed,
            insert,
            swap,
            cut,
        })
}

impl Mutation {
    fn apply(&self) -> Vec<u8> {
        let seed = &SEEDS[self.seed % SEEDS.len()];
        let text = String::from_utf8_lossy(seed);
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        for (a, b) in &self.swap {
            if !lines.is_empty() {
                let n = lines.len();
                lines.swap(a % n, b % n);
            }
        }
        let mut bytes = lines.join("\n").into_bytes();
        for (at, fragment) in &self.insert {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, fragment.bytes());
        }
        if let Some(cut) = self.cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        bytes
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_manifests_check_render_and_compile(mutation in mutation(), invalid_utf8 in any::<bool>()) {
        let mut bytes = mutation.apply();
        if invalid_utf8 && !bytes.is_empty() {
            let at = mutation.seed % bytes.len();
            bytes[at] = 0xff;
        }
        let mut sources = SourceMap::new();
        sources.add_bytes("fuzz.yaml", bytes);
        let checked = check(sources, CheckOptions::default());
        let _ = aigw_diag::render_text(&checked.diagnostics, &checked.sources, aigw_diag::RenderOptions { color: false });
        let json = aigw_diag::render_json(&checked.diagnostics, &checked.sources);
        for line in json.lines() {
            prop_assert!(serde_json::from_str::<serde_json::Value>(line).is_ok(), "{line}");
        }
        if checked.has_errors() {
            return Ok(());
        }
        let artifacts = aigw_compiler::compile::artifacts(&checked, &[Target::GatewayApi, Target::Envoy, Target::Table]);
        prop_assert!(artifacts.is_ok(), "an input without errors compiles: {:?}", artifacts.err());
        // What checked clean, the data plane loads.
        let table = aigw_compiler::run::table(&checked);
        prop_assert!(table.is_ok(), "its table loads: {:?}", table.err());
    }
}

#[test]
fn the_seeds_are_there() {
    assert!(SEEDS.len() >= 20, "{} seeds", SEEDS.len());
}
