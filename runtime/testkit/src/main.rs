//! `aigw-mock-upstream`: the test upstream as a process, for `cargo xtask demo` and the
//! benchmarks. Prints `listening on ADDR` once it accepts connections.

use anyhow::Context;
use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut addr = "127.0.0.1:0".to_owned();
    let mut name = "mock".to_owned();
    let mut record = false;
    let mut interval = 0u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => addr = args.next().context("--listen needs ADDR")?,
            "--name" => name = args.next().context("--name needs a name")?,
            "--record" => record = true,
            "--interval-ms" => {
                interval = args
                    .next()
                    .context("--interval-ms needs a number")?
                    .parse()
                    .context("--interval-ms")?
            }
            other => anyhow::bail!(
                "unknown argument `{other}` (usage: aigw-mock-upstream [--listen ADDR] [--name NAME] [--record] [--interval-ms N])"
            ),
        }
    }
    let upstream =
        aigw_testkit::MockUpstream::bind(&name, addr.parse().context("--listen")?, record).await?;
    // Pause between streamed deltas, so that a stream is seen arriving.
    upstream.set_behavior(aigw_testkit::Behavior {
        interval: std::time::Duration::from_millis(interval),
        ..Default::default()
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", upstream.addr())?;
    stdout.flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
