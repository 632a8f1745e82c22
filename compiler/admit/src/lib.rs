//! Admission: the per-object rules an API server with the reference CRDs applies (their CEL
//! `x-kubernetes-validations`, with the reference's message text), plus the per-object checks
//! the reference leaves to run time (cost expressions, regular expressions, timestamps), which
//! we refuse up front. Structural rules (types, enums, bounds, patterns) are `aigw-syntax`'s.
//!
//! Every rule looks at one object alone: references to other objects are the graph's job.

mod callers;
pub mod cel;
mod client_auth;
mod diagnostics;
mod http_route;
mod mcp;
mod route;
mod security;

use aigw_diag::Diagnostic;
use aigw_syntax::{Object, Spec};

/// Applies every admission rule of the object's kind and returns what it finds.
pub fn admit(object: &Object) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut cx = Cx {
        object,
        out: &mut out,
    };
    match &object.spec {
        Some(Spec::AIGatewayRoute(spec)) => route::admit_route(&mut cx, spec),
        Some(Spec::AIServiceBackend(spec)) => route::admit_backend(&mut cx, spec),
        Some(Spec::BackendSecurityPolicy(spec)) => security::admit(&mut cx, spec),
        Some(Spec::GatewayConfig(spec)) => route::admit_gateway_config(&mut cx, spec),
        Some(Spec::MCPRoute(spec)) => mcp::admit(&mut cx, spec),
        Some(Spec::QuotaPolicy(spec)) => route::admit_quota(&mut cx, spec),
        Some(Spec::SecurityPolicy(spec)) => {
            callers::admit_security_policy(&mut cx, spec);
            client_auth::admit_client_auth(&mut cx, spec);
        }
        Some(Spec::ModelAccessPolicy(spec)) => callers::admit_model_access(&mut cx, spec),
        Some(Spec::BackendTrafficPolicy(spec)) => callers::admit_traffic_policy(&mut cx, spec),
        Some(Spec::PromptGuardPolicy(spec)) => callers::admit_prompt_guard(&mut cx, spec),
        Some(Spec::ResponseCachePolicy(spec)) => callers::admit_response_cache(&mut cx, spec),
        Some(Spec::EnvoyExtensionPolicy(spec)) => callers::admit_extension_policy(&mut cx, spec),
        Some(Spec::HTTPRoute(spec)) => http_route::admit(&mut cx, spec),
        _ => {}
    }
    let resource = object.resource();
    out.into_iter()
        .map(|d| d.with_resource(resource.clone()))
        .collect()
}

/// The object under admission and where findings go.
pub(crate) struct Cx<'a> {
    pub object: &'a Object,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Cx<'_> {
    /// Reports a CRD validation rule that does not hold at `field`, with the rule's message.
    pub fn rule(&mut self, field: &str, message: &str) {
        let span = self.object.origin.span_of(field);
        self.out.push(diagnostics::rule(span, field, message));
    }

    /// True when this object was written in the given API version.
    pub fn is_version(&self, version: &str) -> bool {
        self.object.api_version.rsplit('/').next() == Some(version)
    }
}
