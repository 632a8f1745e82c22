//! Client selectors (Envoy Gateway's rate-limit select conditions), shared by QuotaPolicy bucket
//! rules and BackendTrafficPolicy rate limits: headers and query parameters (`Exact`, `RegularExpression` or `Distinct`),
//! methods, the path (`Exact`, `PathPrefix`, `RegularExpression`) and the source address
//! (`sourceCIDR`, `Exact` or `Distinct`), each of which may be inverted. A rule applies when
//! every condition of every selector holds; `Distinct` conditions add their value to the
//! bucket's key, so each client value gets a budget of its own.

/// What the selectors look at.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    pub headers: &'a http::HeaderMap,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub peer: Option<std::net::IpAddr>,
}

impl<'a> Request<'a> {
    /// What the selectors see of a request from `peer`.
    pub fn of(parts: &'a http::request::Parts, peer: std::net::IpAddr) -> Self {
        Request {
            headers: &parts.headers,
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            peer: Some(peer),
        }
    }
}
use serde::Deserialize;
use std::net::IpAddr;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    #[serde(default)]
    headers: Vec<WireValue>,
    #[serde(default)]
    query_params: Vec<WireValue>,
    #[serde(default)]
    methods: Vec<WireMethod>,
    path: Option<WirePath>,
    #[serde(rename = "sourceCIDR")]
    source_cidr: Option<WireCidr>,
}

#[derive(Clone, Debug, Deserialize)]
struct WireValue {
    name: String,
    #[serde(rename = "type", default = "exact")]
    kind: String,
    value: Option<String>,
    #[serde(default)]
    invert: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct WireMethod {
    value: String,
    #[serde(default)]
    invert: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct WirePath {
    #[serde(rename = "type", default = "prefix")]
    kind: String,
    #[serde(default = "root")]
    value: String,
    #[serde(default)]
    invert: bool,
}

#[derive(Clone, Debug, Deserialize)]
struct WireCidr {
    #[serde(rename = "type", default = "exact")]
    kind: String,
    value: String,
}

fn exact() -> String {
    "Exact".into()
}
fn prefix() -> String {
    "PathPrefix".into()
}
fn root() -> String {
    "/".into()
}

#[derive(Clone, Debug)]
enum Text {
    Exact(String),
    Regex(regex::Regex),
    Distinct,
}

#[derive(Clone, Debug)]
enum Condition {
    Header {
        name: String,
        text: Text,
        invert: bool,
    },
    Query {
        name: String,
        text: Text,
        invert: bool,
    },
    Method {
        value: String,
        invert: bool,
    },
    Path {
        text: PathText,
        invert: bool,
    },
    Source {
        net: IpAddr,
        bits: u8,
        distinct: bool,
    },
}

#[derive(Clone, Debug)]
enum PathText {
    Exact(String),
    Prefix(String),
    Regex(regex::Regex),
}

/// One compiled selector: all its conditions.
#[derive(Clone, Debug)]
pub(super) struct Selector(Vec<Condition>);

fn text(kind: &str, value: Option<&str>) -> Result<Text, String> {
    match kind {
        "Distinct" => Ok(Text::Distinct),
        "RegularExpression" => regex::Regex::new(&format!("^(?:{})$", value.unwrap_or("")))
            .map(Text::Regex)
            .map_err(|e| format!("a selector's regular expression does not compile: {e}")),
        _ => Ok(Text::Exact(value.unwrap_or("").to_owned())),
    }
}

impl Selector {
    pub(super) fn compile(value: &serde_json::Value) -> Result<Selector, String> {
        let wire: Wire = serde_json::from_value(value.clone())
            .map_err(|e| format!("a client selector cannot be read: {e}"))?;
        let mut conditions = Vec::new();
        for h in &wire.headers {
            conditions.push(Condition::Header {
                name: h.name.to_ascii_lowercase(),
                text: text(&h.kind, h.value.as_deref())?,
                invert: h.invert,
            });
        }
        for q in &wire.query_params {
            conditions.push(Condition::Query {
                name: q.name.clone(),
                text: text(&q.kind, q.value.as_deref())?,
                invert: q.invert,
            });
        }
        for m in &wire.methods {
            conditions.push(Condition::Method {
                value: m.value.clone(),
                invert: m.invert,
            });
        }
        if let Some(p) = &wire.path {
            let text = match p.kind.as_str() {
                "Exact" => PathText::Exact(p.value.clone()),
                "RegularExpression" => regex::Regex::new(&format!("^(?:{})$", p.value))
                    .map(PathText::Regex)
                    .map_err(|e| format!("a path regular expression does not compile: {e}"))?,
                _ => PathText::Prefix(p.value.clone()),
            };
            conditions.push(Condition::Path {
                text,
                invert: p.invert,
            });
        }
        if let Some(c) = &wire.source_cidr {
            let (net, bits) =
                cidr(&c.value).ok_or_else(|| format!("`{}` is not a CIDR", c.value))?;
            conditions.push(Condition::Source {
                net,
                bits,
                distinct: c.kind == "Distinct",
            });
        }
        Ok(Selector(conditions))
    }
}

/// When every selector holds: the `Distinct` values that key the bucket (`""` for none).
pub fn all_match(selectors: &[Selector], request: &Request<'_>) -> Option<String> {
    let mut distinct = String::new();
    for selector in selectors {
        for condition in &selector.0 {
            let value = condition.check(request)?;
            if let Some(value) = value {
                if !distinct.is_empty() {
                    distinct.push('|');
                }
                // Bounded: a client chooses these values.
                distinct.extend(value.chars().take(256));
            }
        }
    }
    Some(distinct)
}

impl Condition {
    /// `None`: it does not hold; `Some(Some(v))`: it holds and keys the bucket by `v`.
    fn check(&self, request: &Request<'_>) -> Option<Option<String>> {
        match self {
            Condition::Header { name, text, invert } => {
                let value = request.headers.get(name).and_then(|v| v.to_str().ok());
                matches_text(text, value, *invert)
            }
            Condition::Query { name, text, invert } => {
                let value = request.query.and_then(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.into_owned())
                });
                matches_text(text, value.as_deref(), *invert)
            }
            Condition::Method { value, invert } => {
                (request.method.as_str().eq_ignore_ascii_case(value) != *invert).then_some(None)
            }
            Condition::Path { text, invert } => {
                let path = request.path;
                let hit = match text {
                    PathText::Exact(p) => path == p,
                    PathText::Prefix(p) => {
                        let p = p.trim_end_matches('/');
                        path == p
                            || path
                                .strip_prefix(p)
                                .is_some_and(|rest| rest.starts_with('/'))
                            || p.is_empty()
                    }
                    PathText::Regex(r) => r.is_match(path),
                };
                (hit != *invert).then_some(None)
            }
            Condition::Source {
                net,
                bits,
                distinct,
            } => {
                let peer = request.peer?;
                if !within(peer, *net, *bits) {
                    return None;
                }
                Some(distinct.then(|| peer.to_string()))
            }
        }
    }
}

