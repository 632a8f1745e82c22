//! The loaded table: validated once, then read by every request without allocating.
//!
//! Each listener keeps the indices of the match entries whose route attaches to it, in table
//! order, so a lookup walks only its own candidates; regular expressions are compiled once, as
//! full matches (RE2 semantics, as Envoy applies `safe_regex`).

use crate::TableError;
use crate::schema::*;
use regex::Regex;

/// A listener of the table: `(gateway index, listener index)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId {
    pub gateway: usize,
    pub listener: usize,
}

/// What a request resolved to.
#[derive(Clone, Copy, Debug)]
pub struct Selected<'a> {
    pub route_index: usize,
    pub route: &'a Route,
    pub rule_index: usize,
    pub rule: &'a Rule,
}

/// An immutable, validated table.
#[derive(Debug)]
pub struct Snapshot {
    table: Table,
    /// Compiled header matchers, parallel to `table.matches`.
    matchers: Vec<Vec<Matcher>>,
    /// Per gateway, per listener: candidate match entries in order.
    candidates: Vec<Vec<Vec<u32>>>,
    /// The plain HTTPRoutes' matches.
    plain: crate::plain::PlainIndex,
    /// The MCPRoutes' lookup.
    mcp: crate::mcp::McpIndex,
}

#[derive(Debug)]
pub(crate) enum Matcher {
    Exact(http::HeaderName, String),
    Regex(http::HeaderName, Regex),
}

impl Snapshot {
    /// Validates `table` and builds the lookup structure.
    pub fn new(table: Table) -> Result<Self, TableError> {
        crate::check_version(&table.schema_version)?;
        validate(&table)?;
        let mut matchers = Vec::with_capacity(table.matches.len());
        for (i, entry) in table.matches.iter().enumerate() {
            let mut compiled = Vec::with_capacity(entry.headers.len());
            for (j, header) in entry.headers.iter().enumerate() {
                compiled.push(Matcher::compile(header, || {
                    format!("matches[{i}].headers[{j}]")
                })?);
            }
            matchers.push(compiled);
        }
        let plain = crate::plain::PlainIndex::new(&table)?;
        let mcp = crate::mcp::McpIndex::new(&table)?;
        let candidates = per_listener(&table, table.matches.len(), |m| {
            &table.routes[table.matches[m].route].parents
        });
        Ok(Snapshot {
            table,
            matchers,
            candidates,
            plain,
            mcp,
        })
    }

    /// The table as loaded.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Every listener, in table order.
    pub fn listeners(&self) -> impl Iterator<Item = (ListenerId, &Gateway, &Listener)> {
        self.table
            .gateways
            .iter()
            .enumerate()
            .flat_map(|(g, gateway)| {
                gateway
                    .listeners
                    .iter()
                    .enumerate()
                    .map(move |(l, listener)| {
                        (
                            ListenerId {
                                gateway: g,
                                listener: l,
                            },
                            gateway,
                            listener,
                        )
                    })
            })
    }

    /// The first rule, in match order, that takes a request for `host` with `headers` on
    /// `listener`. `host` may carry a port; it is ignored.
    pub fn select(
        &self,
        listener: ListenerId,
        host: &str,
        headers: &http::HeaderMap,
    ) -> Option<Selected<'_>> {
        let candidates = self
            .candidates
            .get(listener.gateway)?
            .get(listener.listener)?;
        let host = strip_port(host);
        let listener_host = self.table.gateways[listener.gateway].listeners[listener.listener]
            .hostname
            .as_deref();
        if listener_host.is_some_and(|pattern| !host_matches(pattern, host)) {
            return None;
        }
        candidates.iter().map(|&m| m as usize).find_map(|m| {
            let entry = &self.table.matches[m];
            let route = &self.table.routes[entry.route];
            let host_ok =
                route.hostnames.is_empty() || route.hostnames.iter().any(|p| host_matches(p, host));
            (host_ok
                && self.matchers[m]
                    .iter()
                    .all(|matcher| matcher.matches(headers)))
            .then(|| Selected {
                route_index: entry.route,
                route,
                rule_index: entry.rule,
                rule: &route.rules[entry.rule],
            })
        })
    }

    /// The models served on `listener` for `host`, in match order, each once.
    pub fn models(&self, listener: ListenerId, host: &str) -> Vec<&Model> {
        self.routed_models(listener, host)
            .into_iter()
            .map(|(_, model)| model)
            .collect()
    }

    /// The models of [`Snapshot::models`], each with the index of the route that serves it.
    pub fn routed_models(&self, listener: ListenerId, host: &str) -> Vec<(usize, &Model)> {
        let host = strip_port(host);
        let Some(candidates) = self
            .candidates
            .get(listener.gateway)
            .and_then(|g| g.get(listener.listener))
        else {
            return Vec::new();
        };
        let mut seen = std::collections::HashSet::new();
        let mut models = Vec::new();
        for &m in candidates {
            let entry = &self.table.matches[m as usize];
            let route = &self.table.routes[entry.route];
            if !route.hostnames.is_empty() && !route.hostnames.iter().any(|p| host_matches(p, host))
            {
                continue;
            }
            for model in &route.rules[entry.rule].models {
                if seen.insert(model.name.as_str()) {
                    models.push((entry.route, model));
                }
            }
        }
        models
    }
}

