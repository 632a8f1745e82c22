//! The data plane over real loopback HTTP: the runtime serves the compiled
//! `testdata/runtime/routing.yaml` in front of recording test upstreams, and each test sends
//! real requests and checks the answer and what the upstream received.

#![expect(
    clippy::expect_used,
    reason = "the helpers fail the test that called them, with the reason"
)]

mod ambient;
mod cache;
mod callers;
mod cloud;
mod extproc;
mod families;
mod faults;
mod federation;
mod governance;
mod harness;
mod hostile;
mod jwt;
mod mcp;
mod plain;
mod providers;
mod quota;
mod reload;
mod routing;
mod sdk;
mod streaming;
mod tls;
mod traces;
mod wasm;
mod workers;
