//! `cargo xtask bench [compile|proxy|extproc|controller|mcp]`: the benchmarks whose figures BENCHMARKS.md
//! reports. With no argument all run: the compiler on generated inputs, the data plane beside a
//! plain Envoy proxy, and Envoy with aigw as its external processor.

mod compile;
mod controller;
mod extproc;
mod mcp;
pub(crate) mod proxy;
mod tail;

use anyhow::{Result, bail};

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("compile") => compile::run(&args[1..]),
        Some("proxy") => proxy::run(&args[1..]),
        Some("extproc") => extproc::run(&args[1..]),
        Some("controller") => controller::run(&args[1..]),
        Some("mcp") => mcp::run(&args[1..]),
        None => {
            compile::run(&[])?;
            proxy::run(&[])?;
            extproc::run(&[])?;
            controller::run(&[])?;
            mcp::run(&[])
        }
        Some(other) => {
            bail!("unknown benchmark `{other}` (compile, proxy, extproc, controller or mcp)")
        }
    }
}