impl Snapshot {
    /// The MCPRoute (an index into `mcp_routes`) that serves `path` on `listener` for `host`
    /// and `headers`: the first by name.
    pub fn select_mcp(
        &self,
        listener: ListenerId,
        host: &str,
        path: &str,
        headers: &http::HeaderMap,
    ) -> Option<usize> {
        if !self.listener_takes(listener, host) {
            return None;
        }
        self.mcp.select(&self.table, listener, host, path, headers)
    }

    /// Whether `listener` exists and its hostname, if it has one, takes `host` (port ignored).
    fn listener_takes(&self, listener: ListenerId, host: &str) -> bool {
        self.table
            .gateways
            .get(listener.gateway)
            .and_then(|g| g.listeners.get(listener.listener))
            .is_some_and(|l| {
                l.hostname
                    .as_deref()
                    .is_none_or(|pattern| host_matches(pattern, strip_port(host)))
            })
    }

    /// The compiled tool selector of an MCPRoute's backend.
    pub fn mcp_tools(&self, route: usize, backend: usize) -> Option<&crate::mcp::Tools> {
        self.mcp.tools(route, backend)
    }

    /// The first plain HTTPRoute rule, in precedence order, that takes `request` on `listener`.
    pub fn select_plain(
        &self,
        listener: ListenerId,
        request: &crate::plain::Request<'_>,
    ) -> Option<crate::plain::ProxySelected<'_>> {
        if !self.listener_takes(listener, request.host) {
            return None;
        }
        self.plain.select(&self.table, listener, request)
    }
}

impl Matcher {
    pub(crate) fn compile(
        header: &HeaderMatch,
        at: impl Fn() -> String,
    ) -> Result<Self, TableError> {
        let name = http::HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|e| invalid(at(), format!("header name `{}`: {e}", header.name)))?;
        Ok(match header.kind {
            MatchKind::Exact => Matcher::Exact(name, header.value.clone()),
            MatchKind::RegularExpression => {
                Matcher::Regex(name, crate::plain::full_match(&header.value, at)?)
            }
        })
    }

    pub(crate) fn matches(&self, headers: &http::HeaderMap) -> bool {
        match self {
            Matcher::Exact(name, value) => headers
                .get_all(name)
                .iter()
                .any(|v| v.as_bytes() == value.as_bytes()),
            Matcher::Regex(name, regex) => headers
                .get_all(name)
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| regex.is_match(v))),
        }
    }
}

/// Per gateway, per listener: the entries `0..count` whose route (its `parents`) attaches to
/// that listener, in entry order.
pub(crate) fn per_listener<'t>(
    table: &'t Table,
    count: usize,
    parents: impl Fn(usize) -> &'t [Parent],
) -> Vec<Vec<Vec<u32>>> {
    table
        .gateways
        .iter()
        .enumerate()
        .map(|(g, gateway)| {
            gateway
                .listeners
                .iter()
                .map(|listener| {
                    (0..count)
                        .filter(|&m| attaches(parents(m), g, listener))
                        .map(|m| m as u32)
                        .collect()
                })
                .collect()
        })
        .collect()
}

