//! The caller policies in the table: each SecurityPolicy aigw applies becomes one `callers`
//! entry, each ModelAccessPolicy one `access` entry, each BackendTrafficPolicy with a
//! `rateLimit` one `rate_limits` entry, each PromptGuardPolicy a `guards` entry, each
//! ResponseCachePolicy a `caches` entry and each EnvoyExtensionPolicy with `wasm` an
//! `extensions` entry, and every Gateway, listener
//! and route names the ones that target it directly (the data plane takes the route's, else
//! the listener's, else the Gateway's). Secrets are named, never read.

use aigw_ir::{Edge, Ir, Key, NodeId};
use aigw_syntax::model::{
    ApiKeyAuth, BackendTrafficPolicySpec, CacheScope, CacheStore, EnvoyExtensionPolicySpec,
    GuardAction, GuardCheck, ModelAccessPolicySpec, PromptGuardPolicySpec, ResponseCachePolicySpec,
    SecurityPolicySpec, XRateLimitHeaders,
};
use aigw_syntax::{Kind, Object, Spec};
use aigw_table as t;
use std::collections::HashMap;

/// The policies of the table and their indices by node.
#[derive(Default)]
pub(crate) struct Index {
    pub callers: Vec<t::Callers>,
    pub access: Vec<t::ModelAccess>,
    pub rate_limits: Vec<t::RateLimit>,
    pub guards: Vec<t::Guard>,
    pub caches: Vec<t::Cache>,
    pub extensions: Vec<t::Extensions>,
    cache_of: HashMap<NodeId, usize>,
    extensions_of: HashMap<NodeId, usize>,
    caller_of: HashMap<NodeId, usize>,
    guard_of: HashMap<NodeId, usize>,
    access_of: HashMap<NodeId, usize>,
    limit_of: HashMap<NodeId, usize>,
}

impl Index {
    pub fn build(ir: &Ir) -> Self {
        let mut index = Index::default();
        for (id, object) in ir.objects(Kind::SecurityPolicy) {
            if let Some(Spec::SecurityPolicy(spec)) = &object.spec
                && spec.applies()
            {
                index.caller_of.insert(id, index.callers.len());
                index.callers.push(callers(object, spec));
            }
        }
        for (id, object) in ir.objects(Kind::BackendTrafficPolicy) {
            if let Some(Spec::BackendTrafficPolicy(spec)) = &object.spec
                && spec.rate_limit.is_some()
            {
                index.limit_of.insert(id, index.rate_limits.len());
                index.rate_limits.push(rate_limit(object, spec));
            }
        }
        for (id, object) in ir.objects(Kind::PromptGuardPolicy) {
            if let Some(Spec::PromptGuardPolicy(spec)) = &object.spec {
                index.guard_of.insert(id, index.guards.len());
                index.guards.push(guard(object, spec));
            }
        }
        for (id, object) in ir.objects(Kind::EnvoyExtensionPolicy) {
            if let Some(Spec::EnvoyExtensionPolicy(spec)) = &object.spec
                && !spec.wasm.is_empty()
            {
                index.extensions_of.insert(id, index.extensions.len());
                index.extensions.push(extensions(object, spec));
            }
        }
        for (id, object) in ir.objects(Kind::ResponseCachePolicy) {
            if let Some(Spec::ResponseCachePolicy(spec)) = &object.spec {
                index.cache_of.insert(id, index.caches.len());
                index.caches.push(cache(object, spec));
            }
        }
        for (id, object) in ir.objects(Kind::ModelAccessPolicy) {
            if let Some(Spec::ModelAccessPolicy(spec)) = &object.spec {
                index.access_of.insert(id, index.access.len());
                index.access.push(access(object, spec));
            }
        }
        index
    }

    /// The policies that target `id` directly (the first by name of each kind: two are a
    /// compile error).
    pub fn of(&self, ir: &Ir, id: NodeId) -> t::CallerPolicies {
        let mut sources: Vec<NodeId> = ir
            .sources(id, |e| e == Edge::Targets)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        sources.sort_by_key(|p| ir.key_of(*p).clone());
        t::CallerPolicies {
            callers: sources.iter().find_map(|p| self.caller_of.get(p).copied()),
            access: sources.iter().find_map(|p| self.access_of.get(p).copied()),
            rate_limit: sources.iter().find_map(|p| self.limit_of.get(p).copied()),
            guard: sources.iter().find_map(|p| self.guard_of.get(p).copied()),
            cache: sources.iter().find_map(|p| self.cache_of.get(p).copied()),
            extensions: sources
                .iter()
                .find_map(|p| self.extensions_of.get(p).copied()),
        }
    }

    /// The policies of a Gateway's listener.
    pub fn of_listener(&self, ir: &Ir, gateway: &Object, listener: &str) -> t::CallerPolicies {
        let key = Key::object(Kind::Gateway, &gateway.namespace, &gateway.name)
            .child(format!("listeners[{listener}]"));
        ir.find(&key).map(|id| self.of(ir, id)).unwrap_or_default()
    }
}

fn callers(policy: &Object, spec: &SecurityPolicySpec) -> t::Callers {
    let mut callers = t::Callers {
        name: crate::name(policy),
        jwt: spec.jwt.as_ref().map(crate::caller_auth::jwt),
        authorization: spec
            .authorization
            .as_ref()
            .map(crate::caller_auth::authorization),
        cors: spec.cors.as_ref().map(crate::caller_auth::cors),
        ..t::Callers::default()
    };
    if let Some(auth) = &spec.api_key_auth {
        api_keys(policy, auth, &mut callers);
    }
    callers
}

