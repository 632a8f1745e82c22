//! The serialized form of the routing table (`table.json`): plain serde types, one per concept,
//! written by `targets/table` and read by [`crate::load`].
//!
//! Conventions:
//! - objects are named `namespace/name` (the Kubernetes identity they were compiled from);
//! - cross references are indices into the table's own arrays (`backends[i]`, `gateways[i]`),
//!   checked when the table is loaded;
//! - durations are whole milliseconds;
//! - secrets are referenced by namespace, name and key, never carried: the runtime resolves them;
//! - optional and empty fields are left out, so the JSON stays small and diffs stay readable.
//!
//! Compatibility: a reader of major version N accepts every `N.x` table. Minor versions only add
//! optional fields, so unknown fields are ignored rather than refused.

use serde::{Deserialize, Serialize};

/// The whole table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// `MAJOR.MINOR`; see [`crate::SCHEMA_VERSION`].
    pub schema_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<Gateway>,
    /// AIGatewayRoutes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Every rule match of every route, in the order they are tried (Gateway API precedence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<MatchEntry>,
    /// AIServiceBackends (and InferencePools) referenced by routes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<Quota>,
    /// Plain HTTPRoutes on the same Gateways, served as a reverse proxy, sorted by name
    /// (since 1.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_routes: Vec<HttpRoute>,
    /// Every rule match of every HTTPRoute, in the order they are tried (Gateway API
    /// precedence: exact path, regular expression, longest prefix, method, most headers, most
    /// query parameters, then route name and rule order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_matches: Vec<HttpMatchEntry>,
    /// Caller authentication (SecurityPolicy `apiKeyAuth`), named by index from Gateways,
    /// listeners and routes (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub callers: Vec<Callers>,
    /// Model allowlists (ModelAccessPolicy), named by index like `callers` (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<ModelAccess>,
    /// Request-rate limits (BackendTrafficPolicy `rateLimit`), named by index like `callers`
    /// (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimit>,
    /// Prompt guards (PromptGuardPolicy), named by index like `callers` (since 1.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub guards: Vec<Guard>,
    /// Response caches (ResponseCachePolicy), named by index like `callers` (since 1.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<crate::Cache>,
    /// WASM extensions (EnvoyExtensionPolicy `wasm`), named by index like `callers` (since 1.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<crate::Extensions>,
    /// MCPRoutes, sorted by name (since 1.5).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_routes: Vec<crate::McpRoute>,
}

/// A PromptGuardPolicy: checks on prompts and answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guard {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request: Vec<GuardCheck>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response: Vec<GuardCheck>,
}

/// A built-in detector (`Email`, `Phone`, `CreditCard`, `IBAN`, `USSSN`, `APIKey`) or a
/// pattern, and whether what it finds is masked (else the request is refused).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mask: bool,
}

/// A BackendTrafficPolicy's `rateLimit`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateLimit {
    /// The policy, `namespace/name`.
    pub name: String,
    pub rules: Vec<RateRule>,
}

/// One limit: `requests` per fixed window of `window_ms`, for the requests all of whose client
/// selectors hold (Envoy Gateway's rate-limit select conditions, as `BucketRule` carries them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_selectors: Vec<serde_json::Value>,
    pub requests: u64,
    pub window_ms: u64,
    /// Counted in the shared store (Redis) rather than per replica.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
    /// One counter for every route the policy targets, not one per route.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Count and report, never refuse.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow_mode: bool,
    /// No `x-ratelimit-*` headers on answers (`xRateLimitHeaders: Off`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_headers: bool,
    /// Taken from the counter on the request path (`cost.request.number`); 0 checks only.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub request_cost: u64,
    /// Taken after the answer: a fixed number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_cost: Option<u64>,
    /// Taken after the answer: the request cost (`llmRequestCosts` metadata key) the route
    /// recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_cost_key: Option<String>,
}

fn one() -> u64 {
    1
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

/// Which caller policy and allowlist apply to a Gateway, a listener or a route (indices into
/// the table's `callers` and `access`). A route's replaces its listener's, which replaces its
/// Gateway's (Envoy Gateway's precedence of policies).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerPolicies {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callers: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<usize>,
    /// Index into the table's `rate_limits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<usize>,
    /// Index into the table's `guards`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guard: Option<usize>,
    /// Index into the table's `caches` (since 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<usize>,
    /// Index into the table's `extensions` (since 1.4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<usize>,
}

