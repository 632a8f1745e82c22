//! Whole-graph checks: one BackendSecurityPolicy per target, credentials for the schemas that
//! need them, endpoint × schema compatibility per rule, exact models shadowed on one Gateway, and
//! the keys of Secrets that are in the input.

use crate::diagnostics;
use crate::endpoints;
use aigw_diag::{Diagnostic, Span};
use aigw_ir::{Edge, Ir, Node, NodeId};
use aigw_syntax::model::*;
use aigw_syntax::{Kind, Object, Spec};
use std::collections::BTreeMap;

/// The header the model is matched on.
pub const MODEL_HEADER: &str = "x-ai-eg-model";

pub(crate) fn check(ir: &Ir) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    policy_targets(ir, &mut out);
    rule_endpoints(ir, &mut out);
    shadowed_models(ir, &mut out);
    secret_keys(ir, &mut out);
    out
}

fn object(ir: &Ir, id: NodeId) -> Option<&Object> {
    match ir.node(id) {
        Node::Object(o) => Some(o),
        _ => None,
    }
}

/// Conflicting policies on one target, and cloud backends with no policy (ambient credentials).
fn policy_targets(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for kind in [Kind::AIServiceBackend, Kind::InferencePool] {
        for (_, id) in ir.nodes_of(kind) {
            let Some(target) = object(ir, id) else {
                continue;
            };
            let policies: Vec<&Object> = ir
                .incoming(id)
                .into_iter()
                .filter(|(edge, _)| *edge == Edge::Targets)
                .filter_map(|(_, from)| object(ir, from))
                .filter(|o| o.kind == Kind::BackendSecurityPolicy)
                .collect();
            if policies.len() > 1 {
                let names: Vec<String> = policies.iter().map(|p| format!("`{}`", p.name)).collect();
                let others = policies
                    .iter()
                    .map(|p| {
                        (
                            target_ref_span(p, &target.name),
                            format!("BackendSecurityPolicy `{}` targets it", p.name),
                        )
                    })
                    .collect();
                let what = format!(
                    "{} `{}/{}`",
                    target.kind_name, target.namespace, target.name
                );
                let span = target.origin.span_of("metadata.name");
                out.push(
                    diagnostics::conflicting_policies(span, &what, &names, others)
                        .with_resource(target.resource()),
                );
            }
            if let Some(Spec::AIServiceBackend(spec)) = &target.spec
                && policies.is_empty()
                && let Some(chain) = endpoints::ambient_chain(spec.schema.name)
            {
                let span = target.origin.span_of("spec.schema.name");
                out.push(
                    diagnostics::missing_credentials(span, spec.schema.name.as_str(), chain)
                        .with_resource(target.resource()),
                );
            }
        }
    }
}

fn target_ref_span(policy: &Object, target: &str) -> Span {
    let Some(Spec::BackendSecurityPolicy(spec)) = &policy.spec else {
        return policy.origin.span_of("spec");
    };
    match spec.target_refs.iter().position(|r| r.name == target) {
        Some(i) => policy.origin.span_of(&format!("spec.targetRefs[{i}].name")),
        None => policy.origin.span_of("spec.targetRefs"),
    }
}

/// Every rule's AIServiceBackends must share at least one client endpoint.
fn rule_endpoints(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, rule_id) in ir.nodes_of(Kind::AIGatewayRoute) {
        let Node::Rule { route, index } = ir.node(rule_id) else {
            continue;
        };
        let mut schemas = Vec::new();
        for (_, ref_id) in ir.outgoing(rule_id) {
            for (edge, target) in ir.outgoing(ref_id) {
                let Edge::Backend { .. } = edge else { continue };
                if let Some(Object {
                    spec: Some(Spec::AIServiceBackend(spec)),
                    name,
                    ..
                }) = object(ir, target)
                {
                    schemas.push((name.clone(), spec.schema.name));
                }
            }
        }
        let kinds: Vec<ApiSchemaName> = schemas.iter().map(|(_, s)| *s).collect();
        if schemas.len() > 1 && endpoints::common(&kinds).is_empty() {
            let list = schemas
                .iter()
                .map(|(name, schema)| {
                    let served = endpoints::served_by(*schema)
                        .iter()
                        .map(|e| e.path())
                        .collect::<Vec<_>>()
                        .join(", ");
                    format!("`{name}` ({}: {served})", schema.as_str())
                })
                .collect::<Vec<_>>()
                .join("; ");
            let field = format!("spec.rules[{index}].backendRefs");
            let span = route.origin.span_of(&field);
            out.push(
                diagnostics::no_common_endpoint(span, &field, &list)
                    .with_resource(route.resource()),
            );
        }
    }
}

