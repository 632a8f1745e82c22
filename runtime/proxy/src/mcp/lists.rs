//! The lists of an MCP session (`tools/list`, `prompts/list`, `resources/list`,
//! `resources/templates/list`): fanned out to every server that offers the feature, merged in
//! route order, tools and prompts prefixed with their server's name (tools only when the
//! server's selector lets them through), resources noted with the server that listed them.
//!
//! A merged cursor is the servers' cursors by server name, as base64url JSON: the next page
//! asks only the servers that had more, each with its own cursor.

use super::session::Session;
use super::upstream::Failure;
use super::{Ctx, INVALID_PARAMS, Operation, SEPARATOR, rpc_error, rpc_result, static_method};
use crate::body::Body;
use base64::Engine;
use futures_util::future::join_all;
use http::{Response, StatusCode};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// A list merged from every server that offers the feature.
pub(super) async fn list(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    method: &str,
    id: Value,
    message: &Value,
) -> Response<Body> {
    let started = Instant::now();
    let (field, feature) = match method {
        "tools/list" => ("tools", "tools"),
        "prompts/list" => ("prompts", "prompts"),
        "resources/list" => ("resources", "resources"),
        _ => ("resourceTemplates", "resources"),
    };
    let route = ctx.route();
    let cursors: Vec<(usize, Option<String>)> = match message.pointer("/params/cursor") {
        None | Some(Value::Null) => (0..route.backends.len()).map(|b| (b, None)).collect(),
        Some(cursor) => match decode_cursor(cursor) {
            Some(map) => route
                .backends
                .iter()
                .enumerate()
                .filter_map(|(b, backend)| Some((b, Some(map.get(&*backend.name)?.clone()))))
                .collect(),
            None => return rpc_error(StatusCode::OK, id, INVALID_PARAMS, "Invalid cursor"),
        },
    };
    let pages = join_all(cursors.into_iter().map(|(b, cursor)| async move {
        let params = cursor.map_or_else(|| json!({}), |c| json!({"cursor": c}));
        (b, page(ctx, session, b, method, feature, params).await)
    }))
    .await;
    let mut items = Vec::new();
    let mut next = BTreeMap::new();
    for (b, page) in pages {
        let backend = &route.backends[b];
        let result = match page {
            Ok(Some(result)) => result,
            Ok(None) => continue,
            Err(failure) => {
                tracing::warn!(route = %route.name, backend = %backend.name, error = %failure, method, "MCP server left out of the list");
                continue;
            }
        };
        if let Some(cursor) = result.get("nextCursor").and_then(Value::as_str) {
            next.insert(backend.name.to_string(), cursor.to_owned());
        }
        let Some(Value::Array(listed)) = result.get(field) else {
            continue;
        };
        for mut item in listed.iter().cloned() {
            if !admit_item(ctx, session, b, field, &mut item) {
                continue;
            }
            items.push(item);
        }
    }
    ctx.report(
        &Operation {
            method: static_method(method),
            backend: None,
            tool: None,
            started,
        },
        None,
    );
    let mut result = Map::new();
    result.insert(field.to_owned(), Value::Array(items));
    if !next.is_empty()
        && let Ok(text) = serde_json::to_vec(&next)
    {
        let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text);
        result.insert("nextCursor".to_owned(), json!(cursor));
    }
    rpc_result(id, Value::Object(result))
}

/// Prefixes a listed tool or prompt (a tool only when the selector lets it through) and
/// notes which server a resource came from; false drops it.
fn admit_item(ctx: &Ctx<'_>, session: &Session, b: usize, field: &str, item: &mut Value) -> bool {
    let backend = &ctx.route().backends[b];
    match field {
        "tools" | "prompts" => {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                return false;
            };
            if field == "tools" {
                let tools = ctx.generation.snapshot.mcp_tools(ctx.index, b);
                if tools.is_some_and(|t| !t.allows(name)) {
                    return false;
                }
            }
            item["name"] = json!(format!("{}{SEPARATOR}{name}", backend.name));
            true
        }
        "resources" => {
            if let Some(uri) = item.get("uri").and_then(Value::as_str) {
                session
                    .resources
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(uri.to_owned(), backend.name.clone());
            }
            true
        }
        _ => true,
    }
}

fn decode_cursor(cursor: &Value) -> Option<BTreeMap<String, String>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor.as_str()?)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// One server's page of a list: `None` when it does not offer the feature.
async fn page(
    ctx: &Ctx<'_>,
    session: &Arc<Session>,
    b: usize,
    method: &str,
    feature: &str,
    params: Value,
) -> Result<Option<Value>, Failure> {
    let backend = &ctx.route().backends[b];
    let extra = ctx.extra(backend);
    let mut ready = session
        .ready(&backend.name, ctx.call(backend, None, &extra), None)
        .await?;
    if ready.capabilities.get(feature).is_none() {
        return Ok(None);
    }
    for retry in [false, true] {
        let message =
            json!({"jsonrpc": "2.0", "id": session.next_id(), "method": method, "params": params});
        match ctx
            .call(backend, Some(&ready), &extra)
            .request(&message)
            .await
        {
            Ok((_, response)) => return Ok(response.get("result").cloned()),
            Err(Failure::SessionGone) if !retry => {
                ready = session
                    .ready(&backend.name, ctx.call(backend, None, &extra), Some(&ready))
                    .await?;
            }
            Err(failure) => {
                session.forget(&backend.name, true).await;
                return Err(failure);
            }
        }
    }
    Err(Failure::SessionGone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_carry_each_servers_own() {
        let mut next = BTreeMap::new();
        next.insert("alpha".to_owned(), "page-2".to_owned());
        next.insert("gamma".to_owned(), "4".to_owned());
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&next).expect("json"));
        assert_eq!(decode_cursor(&json!(text)), Some(next));
        assert_eq!(decode_cursor(&json!("not-a-cursor")), None);
        assert_eq!(decode_cursor(&json!(7)), None);
    }
}
