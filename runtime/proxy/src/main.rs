//! `aigw-proxy`: the lean data plane. It serves a compiled routing table and contains no
//! compiler (`aigw serve` is the same command inside the full binary).

use clap::Parser;

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
