//! MCPRoutes in the table (since 1.5): one MCP endpoint per route that aggregates the route's
//! MCP servers, with each server's tool selector and upstream credential, and the route's OAuth
//! (a JWT provider of the SecurityPolicy kind, plus the protected-resource metadata served to
//! clients). [`McpIndex`] finds the route of a request: listener, host, path, headers.
//!
//! Tool selectors are compiled here (RE2-style regexes, matched whole), so a table whose
//! selector does not compile is refused at load like any other bad regex.

use crate::lookup::{Matcher, host_matches, per_listener, strip_port};
use crate::{HeaderMatch, ListenerId, Parent, SecretRef, Table, TableError, invalid};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// An MCPRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpRoute {
    /// `namespace/name`.
    pub name: String,
    pub parents: Vec<Parent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// All must match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// The MCP endpoint (`/mcp` by default), matched exactly.
    pub path: String,
    /// In `backendRefs` order; names are unique within the route.
    pub backends: Vec<McpBackend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<McpOAuth>,
}

/// One MCP server of a route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpBackend {
    /// The name in `backendRefs`: the prefix of its tools and prompts (`name__tool`).
    pub name: String,
    /// The upstream (an Envoy Gateway Backend or a Service), its endpoints and TLS.
    pub upstream: crate::ProxyBackend,
    /// The server's MCP endpoint path.
    pub path: String,
    /// Client headers copied to this server: `(client header, backend header)`, lower case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward_headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<McpApiKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolSelector>,
}

/// The server's API key, from a Secret: `Authorization: Bearer <key>` unless a header (sent
/// as the bare key) or a query parameter is named.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct McpApiKey {
    pub secret: SecretRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
}

/// Which tools of a server are exposed: a tool passes when it is included (no include list
/// includes everything) and not excluded.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_regex: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_regex: Vec<String>,
}

/// The route's OAuth: tokens verified as a SecurityPolicy `jwt` provider verifies them, and
/// the RFC 9728 metadata that tells clients where to get one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct McpOAuth {
    pub jwt: crate::Jwt,
    /// The metadata document served at `/.well-known/oauth-protected-resource<path>`, with
    /// `authorization_servers` already filled in.
    pub metadata: serde_json::Value,
}

/// A compiled tool selector.
#[derive(Debug, Default)]
pub struct Tools {
    include: Option<Vec<String>>,
    include_regex: Option<Vec<Regex>>,
    exclude: Vec<String>,
    exclude_regex: Vec<Regex>,
}

impl Tools {
    /// Whether `tool` (the server's own name, unprefixed) is exposed.
    pub fn allows(&self, tool: &str) -> bool {
        let included = match (&self.include, &self.include_regex) {
            (Some(names), _) => names.iter().any(|n| n == tool),
            (None, Some(patterns)) => patterns.iter().any(|p| p.is_match(tool)),
            (None, None) => true,
        };
        included
            && !self.exclude.iter().any(|n| n == tool)
            && !self.exclude_regex.iter().any(|p| p.is_match(tool))
    }
}

/// The routes' lookup: per listener, the candidate routes, and each route's compiled header
/// matches and tool selectors.
#[derive(Debug, Default)]
pub(crate) struct McpIndex {
    candidates: Vec<Vec<Vec<u32>>>,
    matchers: Vec<Vec<Matcher>>,
    /// `[route][backend]`.
    tools: Vec<Vec<Tools>>,
}

impl McpIndex {
    pub(crate) fn new(table: &Table) -> Result<Self, TableError> {
        let mut matchers = Vec::with_capacity(table.mcp_routes.len());
        let mut tools = Vec::with_capacity(table.mcp_routes.len());
        for (r, route) in table.mcp_routes.iter().enumerate() {
            for (p, parent) in route.parents.iter().enumerate() {
                if parent.gateway >= table.gateways.len() {
                    return Err(invalid(
                        format!("mcp_routes[{r}].parents[{p}].gateway"),
                        format!("index {} is past the end of gateways", parent.gateway),
                    ));
                }
            }
            if !route.path.starts_with('/') {
                return Err(invalid(
                    format!("mcp_routes[{r}].path"),
                    format!("`{}` does not start with `/`", route.path),
                ));
            }
            let mut compiled = Vec::with_capacity(route.headers.len());
            for (h, header) in route.headers.iter().enumerate() {
                compiled.push(Matcher::compile(header, || {
                    format!("mcp_routes[{r}].headers[{h}]")
                })?);
            }
            matchers.push(compiled);
            let mut selectors = Vec::with_capacity(route.backends.len());
            for (b, backend) in route.backends.iter().enumerate() {
                let at = |what: &str, i: usize| {
                    format!("mcp_routes[{r}].backends[{b}].tools.{what}[{i}]")
                };
                selectors.push(match &backend.tools {
                    None => Tools::default(),
                    Some(s) => Tools {
                        include: s.include.clone(),
                        include_regex: s
                            .include_regex
                            .as_ref()
                            .map(|p| compile_all(p, |i| at("include_regex", i)))
                            .transpose()?,
                        exclude: s.exclude.clone(),
                        exclude_regex: compile_all(&s.exclude_regex, |i| at("exclude_regex", i))?,
                    },
                });
            }
            tools.push(selectors);
        }
        let candidates = per_listener(table, table.mcp_routes.len(), |r| {
            &table.mcp_routes[r].parents
        });
        Ok(McpIndex {
            candidates,
            matchers,
            tools,
        })
    }

