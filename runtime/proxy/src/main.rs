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
    about = "Serve a compiled aigw routing table",
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: aigw_proxy::serve::ServeArgs,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Serve the table as Envoy's external processor (gRPC ext_proc).
    Extproc(aigw_proxy::serve::ExtprocArgs),
}

fn main() -> std::process::ExitCode {
    aigw_proxy::serve::init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Extproc(args)) => aigw_proxy::serve::extproc(args),
        None => aigw_proxy::serve::serve(cli.serve),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::from(1)
        }
    }
}
