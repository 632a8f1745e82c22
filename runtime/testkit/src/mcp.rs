//! A minimal MCP server over Streamable HTTP at `/mcp`, answered in JSON: `initialize` (with a
//! fixed `Mcp-Session-Id`), notifications (202), `tools/list` (one tool, `echo`) and
//! `tools/call` (`echo` gives back its `text`). For the MCP gateway's benchmark, where the
//! server must cost next to nothing so that what is measured is the gateway; the gateway's
//! behaviour is tested against the official SDK's servers, not this.

use crate::State;
use crate::respond::{Body, full};
use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use serde_json::{Value, json};

/// Answers a request to `/mcp`.
pub(crate) fn answer(state: &State, method: &Method, body: &Bytes) -> Response<Body> {
    match *method {
        Method::POST => {}
        Method::DELETE => return full(state, StatusCode::OK, String::new()),
        _ => return full(state, StatusCode::METHOD_NOT_ALLOWED, String::new()),
    }
    let Ok(message) = serde_json::from_slice::<Value>(body) else {
        return full(state, StatusCode::BAD_REQUEST, String::new());
    };
    let Some(id) = message.get("id").cloned() else {
        return full(state, StatusCode::ACCEPTED, String::new());
    };
    let result = match message.get("method").and_then(Value::as_str) {
        Some("initialize") => json!({
            "protocolVersion": message.pointer("/params/protocolVersion").cloned().unwrap_or(json!("2025-06-18")),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": state.name, "version": "1"},
        }),
        Some("tools/list") => {
            json!({"tools": [{"name": "echo", "description": "Echoes `text`.", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}}]})
        }
        Some("tools/call") => {
            let text = message
                .pointer("/params/arguments/text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            json!({"content": [{"type": "text", "text": text}], "isError": false})
        }
        Some("ping") => json!({}),
        _ => {
            let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}});
            return full(state, StatusCode::OK, error.to_string());
        }
    };
    let mut response = full(
        state,
        StatusCode::OK,
        json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string(),
    );
    response
        .headers_mut()
        .insert("mcp-session-id", HeaderValue::from_static("mock-session"));
    response
}
