//! `cargo xtask fuzz [--cases N]`: the property-based fuzz targets (issue #21) run long. The
//! same targets run in the README's test command with a few dozen cases each; here each gets
//! `N` (100,000 by default; the compiler's, which checks a whole manifest per case, a fifth
//! of that). A failure is shrunk and saved under the crate's `proptest-regressions/`: commit
//! it, and it runs first in every later test run.

use anyhow::{Result, bail};

/// `(package, test binary, filter)` of each target.
const TARGETS: [(&str, &str, &str); 4] = [
    ("aigw-providers", "fuzz", ""),
    ("aigw-proxy", "fuzz", ""),
    ("aigw-table", "fuzz", ""),
    ("aigw-compiler", "it", "fuzz::"),
];

pub fn run(args: &[String]) -> Result<()> {
    let [cases] = crate::process::numbers(args, ["--cases"], [100_000])?;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (package, test, filter) in TARGETS {
        let n = if package == "aigw-compiler" {
            (cases / 5).max(1)
        } else {
            cases
        };
        println!("fuzz: {package} ({n} cases per property)");
        let started = std::time::Instant::now();
        let status = crate::process::cargo()
            .args([
                "test",
                "--release",
                "-p",
                package,
                "--test",
                test,
                "--",
                filter,
            ])
            .env("AIGW_FUZZ_CASES", n.to_string())
            .current_dir(&root)
            .status()?;
        if !status.success() {
            bail!(
                "{package}: a fuzz target failed (its failing case is saved under proptest-regressions/)"
            );
        }
        println!(
            "fuzz: {package} passed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
