//! `aigw-proxy`: the lean data plane. It serves a compiled routing table and contains no
//! compiler (`aigw serve` is the same command inside the full binary).

use clap::Parser;

/// mimalloc rather than glibc's malloc: a request allocates and frees small buffers on two
/// worker threads, and glibc's arena locks and consolidation measured a tenth of the data
/// plane's CPU (BENCHMARKS.md, "Governance").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `aigw-proxy --table FILE ...`: serve the table (as `aigw serve`).
#[derive(Parser, Debug)]
#[command(
    name = "aigw-proxy",
    version,
    about = "Serve a compiled aigw routing table (`aigw-proxy extproc --help`: as Envoy's external processor)"
)]
struct Serve {
    #[command(flatten)]
    serve: aigw_proxy::serve::ServeArgs,
}

/// `aigw-proxy extproc --table FILE ...`: serve it as Envoy's external processor.
#[derive(Parser, Debug)]
#[command(
    name = "aigw-proxy extproc",
    version,
    about = "Serve a compiled aigw routing table as Envoy's external processor (gRPC ext_proc)"
)]
struct Extproc {
    #[command(flatten)]
    extproc: aigw_proxy::serve::ExtprocArgs,
}

fn main() -> std::process::ExitCode {
    aigw_proxy::serve::init_logging();
    // `extproc` is a command of its own; anything else is `serve`'s flags, as they always were.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let result = if args.get(1).is_some_and(|a| a == "extproc") {
        args.remove(1);
        aigw_proxy::serve::extproc(Extproc::parse_from(args).extproc)
    } else {
        aigw_proxy::serve::serve(Serve::parse_from(args).serve)
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}
