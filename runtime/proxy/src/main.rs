//! `aigw-proxy`: the lean data plane. It serves a compiled routing table and contains no
//! compiler (`aigw serve` is the same command inside the full binary).

use clap::Parser;

/// mimalloc rather than glibc's malloc: a request allocates and frees small buffers on two
/// worker threads, and glibc's arena locks and consolidation measured a tenth of the data
/// plane's CPU (BENCHMARKS.md, "Governance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "aigw-proxy",
    version,
    about = "Serve a compiled aigw routing table"
)]
struct Cli {
    #[command(flatten)]
    serve: aigw_proxy::serve::ServeArgs,
}

fn main() -> std::process::ExitCode {
    aigw_proxy::serve::init_logging();
    match aigw_proxy::serve::serve(Cli::parse().serve) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}