impl CallerPolicies {
    pub fn is_empty(&self) -> bool {
        self.callers.is_none()
            && self.access.is_none()
            && self.rate_limit.is_none()
            && self.guard.is_none()
            && self.cache.is_none()
            && self.extensions.is_none()
    }
}

/// A SecurityPolicy: its `apiKeyAuth` (the callers and where their key is read from; none
/// when `extract_from` is empty), and since 1.4 its `jwt`, `authorization` and `cors`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callers {
    /// The SecurityPolicy, `namespace/name`.
    pub name: String,
    /// Opaque Secrets whose every key is a client ID and its value the client's API key (the
    /// first Secret wins for a client ID in two).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<ObjectRef>,
    /// Where the key is looked for, in order; the first that has one is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extract_from: Vec<KeySource>,
    /// The header the client ID is forwarded to the backend in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_client_id_header: Option<String>,
    /// The key is removed from the request before it is forwarded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sanitize: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<crate::Jwt>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<crate::Authorization>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<crate::Cors>,
}

/// One place a caller's key may be.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    Header(String),
    Param(String),
    Cookie(String),
}

/// A ModelAccessPolicy: which client IDs may use which models (globs, `*` and `?`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelAccess {
    pub name: String,
    pub rules: Vec<AccessRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRule {
    pub clients: Vec<String>,
    pub models: Vec<String>,
}

/// A Gateway: where to listen, and its GatewayConfig.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Gateway {
    pub name: String,
    pub listeners: Vec<Listener>,
    /// Request costs every route of this Gateway records (GatewayConfig `globalLLMRequestCosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_request_costs: Vec<RequestCost>,
    /// The GatewayConfig it uses, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Upstream traffic goes through this HTTP proxy (GatewayConfig `forwardProxy.address`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_proxy: Option<String>,
    /// The OpenTelemetry variables (`OTEL_*`) its GatewayConfig sets with a literal value in
    /// `extProc.kubernetes.env`, where the reference configures tracing (since 1.3).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub telemetry: std::collections::BTreeMap<String, String>,
    /// Its caller policies (since 1.3).
    #[serde(default, skip_serializing_if = "CallerPolicies::is_empty")]
    pub policies: CallerPolicies,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub name: String,
    pub port: u16,
    pub protocol: Protocol,
    /// Only requests for this host (exact, or `*.suffix`) are served here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Certificate and key for HTTPS: Secrets of type `kubernetes.io/tls` (`tls.crt`, `tls.key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<ObjectRef>,
    /// Its caller policies, ahead of its Gateway's (since 1.3).
    #[serde(default, skip_serializing_if = "CallerPolicies::is_empty")]
    pub policies: CallerPolicies,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Http,
    Https,
}

/// An AIGatewayRoute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub name: String,
    /// The Gateways (and optionally listeners) it attaches to.
    pub parents: Vec<Parent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    pub rules: Vec<Rule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub llm_request_costs: Vec<RequestCost>,
    /// Its caller policies, ahead of its listener's and Gateway's (since 1.3).
    #[serde(default, skip_serializing_if = "CallerPolicies::is_empty")]
    pub policies: CallerPolicies,
}

impl Route {
    /// Whether the route serves `listener` of `gateways[gateway]` (its parentRefs' gateway,
    /// sectionName and port).
    pub fn attaches(&self, gateway: usize, listener: &Listener) -> bool {
        attaches(&self.parents, gateway, listener)
    }
}

pub(crate) fn attaches(parents: &[Parent], gateway: usize, listener: &Listener) -> bool {
    parents.iter().any(|p| {
        p.gateway == gateway
            && p.section_name.as_deref().is_none_or(|s| s == listener.name)
            && p.port.is_none_or(|port| port == listener.port)
    })
}

/// A plain HTTPRoute: requests it matches are proxied as they are (no model, no translation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRoute {
    pub name: String,
    pub parents: Vec<Parent>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    pub rules: Vec<HttpRule>,
    /// Its SecurityPolicy, ahead of its listener's and Gateway's (since 1.3; no allowlist: a
    /// plain route has no model).
    #[serde(default, skip_serializing_if = "CallerPolicies::is_empty")]
    pub policies: CallerPolicies,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRule {
    /// Chosen by weight; a rule with none (or only zero weights) answers 500, as Gateway API
    /// says of a rule whose backends are all invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<ProxyBackend>,
    /// The rule's `timeouts.request`; none means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_ms: Option<u64>,
    /// Its Gateway API filters (since 1.3).
    #[serde(default, skip_serializing_if = "HttpFilters::is_empty")]
    pub filters: HttpFilters,
}