/// A `Host` without its port (`[v6]:port`, `name:port`, or bare).
pub fn strip_port(host: &str) -> &str {
    // `[v6]:port`, `name:port`, or bare.
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

/// Gateway API hostname matching: exact (case-insensitive), or `*.suffix` for one or more
/// labels. `host` may itself be a wildcard (`*.a.example.com` is covered by `*.example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => {
            host.len() > suffix.len() + 1
                && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

pub(crate) fn invalid(at: String, reason: String) -> TableError {
    TableError::Invalid { at, reason }
}

/// Every index in range, every weight and name sane.
fn validate(table: &Table) -> Result<(), TableError> {
    for (r, route) in table.routes.iter().enumerate() {
        if route.parents.is_empty() {
            return Err(invalid(
                format!("routes[{r}]"),
                "a route needs at least one parent".into(),
            ));
        }
        for (p, parent) in route.parents.iter().enumerate() {
            if parent.gateway >= table.gateways.len() {
                return Err(invalid(
                    format!("routes[{r}].parents[{p}].gateway"),
                    out_of_range(parent.gateway, "gateways"),
                ));
            }
        }
        for (i, rule) in route.rules.iter().enumerate() {
            for (b, backend_ref) in rule.backends.iter().enumerate() {
                if backend_ref.backend >= table.backends.len() {
                    let at = format!("routes[{r}].rules[{i}].backends[{b}].backend");
                    return Err(invalid(at, out_of_range(backend_ref.backend, "backends")));
                }
            }
        }
    }
    for (m, entry) in table.matches.iter().enumerate() {
        let Some(route) = table.routes.get(entry.route) else {
            return Err(invalid(
                format!("matches[{m}].route"),
                out_of_range(entry.route, "routes"),
            ));
        };
        if entry.rule >= route.rules.len() {
            return Err(invalid(
                format!("matches[{m}].rule"),
                out_of_range(entry.rule, "the route's rules"),
            ));
        }
    }
    for (q, quota) in table.quotas.iter().enumerate() {
        if let Some(&b) = quota.backends.iter().find(|&&b| b >= table.backends.len()) {
            return Err(invalid(
                format!("quotas[{q}].backends"),
                out_of_range(b, "backends"),
            ));
        }
    }
    let mut policies: Vec<(String, &CallerPolicies)> = Vec::new();
    for (g, gateway) in table.gateways.iter().enumerate() {
        policies.push((format!("gateways[{g}].policies"), &gateway.policies));
        for (l, listener) in gateway.listeners.iter().enumerate() {
            policies.push((
                format!("gateways[{g}].listeners[{l}].policies"),
                &listener.policies,
            ));
        }
    }
    for (r, route) in table.routes.iter().enumerate() {
        policies.push((format!("routes[{r}].policies"), &route.policies));
    }
    for (r, route) in table.http_routes.iter().enumerate() {
        policies.push((format!("http_routes[{r}].policies"), &route.policies));
    }
    for (at, p) in policies {
        if let Some(c) = p.callers.filter(|c| *c >= table.callers.len()) {
            return Err(invalid(format!("{at}.callers"), out_of_range(c, "callers")));
        }
        if let Some(a) = p.access.filter(|a| *a >= table.access.len()) {
            return Err(invalid(format!("{at}.access"), out_of_range(a, "access")));
        }
        if let Some(g) = p.guard.filter(|g| *g >= table.guards.len()) {
            return Err(invalid(format!("{at}.guard"), out_of_range(g, "guards")));
        }
        if let Some(r) = p.rate_limit.filter(|r| *r >= table.rate_limits.len()) {
            return Err(invalid(
                format!("{at}.rate_limit"),
                out_of_range(r, "rate_limits"),
            ));
        }
    }
    for (g, gateway) in table.gateways.iter().enumerate() {
        for (l, listener) in gateway.listeners.iter().enumerate() {
            if listener.protocol == Protocol::Https && listener.certificates.is_empty() {
                let at = format!("gateways[{g}].listeners[{l}]");
                return Err(invalid(at, "an HTTPS listener needs a certificate".into()));
            }
        }
    }
    Ok(())
}

fn out_of_range(index: usize, what: &str) -> String {
    format!("index {index} is past the end of {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_hosts_need_at_least_one_more_label() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.EXAMPLE.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(!host_matches("*.example.com", "aexample.com"));
        assert!(host_matches("api.example.com", "API.example.com"));
        assert_eq!(strip_port("api.example.com:8080"), "api.example.com");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("localhost"), "localhost");
    }
}
