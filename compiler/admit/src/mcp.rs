//! Admission rules of MCPRoute: parent kinds, unique backend names, per-backend API keys and tool
//! selectors, and the security policy (JWT authorization needs OAuth, JWKS sources, ext_authz).

use crate::Cx;
use aigw_syntax::model::*;

pub(crate) fn admit(cx: &mut Cx<'_>, spec: &MCPRouteSpec) {
    if spec.parent_refs.iter().any(|p| p.kind != "Gateway") {
        cx.rule("spec.parentRefs", "only Gateway is supported");
    }
    let names: Vec<&str> = spec.backend_refs.iter().map(|b| b.name.as_str()).collect();
    if names
        .iter()
        .any(|n| names.iter().filter(|m| *m == n).count() > 1)
    {
        cx.rule("spec.backendRefs", "all backendRefs names must be unique");
    }
    for (i, backend) in spec.backend_refs.iter().enumerate() {
        admit_backend(cx, &format!("spec.backendRefs[{i}]"), backend);
    }
    if let Some(policy) = &spec.security_policy {
        admit_policy(cx, policy);
    }
}

fn needs_port(group: &str, kind: &str, port: Option<i32>) -> bool {
    group.is_empty() && kind == "Service" && port.is_none()
}

fn admit_backend(cx: &mut Cx<'_>, at: &str, backend: &McpBackendRef) {
    if needs_port(&backend.group, &backend.kind, backend.port) {
        cx.rule(at, "Must have port for Service reference");
    }
    if let Some(key) = backend
        .security_policy
        .as_ref()
        .and_then(|p| p.api_key.as_ref())
    {
        let at = format!("{at}.securityPolicy.apiKey");
        if key.secret_ref.is_some() == key.inline.is_some() {
            cx.rule(&at, "exactly one of secretRef or inline must be set");
        }
        if key.header.is_some() && key.query_param.is_some() {
            cx.rule(&at, "only one of header or queryParam can be set");
        }
    }
    if let Some(selector) = &backend.tool_selector {
        let at = format!("{at}.toolSelector");
        if selector.include.is_some() && selector.include_regex.is_some() {
            cx.rule(&at, "include and includeRegex are mutually exclusive");
        }
        if selector.exclude.is_some() && selector.exclude_regex.is_some() {
            cx.rule(&at, "exclude and excludeRegex are mutually exclusive");
        }
        let none = selector.include.is_none()
            && selector.include_regex.is_none()
            && selector.exclude.is_none()
            && selector.exclude_regex.is_none();
        if none {
            cx.rule(
                &at,
                "at least one of include, includeRegex, exclude, or excludeRegex must be specified",
            );
        }
        // The data plane matches them whole against each tool name; one that does not compile
        // would refuse the whole table at load.
        for (list, patterns) in [
            ("includeRegex", &selector.include_regex),
            ("excludeRegex", &selector.exclude_regex),
        ] {
            for (i, pattern) in patterns.iter().flatten().enumerate() {
                crate::route::check_regex(cx, &format!("{at}.{list}[{i}]"), pattern);
            }
        }
    }
}

fn admit_policy(cx: &mut Cx<'_>, policy: &McpSecurityPolicy) {
    if let Some(authorization) = &policy.authorization {
        let uses_jwt = authorization.rules.iter().any(|r| r.source.is_some());
        if uses_jwt && policy.oauth.is_none() {
            cx.rule(
                "spec.securityPolicy",
                "oauth must be configured when any authorization rule uses a jwt source",
            );
        }
        for (i, rule) in authorization.rules.iter().enumerate() {
            let Some(source) = &rule.source else { continue };
            let at = format!("spec.securityPolicy.authorization.rules[{i}].source.jwt");
            if source.jwt.scopes.is_empty() && source.jwt.claims.is_empty() {
                cx.rule(&at, "either scopes or claims must be specified");
            }
            if source.jwt.claims.iter().any(|c| c.name == "scope") {
                cx.rule(
                    &format!("{at}.claims"),
                    "'scope' claim name is reserved for OAuth scopes",
                );
            }
        }
    }
    if let Some(jwks) = policy.oauth.as_ref().and_then(|o| o.jwks.as_ref()) {
        admit_jwks(cx, jwks);
    }
    if let Some(ext_auth) = &policy.ext_auth {
        admit_ext_auth(cx, ext_auth);
    }
}