/// The filters of a plain rule, as they act: headers edited before the request goes on, the
/// URL rewritten, or a redirect answered instead; copies sent to mirrors; the answer's headers
/// edited.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpFilters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_headers: Option<HeaderEdits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<HeaderEdits>,
    /// `URLRewrite.hostname`: the `Host` sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_path: Option<PathRewrite>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// `RequestMirror`s, in the rule's order (since 1.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<Mirror>,
}

/// Gateway API `HTTPRequestMirrorFilter`: a copy of `numerator` out of `denominator` requests
/// sent to `backend` as the rule's backend gets it (the `Host` with `-shadow` appended, as
/// Envoy does), the answer ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mirror {
    pub backend: ProxyBackend,
    pub numerator: u32,
    pub denominator: u32,
}

impl HttpFilters {
    pub fn is_empty(&self) -> bool {
        *self == HttpFilters::default()
    }
}

/// Gateway API `HTTPHeaderFilter`: set (replace), add (append), remove, in that order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// A path replaced whole, or the rule's matched prefix replaced (`prefixes`: the rule's
/// `PathPrefix` match values, the longest that matches being the one replaced).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathRewrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

/// Gateway API `HTTPRequestRedirectFilter`: what is not given is the request's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathRewrite>,
    pub status: u16,
}

/// Where a plain rule proxies to: an Envoy Gateway Backend, or a Service by its cluster name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProxyBackend {
    /// `namespace/name` of the Backend or Service.
    pub name: String,
    pub weight: u32,
    pub endpoints: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
}

/// One entry of the plain routes' match order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpMatchEntry {
    /// Index into `http_routes`.
    pub route: usize,
    pub rule: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,
    /// Upper case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
    /// Compared with the raw (not percent-decoded) query parameter; names are case-sensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_params: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathMatch {
    #[serde(rename = "type")]
    pub kind: PathKind,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathKind {
    Exact,
    /// Element-wise: `/a` takes `/a` and `/a/b`, not `/ab`.
    PathPrefix,
    RegularExpression,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Parent {
    /// Index into `gateways`.
    pub gateway: usize,
    /// Only the listener of this name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
    /// Only listeners on this port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub backends: Vec<BackendRef>,
    /// Whole-request timeout (the rule's `timeouts.request`, 60 s by default).
    pub request_timeout_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_request_timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_ms: Option<u64>,
    /// Models this rule serves by exact name, for `/v1/models`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<Model>,
}

impl Rule {
    /// The distinct priorities of the backend references that carry weight, lowest (most
    /// preferred) first: the failover order.
    pub fn priority_levels(&self) -> Vec<u32> {
        let mut levels: Vec<u32> = self
            .backends
            .iter()
            .filter(|b| b.weight > 0)
            .map(|b| b.priority)
            .collect();
        levels.sort_unstable();
        levels.dedup();
        levels
    }
}

impl Table {
    /// The one backend reference, and the one endpoint of its backend, that a rule always sends
    /// to: exactly one reference carries weight and its backend has exactly one endpoint that
    /// can be dialled. Such a rule needs no choice made per attempt, so Envoy's external
    /// processor prepares its request in the router phase, and the Envoy target compiles its
    /// cluster without the upstream processor and with that endpoint's authority as the `Host`:
    /// one gRPC stream per request instead of two. Both sides ask this one function, so they
    /// always agree.
    pub fn sole_endpoint<'a>(&'a self, rule: &'a Rule) -> Option<(&'a BackendRef, &'a Endpoint)> {
        let mut weighted = rule.backends.iter().filter(|b| b.weight > 0);
        let (Some(reference), None) = (weighted.next(), weighted.next()) else {
            return None;
        };
        let backend = self.backends.get(reference.backend)?;
        match backend.endpoints.as_slice() {
            [endpoint] if endpoint.authority().is_some() => Some((reference, endpoint)),
            _ => None,
        }
    }
}