fn api_keys(policy: &Object, auth: &ApiKeyAuth, callers: &mut t::Callers) {
    let extract_from = auth
        .extract_from
        .iter()
        .flat_map(|source| {
            let headers = source
                .headers
                .iter()
                .flatten()
                .cloned()
                .map(t::KeySource::Header);
            let params = source
                .params
                .iter()
                .flatten()
                .cloned()
                .map(t::KeySource::Param);
            let cookies = source
                .cookies
                .iter()
                .flatten()
                .cloned()
                .map(t::KeySource::Cookie);
            headers.chain(params).chain(cookies)
        })
        .collect();
    callers.credentials = auth
        .credential_refs
        .iter()
        .map(|secret| t::ObjectRef {
            kind: "Secret".to_owned(),
            namespace: secret
                .namespace
                .clone()
                .unwrap_or_else(|| policy.namespace.clone()),
            name: secret.name.clone(),
        })
        .collect();
    callers.extract_from = extract_from;
    callers.forward_client_id_header = auth.forward_client_id_header.clone();
    callers.sanitize = auth.sanitize.unwrap_or(false);
}

fn rate_limit(policy: &Object, spec: &BackendTrafficPolicySpec) -> t::RateLimit {
    let rules = spec
        .rules()
        .into_iter()
        .map(|(at, global, rule)| t::RateRule {
            client_selectors: policy
                .origin
                .node_at(&format!("{at}.clientSelectors"))
                .and_then(|n| n.to_json().as_array().cloned())
                .unwrap_or_default(),
            requests: u64::from(rule.limit.requests),
            window_ms: rule.limit.unit.millis(),
            global,
            shared: rule.shared.unwrap_or(false),
            shadow_mode: rule.shadow_mode.unwrap_or(false),
            no_headers: rule.x_rate_limit_headers == Some(XRateLimitHeaders::Off),
            request_cost: rule
                .cost
                .as_ref()
                .and_then(|c| c.request.as_ref())
                .and_then(|r| r.number)
                .unwrap_or(1),
            response_cost: rule
                .cost
                .as_ref()
                .and_then(|c| c.response.as_ref())
                .and_then(|r| r.number),
            response_cost_key: rule
                .cost
                .as_ref()
                .and_then(|c| c.response.as_ref())
                .and_then(|r| r.metadata.as_ref())
                .map(|m| m.key.clone()),
        })
        .collect();
    t::RateLimit {
        name: crate::name(policy),
        rules,
    }
}

fn guard(policy: &Object, spec: &PromptGuardPolicySpec) -> t::Guard {
    let checks = |checks: &[GuardCheck]| {
        checks
            .iter()
            .map(|c| t::GuardCheck {
                detector: c.detector.map(|d| d.as_str().to_owned()),
                pattern: c.pattern.clone(),
                mask: c.action == GuardAction::Mask,
            })
            .collect()
    };
    t::Guard {
        name: crate::name(policy),
        request: checks(&spec.request),
        response: checks(&spec.response),
    }
}

fn extensions(policy: &Object, spec: &EnvoyExtensionPolicySpec) -> t::Extensions {
    let name = crate::name(policy);
    let wasm = spec
        .wasm
        .iter()
        .enumerate()
        .map(|(i, w)| t::WasmModule {
            name: w.name.clone().unwrap_or_else(|| format!("{name}/wasm/{i}")),
            root_id: w.root_id.clone().unwrap_or_default(),
            path: w
                .code
                .http
                .as_ref()
                .map(|h| h.url.clone())
                .unwrap_or_default(),
            sha256: w.code.http.as_ref().and_then(|h| h.sha256.clone()),
            config: w.config.as_ref().map(|c| c.to_string()).unwrap_or_default(),
            fail_open: w.fail_open.unwrap_or(false),
        })
        .collect();
    t::Extensions { name, wasm }
}

fn cache(policy: &Object, spec: &ResponseCachePolicySpec) -> t::Cache {
    const TTL_MS: u64 = 300_000;
    const MAX_BYTES: u64 = 64 << 20;
    const MAX_ENTRY_BYTES: u64 = 1 << 20;
    t::Cache {
        name: crate::name(policy),
        ttl_ms: spec
            .ttl
            .as_deref()
            .and_then(aigw_syntax::values::parse_duration)
            .map_or(TTL_MS, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        redis: spec.store == CacheStore::Redis,
        max_bytes: spec.max_bytes.unwrap_or(MAX_BYTES),
        max_entry_bytes: spec.max_entry_bytes.unwrap_or(MAX_ENTRY_BYTES),
        shared: spec.scope == CacheScope::Shared,
        bypass_header: spec
            .bypass_header
            .as_deref()
            .unwrap_or("x-aigw-cache-bypass")
            .to_ascii_lowercase(),
        non_deterministic: spec.non_deterministic.unwrap_or(false),
    }
}

fn access(policy: &Object, spec: &ModelAccessPolicySpec) -> t::ModelAccess {
    t::ModelAccess {
        name: crate::name(policy),
        rules: spec
            .rules
            .iter()
            .map(|r| t::AccessRule {
                clients: r.clients.clone(),
                models: r.models.clone(),
            })
            .collect(),
    }
}