/// A rule match on exactly one header, the model header, compared exactly.
fn exact_models(rule: &RouteRule) -> impl Iterator<Item = (usize, &str)> {
    rule.matches
        .iter()
        .enumerate()
        .filter_map(|(m, matched)| match matched.headers.as_slice() {
            [only]
                if only.match_type == HeaderMatchType::Exact
                    && only.name.eq_ignore_ascii_case(MODEL_HEADER) =>
            {
                Some((m, only.value.as_str()))
            }
            _ => None,
        })
}

/// The same exact model on two rules of one Gateway (with the same hostnames): the first rule in
/// route order (namespace, name, rule index) wins and the second can never match.
fn shadowed_models(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, gateway_id) in ir.nodes_of(Kind::Gateway) {
        let Some(gateway) = object(ir, gateway_id) else {
            continue;
        };
        let mut seen: BTreeMap<(Vec<String>, String), (Span, String)> = BTreeMap::new();
        for (edge, route_id) in ir.incoming(gateway_id) {
            if edge != Edge::Parent {
                continue;
            }
            let Some(route) = object(ir, route_id) else {
                continue;
            };
            let Some(Spec::AIGatewayRoute(spec)) = &route.spec else {
                continue;
            };
            let mut hosts: Vec<String> = spec.hostnames.iter().map(|h| h.0.clone()).collect();
            hosts.sort();
            for (r, rule) in spec.rules.iter().enumerate() {
                for (m, model) in exact_models(rule) {
                    let field = format!("spec.rules[{r}].matches[{m}].headers[0].value");
                    let span = route.origin.span_of(&field);
                    let here = format!(
                        "AIGatewayRoute `{}/{}` rule {r}",
                        route.namespace, route.name
                    );
                    match seen.get(&(hosts.clone(), model.to_owned())) {
                        Some((first, first_where)) => {
                            let gw = format!("Gateway `{}/{}`", gateway.namespace, gateway.name);
                            out.push(
                                diagnostics::duplicate_model(span, model, &gw, *first, first_where)
                                    .with_resource(route.resource())
                                    .with_field(field),
                            );
                        }
                        None => {
                            seen.insert((hosts.clone(), model.to_owned()), (span, here));
                        }
                    }
                }
            }
        }
    }
}

/// The Secret references of a BackendSecurityPolicy with the field path of each.
pub(crate) fn policy_secrets(
    spec: &BackendSecurityPolicySpec,
) -> Vec<(String, &SecretObjectReference)> {
    let mut refs = Vec::new();
    let keys = [
        (
            "spec.apiKey.secretRef",
            spec.api_key.as_ref().map(|k| &k.secret_ref),
        ),
        (
            "spec.azureAPIKey.secretRef",
            spec.azure_api_key.as_ref().map(|k| &k.secret_ref),
        ),
        (
            "spec.anthropicAPIKey.secretRef",
            spec.anthropic_api_key.as_ref().map(|k| &k.secret_ref),
        ),
    ];
    refs.extend(
        keys.into_iter()
            .filter_map(|(f, r)| r.map(|r| (f.to_owned(), r))),
    );
    if let Some(aws) = &spec.aws_credentials
        && let Some(file) = &aws.credentials_file
    {
        refs.push((
            "spec.awsCredentials.credentialsFile.secretRef".to_owned(),
            &file.secret_ref,
        ));
    }
    if let Some(azure) = &spec.azure_credentials
        && let Some(secret) = &azure.client_secret_ref
    {
        refs.push(("spec.azureCredentials.clientSecretRef".to_owned(), secret));
    }
    if let Some(gcp) = &spec.gcp_credentials
        && let Some(file) = &gcp.credentials_file
    {
        refs.push((
            "spec.gcpCredentials.credentialsFile.secretRef".to_owned(),
            &file.secret_ref,
        ));
    }
    let exchanges = [
        (
            "spec.awsCredentials.oidcExchangeToken.oidc",
            spec.aws_credentials
                .as_ref()
                .and_then(|a| a.oidc_exchange_token.as_ref())
                .map(|o| &o.oidc),
        ),
        (
            "spec.azureCredentials.oidcExchangeToken.oidc",
            spec.azure_credentials
                .as_ref()
                .and_then(|a| a.oidc_exchange_token.as_ref())
                .map(|o| &o.oidc),
        ),
        (
            "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc",
            spec.gcp_credentials
                .as_ref()
                .and_then(|g| g.workload_identity_federation_config.as_ref())
                .map(|w| &w.oidc_exchange_token.oidc),
        ),
    ];
    for (at, oidc) in exchanges {
        let Some(oidc) = oidc else { continue };
        refs.push((format!("{at}.clientSecret"), &oidc.client_secret));
        if let Some(id) = &oidc.client_id_ref {
            refs.push((format!("{at}.clientIDRef"), id));
        }
    }
    refs
}