impl Endpoint {
    /// `host:port` as a URI authority (an IPv6 address in brackets); `None` for a Unix socket.
    pub fn authority(&self) -> Option<String> {
        match self {
            Endpoint::Fqdn { hostname, port } => Some(format!("{hostname}:{port}")),
            Endpoint::Ip { address, port } if address.contains(':') => {
                Some(format!("[{address}]:{port}"))
            }
            Endpoint::Ip { address, port } => Some(format!("{address}:{port}")),
            Endpoint::Unix { .. } => None,
        }
    }

    /// The `Host` a request to it carries: the authority without the scheme's default port
    /// (443 with TLS, else 80), as HTTP clients and the SigV4 signer write it.
    pub fn host_header(&self, tls: bool) -> Option<String> {
        let default = if tls { 443 } else { 80 };
        match self {
            Endpoint::Fqdn { hostname, port } if *port == default => Some(hostname.clone()),
            Endpoint::Ip { address, port } if *port == default && address.contains(':') => {
                Some(format!("[{address}]"))
            }
            Endpoint::Ip { address, port } if *port == default => Some(address.clone()),
            _ => self.authority(),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub name: String,
    pub owned_by: String,
    /// Unix seconds (`modelsCreatedAt`); absent when the route does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<i64>,
}

/// One entry of the match order: a route's rule and one of its matches.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchEntry {
    pub route: usize,
    pub rule: usize,
    /// All must match; none means every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderMatch>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    /// Lower case.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: MatchKind,
    pub value: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchKind {
    Exact,
    RegularExpression,
}

/// A rule's reference to a backend, with the route-level settings merged over the backend's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRef {
    /// Index into `backends`.
    pub backend: usize,
    pub weight: u32,
    /// Lower is preferred; higher priorities take traffic only when the lower ones fail.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub priority: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_name_override: Option<String>,
    #[serde(default, skip_serializing_if = "Mutation::is_empty")]
    pub header_mutation: Mutation,
    #[serde(default, skip_serializing_if = "Mutation::is_empty")]
    pub body_mutation: Mutation,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// Values to set and names to remove: request headers (names compared without case) or
/// top-level JSON fields of the request body (values are JSON text).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Mutation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set: Vec<NameValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl Mutation {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

/// An AIServiceBackend with everything needed to call it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Backend {
    pub name: String,
    pub schema: Schema,
    /// The Envoy Gateway Backend it sends to (`namespace/name`); absent for InferencePools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Set when the backend is an InferencePool (endpoint picking is the pool's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inference_pool: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// `OpenAI`, `AzureOpenAI`, `AWSBedrock`, `AWSAnthropic`, `GCPVertexAI`, `GCPAnthropic`,
    /// `Anthropic`, `Cohere`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Fqdn { hostname: String, port: u16 },
    Ip { address: String, port: u16 },
    Unix { path: String },
}

/// Upstream TLS, from the BackendTLSPolicy that targets the Backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tls {
    /// SNI and the name the certificate must carry.
    pub hostname: String,
    /// Trust the system's CA bundle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_cas: bool,
    /// CA bundles (ConfigMaps or Secrets, key `ca.crt`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ca_certificates: Vec<ObjectRef>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A Kubernetes object by kind, namespace and name (a Secret or ConfigMap).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

/// One key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretRef {
    pub namespace: String,
    pub name: String,
    pub key: String,
}

/// How to authenticate to a backend (its BackendSecurityPolicy, or the cloud's ambient chain).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// The BackendSecurityPolicy, by name; empty for [`AuthMethod::AmbientCredentials`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy: String,
    #[serde(flatten)]
    pub method: AuthMethod,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_override: Option<CredentialOverride>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AuthMethod {
    /// `Authorization: Bearer <key>`.
    APIKey { secret: SecretRef },
    /// `api-key: <key>`.
    AzureAPIKey { secret: SecretRef },
    /// `x-api-key: <key>`.
    AnthropicAPIKey { secret: SecretRef },
    /// SigV4; credentials from the Secret's ini file, from STS for an OIDC token
    /// (`web_identity`), or from the environment when neither is given.
    AWSCredentials {
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credentials_file: Option<SecretRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        web_identity: Option<AwsWebIdentity>,
    },
    /// OAuth2 client credentials against the tenant: a client secret, or an OIDC token as
    /// the client assertion.
    AzureCredentials {
        client_id: String,
        tenant_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_secret: Option<SecretRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oidc: Option<Oidc>,
    },
    /// No BackendSecurityPolicy targets the backend: the cloud's standard credential chain
    /// where the data plane runs (AWS: environment, web identity, EKS Pod Identity, shared
    /// files, instance metadata; GCP: Application Default Credentials; Azure: environment
    /// client credentials, then workload identity). Since 1.2.
    AmbientCredentials {
        cloud: Cloud,
        /// The region, where the Backend's hostname says it; else the data plane's
        /// environment does (`AWS_REGION`, `GOOGLE_CLOUD_LOCATION`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        region: Option<String>,
    },
    /// A service-account key exchanged for an access token, or workload identity federation.
    GCPCredentials {
        project: String,
        region: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service_account_key: Option<SecretRef>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workload_identity: Option<GcpWorkloadIdentity>,
    },
}

