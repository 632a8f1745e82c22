//! The lookup of plain HTTPRoutes (the reverse-proxy side of a Gateway): their matches compiled
//! once (paths, methods, headers, query parameters), candidates kept per listener in the table's
//! precedence order, and a selection that allocates nothing.

use crate::TableError;
use crate::lookup::{ListenerId, host_matches, strip_port};
use crate::schema::*;
use regex::Regex;

/// What a plain request resolved to.
#[derive(Clone, Copy, Debug)]
pub struct ProxySelected<'a> {
    pub route_index: usize,
    pub route: &'a HttpRoute,
    pub rule_index: usize,
    pub rule: &'a HttpRule,
}

/// The compiled plain matches and the candidates of each listener.
#[derive(Debug, Default)]
pub(crate) struct PlainIndex {
    matchers: Vec<Compiled>,
    candidates: Vec<Vec<Vec<u32>>>,
}

#[derive(Debug)]
struct Compiled {
    path: Option<Path>,
    method: Option<http::Method>,
    headers: Vec<crate::lookup::Matcher>,
    query: Vec<(String, Value)>,
}

/// A compiled [`PathMatch`] (Gateway API's: prefixes match whole segments, expressions the
/// whole path).
#[derive(Debug)]
pub enum Path {
    Exact(String),
    /// Without a trailing `/` (so `/a/` and `/a` both take `/a/b`), empty for `/`.
    Prefix(String),
    Regex(Regex),
}

impl Path {
    /// `at` names the match in an error.
    pub fn compile(p: &PathMatch, at: impl Fn() -> String) -> Result<Self, TableError> {
        Ok(match p.kind {
            PathKind::Exact => Path::Exact(p.value.clone()),
            PathKind::PathPrefix => Path::Prefix(p.value.trim_end_matches('/').to_owned()),
            PathKind::RegularExpression => Path::Regex(full_match(&p.value, at)?),
        })
    }

    pub fn matches(&self, path: &str) -> bool {
        match self {
            Path::Exact(value) => path == value,
            Path::Prefix(prefix) => path
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
            Path::Regex(regex) => regex.is_match(path),
        }
    }
}

#[derive(Debug)]
enum Value {
    Exact(String),
    Regex(Regex),
}

impl PlainIndex {
    pub(crate) fn new(table: &Table) -> Result<Self, TableError> {
        validate(table)?;
        let mut matchers = Vec::with_capacity(table.http_matches.len());
        for (m, entry) in table.http_matches.iter().enumerate() {
            matchers.push(compile(m, entry)?);
        }
        let candidates = crate::lookup::per_listener(table, table.http_matches.len(), |m| {
            &table.http_routes[table.http_matches[m].route].parents
        });
        Ok(PlainIndex {
            matchers,
            candidates,
        })
    }

    /// The first plain rule, in precedence order, that takes the request.
    pub(crate) fn select<'a>(
        &self,
        table: &'a Table,
        listener: ListenerId,
        request: &Request<'_>,
    ) -> Option<ProxySelected<'a>> {
        let candidates = self
            .candidates
            .get(listener.gateway)?
            .get(listener.listener)?;
        let host = strip_port(request.host);
        candidates.iter().map(|&m| m as usize).find_map(|m| {
            let entry = &table.http_matches[m];
            let route = &table.http_routes[entry.route];
            let host_ok =
                route.hostnames.is_empty() || route.hostnames.iter().any(|p| host_matches(p, host));
            (host_ok && self.matchers[m].matches(request)).then(|| ProxySelected {
                route_index: entry.route,
                route,
                rule_index: entry.rule,
                rule: &route.rules[entry.rule],
            })
        })
    }
}

/// The parts of a request plain routes match on.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub host: &'a str,
    pub method: &'a http::Method,
    /// Without the query.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
}

impl Compiled {
    fn matches(&self, request: &Request<'_>) -> bool {
        let path_ok = self.path.as_ref().is_none_or(|p| p.matches(request.path));
        path_ok
            && self.method.as_ref().is_none_or(|m| m == request.method)
            && self.headers.iter().all(|h| h.matches(request.headers))
            && self.query.iter().all(|(name, value)| {
                query_values(request.query, name).any(|v| match value {
                    Value::Exact(expected) => v == expected,
                    Value::Regex(regex) => regex.is_match(v),
                })
            })
    }
}

/// The raw values of parameter `name` in `query`.
fn query_values<'q>(query: Option<&'q str>, name: &'q str) -> impl Iterator<Item = &'q str> {
    query
        .unwrap_or_default()
        .split('&')
        .filter_map(move |pair| match pair.split_once('=') {
            Some((n, v)) if n == name => Some(v),
            None if pair == name => Some(""),
            _ => None,
        })
}

