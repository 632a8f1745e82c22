//! The wire form of an EnvoyExtensionPolicy's `wasm` list (since 1.4): the modules a request
//! runs through, in order.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extensions {
    /// The policy, `namespace/name`.
    pub name: String,
    pub wasm: Vec<WasmModule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WasmModule {
    pub name: String,
    /// The proxy-wasm root context ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_id: String,
    /// Where the data plane reads the module (`.wasm`, or `.wat` text).
    pub path: String,
    /// Hex SHA-256 the file must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plugin configuration handed to the module (JSON text; empty for none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    /// A failing module lets the request through unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fail_open: bool,
}