/// The cloud whose ambient credential chain a backend uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cloud {
    AWS,
    GCP,
    Azure,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GcpWorkloadIdentity {
    pub project_id: String,
    pub pool: String,
    pub provider: String,
    /// The service account to impersonate (its name; the email adds the policy's project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Where the subject token comes from.
    pub oidc: Oidc,
}

/// `AssumeRoleWithWebIdentity` for an OIDC token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AwsWebIdentity {
    pub role_arn: String,
    pub oidc: Oidc,
}

/// An OIDC provider the gateway gets a token from by the client-credentials grant, to
/// exchange it for a cloud credential.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Oidc {
    pub issuer: String,
    /// Overrides the discovery document's `token_endpoint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// The client id, given inline or (`client_id_secret`) in a Secret under `client-id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id_secret: Option<SecretRef>,
    /// The Secret holding the client secret under `client-secret`.
    pub client_secret: SecretRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// Take the credential from the request instead of the configured one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CredentialOverride {
    /// The request header carrying it (the backend's own auth header when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    pub fallback_to_configured: bool,
}

/// A value recorded per request for costs and quotas.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestCost {
    pub metadata_key: String,
    /// `InputToken`, `CachedInputToken`, `CacheCreationInputToken`, `OutputToken`,
    /// `ReasoningToken`, `TotalToken` or `CEL`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cel: Option<String>,
}

/// A QuotaPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Quota {
    pub name: String,
    /// Indices into `backends`.
    pub backends: Vec<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<QuotaLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_model: Vec<ModelQuota>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QuotaLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_expression: Option<String>,
    pub limit: i64,
    pub window_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelQuota {
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_bucket: Option<QuotaLimit>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bucket_rules: Vec<BucketRule>,
}

/// A bucket for the clients a selector picks. Selector fields mirror the QuotaPolicy's
/// `clientSelectors` (headers, methods, path, sourceCIDR, queryParams) as written there.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BucketRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_selectors: Vec<serde_json::Value>,
    pub limit: i64,
    pub window_ms: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadow_mode: bool,
}

#[cfg(test)]
mod tests {
    use super::Endpoint;

    /// The `Host` drops the scheme's default port, as HTTP clients and the SigV4 signer write
    /// it (a `:443` in Envoy's `Host` would break the signature of a real AWS request).
    #[test]
    fn host_headers_drop_only_the_default_port() {
        let fqdn = |port| Endpoint::Fqdn {
            hostname: "bedrock-runtime.us-east-1.amazonaws.com".into(),
            port,
        };
        assert_eq!(
            fqdn(443).host_header(true).as_deref(),
            Some("bedrock-runtime.us-east-1.amazonaws.com")
        );
        assert_eq!(
            fqdn(443).host_header(false).as_deref(),
            Some("bedrock-runtime.us-east-1.amazonaws.com:443")
        );
        assert_eq!(
            fqdn(8443).authority().as_deref(),
            Some("bedrock-runtime.us-east-1.amazonaws.com:8443")
        );
        let ip = |address: &str, port| Endpoint::Ip {
            address: address.into(),
            port,
        };
        assert_eq!(
            ip("127.0.0.1", 80).host_header(false).as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            ip("::1", 9000).host_header(false).as_deref(),
            Some("[::1]:9000")
        );
        assert_eq!(ip("::1", 443).host_header(true).as_deref(), Some("[::1]"));
        let unix = Endpoint::Unix { path: "/s".into() };
        assert_eq!(unix.host_header(true), None);
    }
}
