//! One constructor per diagnostic the graph passes report.

use aigw_diag::{Diagnostic, Severity, Span, about_field, codes};

/// A reference to an object that is not in the input. With `--open` it is a warning: the object
/// may live in another repository.
pub(crate) fn unresolved(span: Span, field: &str, what: &str, open: bool) -> Diagnostic {
    let severity = if open {
        Severity::Warning
    } else {
        Severity::Error
    };
    Diagnostic::new(
        severity,
        codes::UNRESOLVED_REFERENCE,
        about_field(field, format_args!("{what} is not defined in the input")),
    )
    .with_primary(span, "referenced here")
    .with_field(field)
    .with_help(if open {
        "assumed to exist elsewhere (--open)"
    } else {
        "add it to the input, fix the name or namespace, or pass --open if it is defined elsewhere"
    })
}

/// A route whose parent Gateway has no listener: Gateway API reports it not accepted.
pub(crate) fn parent_without_listeners(span: Span, field: &str, what: &str) -> Diagnostic {
    Diagnostic::error(
        codes::PARENT_WITHOUT_LISTENERS,
        about_field(
            field,
            format_args!("{what} has no listeners, so this route attaches to nothing"),
        ),
    )
    .with_primary(span, "parent here")
    .with_field(field)
    .with_help("give the Gateway at least one listener (Gateway API requires one)")
}

pub(crate) fn not_permitted(
    span: Span,
    field: &str,
    what: &str,
    namespace: &str,
    from: &str,
) -> Diagnostic {
    Diagnostic::error(
        codes::REFERENCE_NOT_PERMITTED,
        about_field(
            field,
            format_args!("cross-namespace reference to {what} is not permitted"),
        ),
    )
    .with_primary(span, "crosses namespaces")
    .with_field(field)
    .with_help(format!(
        "add a ReferenceGrant in namespace `{namespace}` that allows {from}"
    ))
}

pub(crate) fn conflicting_policies(
    span: Span,
    target: &str,
    policies: &[String],
    others: Vec<(Span, String)>,
) -> Diagnostic {
    let mut d = Diagnostic::error(
        codes::CONFLICTING_SECURITY_POLICIES,
        format!("{target} is targeted by {} BackendSecurityPolicies: {}", policies.len(), policies.join(", ")),
    )
    .with_primary(span, "one target")
    .with_help("at most one BackendSecurityPolicy may target an AIServiceBackend or InferencePool: which one would sign the request is undefined");
    for (span, label) in others {
        d = d.with_secondary(span, label);
    }
    d.with_field("spec.targetRefs")
}

pub(crate) fn no_common_endpoint(span: Span, field: &str, backends: &str) -> Diagnostic {
    Diagnostic::error(
        codes::NO_COMMON_ENDPOINT,
        about_field(field, format_args!("the backends of this rule serve no client endpoint in common: {backends}")),
    )
    .with_primary(span, "no request can be served by every backend")
    .with_field(field)
    .with_help("a rule fails over between its backends, so each must serve the client's endpoint; split the rule by endpoint")
}

/// A cloud backend no BackendSecurityPolicy targets: valid (the reference deploys such
/// manifests), and the data plane signs with the cloud's ambient chain; said as a warning so
/// that a forgotten policy is not silent.
pub(crate) fn missing_credentials(span: Span, schema: &str, chain: &str) -> Diagnostic {
    Diagnostic::warning(
        codes::MISSING_CREDENTIALS,
        format!(
            "no BackendSecurityPolicy targets this {schema} backend: it will use the ambient credential chain where the data plane runs ({chain})"
        ),
    )
    .with_primary(span, "credentials from the data plane's environment")
    .with_field("spec.schema.name")
    .with_help(
        "add a BackendSecurityPolicy whose targetRefs names this AIServiceBackend to give it credentials of its own",
    )
}

pub(crate) fn duplicate_model(
    span: Span,
    model: &str,
    gateway: &str,
    first: Span,
    first_where: &str,
) -> Diagnostic {
    Diagnostic::warning(
        codes::DUPLICATE_MODEL,
        format!("model `{model}` is matched exactly by two rules on {gateway}; only the first ({first_where}) is reachable"),
    )
    .with_primary(span, "shadowed")
    .with_secondary(first, "this rule wins")
    .with_help("Envoy matches rules in order and the first wins; remove one or make the matches differ")
}