fn compile(m: usize, entry: &HttpMatchEntry) -> Result<Compiled, TableError> {
    let at = |what: &str| format!("http_matches[{m}].{what}");
    let path = match &entry.path {
        None => None,
        Some(p) => Some(Path::compile(p, || at("path"))?),
    };
    let method = entry
        .method
        .as_deref()
        .map(|m| {
            http::Method::from_bytes(m.as_bytes())
                .map_err(|e| invalid(at("method"), format!("`{m}`: {e}")))
        })
        .transpose()?;
    let mut headers = Vec::with_capacity(entry.headers.len());
    for (h, header) in entry.headers.iter().enumerate() {
        headers.push(crate::lookup::Matcher::compile(header, || {
            at(&format!("headers[{h}]"))
        })?);
    }
    let mut query = Vec::with_capacity(entry.query_params.len());
    for (q, param) in entry.query_params.iter().enumerate() {
        let value = match param.kind {
            MatchKind::Exact => Value::Exact(param.value.clone()),
            MatchKind::RegularExpression => Value::Regex(full_match(&param.value, || {
                at(&format!("query_params[{q}]"))
            })?),
        };
        query.push((param.name.clone(), value));
    }
    Ok(Compiled {
        path,
        method,
        headers,
        query,
    })
}

/// A regular expression that must match the whole value (RE2 semantics, as Envoy's
/// `safe_regex`).
pub(crate) fn full_match(pattern: &str, at: impl Fn() -> String) -> Result<Regex, TableError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| invalid(at(), format!("regular expression: {e}")))
}

fn invalid(at: String, reason: String) -> TableError {
    TableError::Invalid { at, reason }
}

fn validate(table: &Table) -> Result<(), TableError> {
    for (r, route) in table.http_routes.iter().enumerate() {
        for (p, parent) in route.parents.iter().enumerate() {
            if parent.gateway >= table.gateways.len() {
                return Err(invalid(
                    format!("http_routes[{r}].parents[{p}].gateway"),
                    format!("index {} is past the end of gateways", parent.gateway),
                ));
            }
        }
    }
    for (m, entry) in table.http_matches.iter().enumerate() {
        let Some(route) = table.http_routes.get(entry.route) else {
            return Err(invalid(
                format!("http_matches[{m}].route"),
                format!("index {} is past the end of http_routes", entry.route),
            ));
        };
        if entry.rule >= route.rules.len() {
            return Err(invalid(
                format!("http_matches[{m}].rule"),
                format!("index {} is past the end of the route's rules", entry.rule),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: Option<(PathKind, &str)>) -> Compiled {
        let entry = HttpMatchEntry {
            path: path.map(|(kind, value)| PathMatch {
                kind,
                value: value.to_owned(),
            }),
            ..HttpMatchEntry::default()
        };
        compile(0, &entry).expect("compiles")
    }

    fn request<'a>(
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a http::HeaderMap,
    ) -> Request<'a> {
        Request {
            host: "example.com",
            method: &http::Method::GET,
            path,
            query,
            headers,
        }
    }

    #[test]
    fn path_prefixes_match_whole_segments() {
        let headers = http::HeaderMap::new();
        let prefix = entry(Some((PathKind::PathPrefix, "/api/")));
        for (path, expected) in [
            ("/api", true),
            ("/api/v1", true),
            ("/apis", false),
            ("/", false),
        ] {
            assert_eq!(
                prefix.matches(&request(path, None, &headers)),
                expected,
                "{path}"
            );
        }
        let root = entry(Some((PathKind::PathPrefix, "/")));
        assert!(root.matches(&request("/anything", None, &headers)));
        let exact = entry(Some((PathKind::Exact, "/a")));
        assert!(!exact.matches(&request("/a/", None, &headers)));
        let regex = entry(Some((PathKind::RegularExpression, "/v[0-9]+/.*")));
        assert!(regex.matches(&request("/v2/x", None, &headers)));
        assert!(!regex.matches(&request("/x/v2/x", None, &headers)));
    }

    #[test]
    fn query_parameters_match_any_of_their_values() {
        let headers = http::HeaderMap::new();
        let compiled = compile(
            0,
            &HttpMatchEntry {
                query_params: vec![HeaderMatch {
                    name: "tier".into(),
                    kind: MatchKind::Exact,
                    value: "gold".into(),
                }],
                ..HttpMatchEntry::default()
            },
        )
        .expect("compiles");
        assert!(compiled.matches(&request("/", Some("a=1&tier=gold"), &headers)));
        assert!(compiled.matches(&request("/", Some("tier=silver&tier=gold"), &headers)));
        assert!(!compiled.matches(&request("/", Some("tiers=gold"), &headers)));
        assert!(!compiled.matches(&request("/", None, &headers)));
    }
}