/// The Secret key a reference at `field` needs, as the reference data plane reads it.
fn required_key(field: &str) -> Option<&'static str> {
    Some(match field {
        f if f.ends_with("apiKey.secretRef") || f.ends_with("APIKey.secretRef") => "apiKey",
        f if f.ends_with("oidc.clientSecret") => "client-secret",
        f if f.ends_with("oidc.clientIDRef") => "client-id",
        f if f.starts_with("spec.awsCredentials") => "credentials",
        f if f.starts_with("spec.azureCredentials") => "client-secret",
        f if f.starts_with("spec.gcpCredentials") => "service_account.json",
        _ => return None,
    })
}

/// Referenced Secrets that are in the input must hold the key their user reads.
fn secret_keys(ir: &Ir, out: &mut Vec<Diagnostic>) {
    for (_, policy_id) in ir.nodes_of(Kind::BackendSecurityPolicy) {
        let Some(policy) = object(ir, policy_id) else {
            continue;
        };
        let Some(Spec::BackendSecurityPolicy(spec)) = &policy.spec else {
            continue;
        };
        for (field, secret) in policy_secrets(spec) {
            let Some(key) = required_key(&field) else {
                continue;
            };
            check_secret(ir, policy, &field, secret, &[key], out);
        }
    }
    for (_, gateway_id) in ir.nodes_of(Kind::Gateway) {
        let Some(gateway) = object(ir, gateway_id) else {
            continue;
        };
        let Some(Spec::Gateway(spec)) = &gateway.spec else {
            continue;
        };
        for (i, listener) in spec.listeners.iter().enumerate() {
            for (c, cert) in listener
                .tls
                .iter()
                .flat_map(|t| t.certificate_refs.iter())
                .enumerate()
            {
                let field = format!("spec.listeners[{i}].tls.certificateRefs[{c}]");
                check_secret(ir, gateway, &field, cert, &["tls.crt", "tls.key"], out);
            }
        }
    }
}

pub(crate) fn check_secret(
    ir: &Ir,
    user: &Object,
    field: &str,
    secret: &SecretObjectReference,
    keys: &[&str],
    out: &mut Vec<Diagnostic>,
) {
    let namespace = secret.namespace.as_deref().unwrap_or(&user.namespace);
    let Some(id) = ir.find(&aigw_ir::Key::object(Kind::Secret, namespace, &secret.name)) else {
        return;
    };
    let Some(Object {
        spec: Some(Spec::Secret(present)),
        ..
    }) = object(ir, id)
    else {
        return;
    };
    for key in keys {
        if !present.iter().any(|k| k == key) {
            let what = format!("Secret `{namespace}/{}`", secret.name);
            let span = user.origin.span_of(&format!("{field}.name"));
            out.push(
                diagnostics::secret_key_missing(span, field, &what, key, present)
                    .with_resource(user.resource()),
            );
        }
    }
}