fn admit_jwks(cx: &mut Cx<'_>, jwks: &McpJwks) {
    let at = "spec.securityPolicy.oauth.jwks";
    match (&jwks.remote_jwks, &jwks.local_jwks) {
        (None, None) => cx.rule(at, "either remoteJWKS or localJWKS must be specified."),
        (Some(_), Some(_)) => cx.rule(at, "remoteJWKS and localJWKS cannot both be specified."),
        _ => {}
    }
    if let Some(local) = &jwks.local_jwks {
        let ok = match local.jwks_type {
            McpLocalJwksType::Inline => local.inline.is_some() && local.value_ref.is_none(),
            McpLocalJwksType::ValueRef => local.inline.is_none() && local.value_ref.is_some(),
        };
        if !ok {
            cx.rule(
                &format!("{at}.localJWKS"),
                "Exactly one of inline or valueRef must be set with correct type.",
            );
        }
    }
    if let Some(remote) = &jwks.remote_jwks {
        let at = format!("{at}.remoteJWKS");
        if let Some(backend) = &remote.backend_ref {
            cx.rule(
                &at,
                "BackendRefs must be used, backendRef is not supported.",
            );
            if needs_port(&backend.group, &backend.kind, backend.port) {
                cx.rule(
                    &format!("{at}.backendRef"),
                    "Must have port for Service reference",
                );
            }
        }
        envoy_backend_refs(cx, &at, &remote.backend_refs);
        if let Some(settings) = &remote.backend_settings {
            if settings.pointer("/retry/perRetry/timeout").is_some() {
                cx.rule(&at, "Retry timeout is not supported.");
            }
            if settings.pointer("/retry/retryOn/httpStatusCodes").is_some() {
                cx.rule(&at, "HTTPStatusCodes is not supported.");
            }
        }
    }
}

fn envoy_backend_refs(cx: &mut Cx<'_>, at: &str, refs: &[McpEnvoyBackendRef]) {
    for (i, backend) in refs.iter().enumerate() {
        if needs_port(&backend.group, &backend.kind, backend.port) {
            cx.rule(
                &format!("{at}.backendRefs[{i}]"),
                "Must have port for Service reference",
            );
        }
    }
}

fn admit_ext_auth(cx: &mut Cx<'_>, ext_auth: &McpExtAuth) {
    let at = "spec.securityPolicy.extAuth";
    match (&ext_auth.grpc, &ext_auth.http) {
        (None, None) => cx.rule(at, "one of grpc or http must be specified"),
        (Some(_), Some(_)) => cx.rule(at, "only one of grpc or http can be specified"),
        _ => {}
    }
    for (i, extension) in ext_auth.context_extensions.iter().enumerate() {
        let at = format!("{at}.contextExtensions[{i}]");
        let ok = match extension.extension_type {
            McpContextExtensionType::Value => {
                extension.value.is_some() && extension.value_ref.is_none()
            }
            McpContextExtensionType::ValueRef => {
                extension.value.is_none() && extension.value_ref.is_some()
            }
        };
        if !ok {
            cx.rule(
                &at,
                "Exactly one of value or valueRef must be set with correct type.",
            );
        }
        if let Some(value_ref) = &extension.value_ref {
            let kind_ok = matches!(value_ref.kind.as_str(), "ConfigMap" | "Secret");
            if !kind_ok || !matches!(value_ref.group.as_str(), "" | "v1") {
                cx.rule(
                    &format!("{at}.valueRef"),
                    "Only a reference to an object of kind ConfigMap or Secret belonging to default v1 API group is supported.",
                );
            }
        }
    }
    if let Some(grpc) = &ext_auth.grpc {
        ext_auth_backends(
            cx,
            &format!("{at}.grpc"),
            grpc.backend_ref.as_ref(),
            &grpc.backend_refs,
        );
    }
    if let Some(http) = &ext_auth.http {
        let at = format!("{at}.http");
        ext_auth_backends(cx, &at, http.backend_ref.as_ref(), &http.backend_refs);
        if http.path.is_some() && http.path_override.is_some() {
            cx.rule(&at, "only one of path or pathOverride can be specified");
        }
    }
}

fn ext_auth_backends(
    cx: &mut Cx<'_>,
    at: &str,
    backend_ref: Option<&BackendObjectReference>,
    backend_refs: &[McpEnvoyBackendRef],
) {
    if backend_ref.is_none() && backend_refs.is_empty() {
        cx.rule(at, "backendRef or backendRefs needs to be set");
    }
    if !backend_refs
        .iter()
        .all(|f| matches!(f.kind.as_str(), "Service" | "ServiceImport" | "Backend"))
    {
        cx.rule(
            at,
            "BackendRefs only supports Service, ServiceImport, and Backend kind.",
        );
    }
    let groups = ["", "multicluster.x-k8s.io", ENVOY_GATEWAY_GROUP];
    if !backend_refs
        .iter()
        .all(|f| groups.contains(&f.group.as_str()))
    {
        cx.rule(at, "BackendRefs only supports Core, multicluster.x-k8s.io, and gateway.envoyproxy.io groups.");
    }
    if let Some(backend) = backend_ref
        && needs_port(&backend.group, &backend.kind, backend.port)
    {
        cx.rule(
            &format!("{at}.backendRef"),
            "Must have port for Service reference",
        );
    }
    envoy_backend_refs(cx, at, backend_refs);
}
