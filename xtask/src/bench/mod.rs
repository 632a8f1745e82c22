//! `cargo xtask bench [compile|proxy]`: the benchmarks whose figures BENCHMARKS.md reports.
//! With no argument both run: the compiler on generated inputs, then the data plane beside a
//! plain Envoy proxy.

mod compile;
mod proxy;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("compile") => compile::run(&args[1..]),
        Some("proxy") => proxy::run(&args[1..]),
        None => {
            compile::run(&[])?;
            proxy::run(&[])
        }
        Some(other) => bail!("unknown benchmark `{other}` (compile or proxy)"),
    }
}