    /// The first route (by name) on `listener` whose path is `path` and whose hostnames and
    /// headers take the request.
    pub(crate) fn select(
        &self,
        table: &Table,
        listener: ListenerId,
        host: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<usize> {
        let candidates = self
            .candidates
            .get(listener.gateway)?
            .get(listener.listener)?;
        let host = strip_port(host);
        candidates.iter().map(|&r| r as usize).find(|&r| {
            let route = &table.mcp_routes[r];
            route.path == path
                && (route.hostnames.is_empty()
                    || route.hostnames.iter().any(|p| host_matches(p, host)))
                && self.matchers[r].iter().all(|m| m.matches(headers))
        })
    }

    /// The compiled tool selector of a route's backend.
    pub(crate) fn tools(&self, route: usize, backend: usize) -> Option<&Tools> {
        self.tools.get(route)?.get(backend)
    }
}

fn compile_all(
    patterns: &[String],
    at: impl Fn(usize) -> String,
) -> Result<Vec<Regex>, TableError> {
    patterns
        .iter()
        .enumerate()
        .map(|(i, p)| crate::plain::full_match(p, || at(i)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(selector: ToolSelector) -> Tools {
        let table = Table {
            schema_version: crate::SCHEMA_VERSION.to_owned(),
            mcp_routes: vec![McpRoute {
                name: "ns/r".to_owned(),
                path: "/mcp".to_owned(),
                backends: vec![McpBackend {
                    name: "b".to_owned(),
                    tools: Some(selector),
                    ..McpBackend::default()
                }],
                ..McpRoute::default()
            }],
            ..Table::default()
        };
        let mut index = McpIndex::new(&table).expect("compiles");
        index.tools.remove(0).remove(0)
    }

    #[test]
    fn selectors_include_then_exclude_whole_names() {
        let t = tools(ToolSelector {
            include_regex: Some(vec![".*issues?.*".to_owned()]),
            exclude: vec!["delete_issue".to_owned()],
            ..ToolSelector::default()
        });
        assert!(t.allows("list_issues"));
        assert!(!t.allows("delete_issue"));
        assert!(!t.allows("get_pull_request"));
        let t = tools(ToolSelector {
            include: Some(vec!["echo".to_owned()]),
            ..ToolSelector::default()
        });
        assert!(t.allows("echo"));
        assert!(!t.allows("echo2"), "include names are whole names");
        let t = tools(ToolSelector {
            exclude_regex: vec!["add".to_owned()],
            ..ToolSelector::default()
        });
        assert!(t.allows("adder"), "a regex matches the whole name");
        assert!(!t.allows("add"));
    }

    #[test]
    fn a_selector_that_does_not_compile_refuses_the_table() {
        let table = Table {
            schema_version: crate::SCHEMA_VERSION.to_owned(),
            mcp_routes: vec![McpRoute {
                name: "ns/r".to_owned(),
                path: "/mcp".to_owned(),
                backends: vec![McpBackend {
                    name: "b".to_owned(),
                    tools: Some(ToolSelector {
                        exclude_regex: vec!["(".to_owned()],
                        ..ToolSelector::default()
                    }),
                    ..McpBackend::default()
                }],
                ..McpRoute::default()
            }],
            ..Table::default()
        };
        let error = McpIndex::new(&table).expect_err("refused").to_string();
        assert!(
            error.contains("mcp_routes[0].backends[0].tools.exclude_regex[0]"),
            "{error}"
        );
    }
}