fn matches_text(text: &Text, value: Option<&str>, invert: bool) -> Option<Option<String>> {
    match text {
        Text::Distinct => value.map(|v| Some(v.to_owned())),
        Text::Exact(expected) => ((value == Some(expected.as_str())) != invert).then_some(None),
        Text::Regex(r) => (value.is_some_and(|v| r.is_match(v)) != invert).then_some(None),
    }
}

/// `10.0.0.0/8` or `2001:db8::/32` (a bare address is a /32 or /128).
pub(crate) fn cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a.parse::<IpAddr>().ok()?, b.parse::<u8>().ok()?),
        None => {
            let a = text.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (bits <= max).then_some((addr, bits))
}

/// Whether `ip` is in `net/bits` (an IPv4 peer mapped into IPv6 counts as IPv4).
pub(crate) fn within(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(headers: &'a http::HeaderMap, peer: &str) -> Request<'a> {
        Request {
            headers,
            method: &http::Method::POST,
            path: "/v1/chat/completions",
            query: Some("team=blue&x=1"),
            peer: peer.parse().ok(),
        }
    }

    #[test]
    fn conditions_hold_as_written_and_distinct_values_key_the_bucket() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", http::HeaderValue::from_static("acme"));
        let req = request(&headers, "10.1.2.3");
        let one = |json: serde_json::Value| {
            let s = Selector::compile(&json).unwrap_or_else(|e| unreachable!("{e}"));
            all_match(std::slice::from_ref(&s), &req)
        };
        use serde_json::json;
        assert_eq!(
            one(json!({"headers": [{"name": "X-Tenant", "value": "acme"}]})),
            Some(String::new())
        );
        assert_eq!(
            one(json!({"headers": [{"name": "x-tenant", "value": "other"}]})),
            None
        );
        assert_eq!(
            one(json!({"headers": [{"name": "x-tenant", "value": "other", "invert": true}]})),
            Some(String::new())
        );
        assert_eq!(
            one(json!({"headers": [{"name": "x-tenant", "type": "Distinct"}]})),
            Some("acme".into())
        );
        assert_eq!(
            one(json!({"headers": [{"name": "x-missing", "type": "Distinct"}]})),
            None
        );
        assert_eq!(
            one(
                json!({"headers": [{"name": "x-tenant", "type": "RegularExpression", "value": "ac.*"}]})
            ),
            Some(String::new())
        );
        assert_eq!(
            one(json!({"queryParams": [{"name": "team", "value": "blue"}]})),
            Some(String::new())
        );
        assert_eq!(one(json!({"methods": [{"value": "GET"}]})), None);
        assert_eq!(
            one(json!({"path": {"type": "PathPrefix", "value": "/v1"}})),
            Some(String::new())
        );
        assert_eq!(
            one(json!({"path": {"type": "PathPrefix", "value": "/v1/chat/c"}})),
            None
        );
        assert_eq!(
            one(json!({"sourceCIDR": {"value": "10.0.0.0/8"}})),
            Some(String::new())
        );
        assert_eq!(
            one(json!({"sourceCIDR": {"value": "192.168.0.0/16"}})),
            None
        );
        assert_eq!(
            one(json!({"sourceCIDR": {"type": "Distinct", "value": "0.0.0.0/0"}})),
            Some("10.1.2.3".into())
        );
        assert!(Selector::compile(&json!({"sourceCIDR": {"value": "10.0.0.0/40"}})).is_err());
        assert!(within(
            "::ffff:10.0.0.1"
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            "10.0.0.0"
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            8
        ));
    }
}