pub(crate) fn secret_key_missing(
    span: Span,
    field: &str,
    secret: &str,
    key: &str,
    present: &[String],
) -> Diagnostic {
    let have = if present.is_empty() {
        "it has no keys".to_owned()
    } else {
        format!(
            "it has {}",
            present
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Diagnostic::error(
        codes::SECRET_KEY_MISSING,
        about_field(field, format_args!("{secret} has no key `{key}`; {have}")),
    )
    .with_primary(span, "references the Secret")
    .with_field(field)
    .with_help(format!("add `{key}` to the Secret's data or stringData"))
}

/// A policy section (or target kind) aigw does not apply: refused, so that an authentication
/// is never silently dropped.
pub(crate) fn unsupported_policy(span: Span, field: &str, what: &str, help: &str) -> Diagnostic {
    Diagnostic::error(
        codes::UNSUPPORTED_POLICY,
        about_field(field, format_args!("aigw does not apply {what}")),
    )
    .with_primary(span, "not applied by aigw")
    .with_field(field)
    .with_help(help.to_owned())
}

/// Two caller policies of one kind on one target (`kind` is SecurityPolicy or
/// ModelAccessPolicy).
pub(crate) fn conflicting_caller_policies(
    span: Span,
    field: &str,
    target: &str,
    kind: &str,
    policies: &[String],
) -> Diagnostic {
    let code = match kind {
        "SecurityPolicy" => codes::CONFLICTING_SECURITY_POLICIES,
        "BackendTrafficPolicy" => codes::CONFLICTING_TRAFFIC_POLICIES,
        "PromptGuardPolicy" => codes::CONFLICTING_GUARD_POLICIES,
        "ResponseCachePolicy" => codes::CONFLICTING_CACHE_POLICIES,
        "EnvoyExtensionPolicy" => codes::CONFLICTING_EXTENSION_POLICIES,
        _ => codes::CONFLICTING_ACCESS_POLICIES,
    };
    Diagnostic::error(
        code,
        format!(
            "{target} is targeted by {} {}: {}",
            policies.len(),
            kind.replace("Policy", "Policies"),
            policies.join(", ")
        ),
    )
    .with_primary(span, "one target")
    .with_field(field)
    .with_help(format!(
        "at most one {kind} may target a Gateway, a listener or a route: which one applies is undefined (Envoy Gateway keeps the oldest and marks the others Conflicted)"
    ))
}

pub(crate) fn access_without_callers(span: Span, route: &str) -> Diagnostic {
    Diagnostic::error(
        codes::ACCESS_WITHOUT_CALLERS,
        format!("this ModelAccessPolicy applies to {route}, where no caller is authenticated"),
    )
    .with_primary(span, "the callers it names cannot be known")
    .with_field("spec.targetRefs")
    .with_help(
        "attach a SecurityPolicy with `apiKeyAuth` to the route or its Gateway: its client IDs are the callers a ModelAccessPolicy names",
    )
}

/// A section of an Envoy Gateway policy that Envoy applies and aigw's data plane does not.
pub(crate) fn policy_section_ignored(
    span: Span,
    field: &str,
    kind: &str,
    applied: &str,
) -> Diagnostic {
    Diagnostic::warning(
        codes::POLICY_SECTION_IGNORED,
        about_field(
            field,
            format_args!("aigw's data plane does not apply this {kind} section; Envoy (Gateway) does"),
        ),
    )
    .with_primary(span, "applied by Envoy only")
    .with_field(field)
    .with_help(format!("served by `aigw run` or `aigw serve`, requests on this target go without it; {applied} is what aigw applies"))
}

/// An MCPRoute's JWK set that aigw does not read (a ConfigMap): the route refuses every token
/// rather than admitting any, and says so.
pub(crate) fn mcp_keys_unread(span: Span, field: &str, what: &str) -> Diagnostic {
    Diagnostic::warning(
        codes::MCP_KEYS_UNREAD,
        about_field(
            field,
            format_args!(
                "aigw does not read {what} yet: every token sent to this route is refused"
            ),
        ),
    )
    .with_primary(span, "not read by aigw")
    .with_field(field)
    .with_help(
        "write the key set `inline` (type: Inline), or serve it and use `remoteJWKS`".to_owned(),
    )
}
