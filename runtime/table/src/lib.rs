//! The routing-table contract: the only thing the data plane reads. `targets/table` writes a
//! [`Table`] as `table.json`; [`load`] reads one back, validates every cross reference and
//! regular expression, and compiles it into a [`Snapshot`]: an immutable structure whose route
//! lookup allocates nothing.
//!
//! This crate knows neither the compiler nor tokio/hyper: the compiler depends on it, never the
//! other way round, and a lean data-plane binary needs nothing else to serve.

pub mod cache;
pub mod caller_auth;
pub mod extensions;
mod lookup;
pub mod mcp;
mod plain;
pub mod schema;

pub use cache::Cache;
pub use caller_auth::*;
pub use extensions::{Extensions, WasmModule};
pub(crate) use lookup::invalid;
pub use lookup::{ListenerId, Selected, Snapshot, host_matches, strip_port};
pub use mcp::{McpApiKey, McpBackend, McpOAuth, McpRoute, ToolSelector, Tools};
pub use plain::{Path as PathTest, ProxySelected, Request as PlainRequest};
pub use schema::*;

/// The version this crate writes. Readers accept any table of the same major version.
pub const SCHEMA_VERSION: &str = "1.5";

/// The body of the 404 when no rule takes a request (the reference's text, which users search
/// for); the Gateway API and Envoy targets write it too.
pub const NOT_FOUND_BODY: &str = "No matching route found. It is likely because the model specified in your request is not configured in the Gateway.";

/// Why a table was refused.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("table.json is not valid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("table schema version {found} is not supported (this build reads {supported}.x)")]
    UnsupportedVersion {
        found: String,
        supported: &'static str,
    },
    #[error("table is inconsistent at {at}: {reason}")]
    Invalid { at: String, reason: String },
}

/// Parses, validates and compiles a table from its JSON text.
pub fn load(json: &[u8]) -> Result<Snapshot, TableError> {
    let table: Table = serde_json::from_slice(json)?;
    Snapshot::new(table)
}

/// Serializes a table as the canonical artifact: pretty JSON with a final newline.
pub fn to_json(table: &Table) -> Result<String, serde_json::Error> {
    let mut text = serde_json::to_string_pretty(table)?;
    text.push('\n');
    Ok(text)
}

/// Writes the table into `out` as [`to_json`] renders it.
pub fn write_json(table: &Table, mut out: impl std::io::Write) -> Result<(), serde_json::Error> {
    serde_json::to_writer_pretty(&mut out, table)?;
    out.write_all(b"\n").map_err(serde_json::Error::io)
}

fn major(version: &str) -> &str {
    version.split('.').next().unwrap_or(version)
}

pub(crate) fn check_version(found: &str) -> Result<(), TableError> {
    let supported = major(SCHEMA_VERSION);
    let parts: Vec<&str> = found.split('.').collect();
    let well_formed = parts.len() == 2
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if well_formed && parts[0] == supported {
        Ok(())
    } else {
        Err(TableError::UnsupportedVersion {
            found: found.to_owned(),
            supported,
        })
    }
}
