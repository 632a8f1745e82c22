//! Builds the graph: one node per object and per part (listener, rule, backend ref), one edge per
//! resolved reference. Reports references to objects not in the input and cross-namespace
//! references without permission (a ReferenceGrant, or for route → Gateway attachment the
//! listener's `allowedRoutes`, as Gateway API defines them).

use crate::Options;
use crate::diagnostics;
use aigw_diag::Diagnostic;
use aigw_ir::{Edge, IrBuilder, Key, Node, NodeId};
use aigw_syntax::model::*;
use aigw_syntax::{Kind, Object, Spec};
use std::sync::Arc;

/// The annotation by which a Gateway names its GatewayConfig.
pub const GATEWAY_CONFIG_ANNOTATION: &str = "aigateway.envoyproxy.io/gateway-config";

struct Cx {
    b: IrBuilder,
    out: Vec<Diagnostic>,
    options: Options,
    grants: Vec<Arc<Object>>,
}

/// A reference from `from` (at field `field`) to the object `kind namespace/name`.
struct Ref<'a> {
    from: &'a Object,
    from_id: NodeId,
    field: String,
    kind: Kind,
    namespace: &'a str,
    name: &'a str,
    edge: Edge,
}

pub(crate) fn resolve(objects: Vec<Object>, options: Options) -> (aigw_ir::Ir, Vec<Diagnostic>) {
    let objects: Vec<Arc<Object>> = objects.into_iter().map(Arc::new).collect();
    let grants = objects
        .iter()
        .filter(|o| o.kind == Kind::ReferenceGrant)
        .cloned()
        .collect();
    let mut cx = Cx {
        b: IrBuilder::new(),
        out: Vec::new(),
        options,
        grants,
    };
    let mut ids = Vec::with_capacity(objects.len());
    for object in &objects {
        let key = Key::object(object.kind, &object.namespace, &object.name);
        ids.push(cx.b.add(key, Node::Object(object.clone())));
    }
    for (object, id) in objects.iter().zip(&ids) {
        cx.object(object, *id);
    }
    // Caller policies may name a listener: they are resolved once every Gateway has its parts.
    for (object, id) in objects.iter().zip(ids) {
        cx.caller_policy(object, id);
    }
    (cx.b.finish(), cx.out)
}

impl<'a> Cx {
    fn object(&mut self, object: &'a Object, id: NodeId) {
        let Some(spec) = &object.spec else { return };
        match spec {
            Spec::Gateway(spec) => self.gateway(object, id, spec),
            Spec::AIGatewayRoute(spec) => self.route(object, id, spec),
            Spec::AIServiceBackend(spec) => {
                self.upstream(object, id, "spec.backendRef", &spec.backend_ref)
            }
            Spec::BackendSecurityPolicy(spec) => self.security_policy(object, id, spec),
            Spec::BackendTLSPolicy(spec) => {
                for (i, target) in spec.target_refs.iter().enumerate() {
                    if target.group == ENVOY_GATEWAY_GROUP && target.kind == "Backend" {
                        let field = format!("spec.targetRefs[{i}]");
                        self.link(Ref {
                            from: object,
                            from_id: id,
                            field,
                            kind: Kind::Backend,
                            namespace: &object.namespace,
                            name: &target.name,
                            edge: Edge::Targets,
                        });
                    }
                }
            }
            Spec::QuotaPolicy(spec) => {
                for (i, target) in spec.target_refs.iter().enumerate() {
                    let field = format!("spec.targetRefs[{i}]");
                    self.link(Ref {
                        from: object,
                        from_id: id,
                        field,
                        kind: Kind::AIServiceBackend,
                        namespace: &object.namespace,
                        name: &target.name,
                        edge: Edge::Targets,
                    });
                }
            }
            Spec::MCPRoute(spec) => {
                self.parents(object, id, &spec.parent_refs);
                for (i, backend) in spec.backend_refs.iter().enumerate() {
                    if backend.group == ENVOY_GATEWAY_GROUP && backend.kind == "Backend" {
                        let namespace = backend.namespace.as_deref().unwrap_or(&object.namespace);
                        let field = format!("spec.backendRefs[{i}]");
                        self.link(Ref {
                            from: object,
                            from_id: id,
                            field,
                            kind: Kind::Backend,
                            namespace,
                            name: &backend.name,
                            edge: Edge::Upstream,
                        });
                    }
                }
            }
            Spec::HTTPRoute(spec) => {
                self.parents(object, id, &spec.parent_refs);
                // The data plane proxies to Envoy Gateway Backends (and Services by their
                // cluster DNS name); a Backend it cannot find is a dangling reference.
                // A RequestMirror's Backend likewise.
                for (r, rule) in spec.rules.iter().enumerate() {
                    let backends = rule.backend_refs.iter().enumerate().map(|(i, b)| {
                        let field = format!("spec.rules[{r}].backendRefs[{i}]");
                        (field, (&b.group, &b.kind, &b.namespace, &b.name))
                    });
                    let mirrors = rule.filters.iter().enumerate().filter_map(|(f, filter)| {
                        let b = &filter.request_mirror.as_ref()?.backend_ref;
                        let field =
                            format!("spec.rules[{r}].filters[{f}].requestMirror.backendRef");
                        Some((field, (&b.group, &b.kind, &b.namespace, &b.name)))
                    });
                    for (field, (group, kind, namespace, name)) in backends.chain(mirrors) {
                        if group == ENVOY_GATEWAY_GROUP && kind == "Backend" {
                            self.link(Ref {
                                from: object,
                                from_id: id,
                                field,
                                kind: Kind::Backend,
                                namespace: namespace.as_deref().unwrap_or(&object.namespace),
                                name,
                                edge: Edge::Upstream,
                            });
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A SecurityPolicy or ModelAccessPolicy: its targets (a Gateway or one of its listeners,
    /// an HTTPRoute, an AIGatewayRoute) and the Secrets of its `apiKeyAuth`.
    fn caller_policy(&mut self, object: &'a Object, id: NodeId) {
        match &object.spec {
            Some(Spec::SecurityPolicy(spec)) => {
                for (field, target) in spec.targets() {
                    let section = target.section_name.as_deref();
                    let (kind, name) = (&target.kind, &target.name);
                    self.caller_target(object, id, field, kind, name, section, true);
                }
                if let Some(auth) = &spec.api_key_auth {
                    for (i, secret) in auth.credential_refs.iter().enumerate() {
                        let field = format!("spec.apiKeyAuth.credentialRefs[{i}]");
                        self.secret(object, id, field, secret);
                    }
                }
            }
            Some(Spec::EnvoyExtensionPolicy(spec)) => {
                for (field, target) in spec.targets() {
                    let section = target.section_name.as_deref();
                    let (kind, name) = (&target.kind, &target.name);
                    self.caller_target(object, id, field, kind, name, section, true);
                }
            }
            Some(Spec::BackendTrafficPolicy(spec)) => {
                for (field, target) in spec.targets() {
                    let section = target.section_name.as_deref();
                    let (kind, name) = (&target.kind, &target.name);
                    self.caller_target(object, id, field, kind, name, section, true);
                }
            }
            Some(Spec::PromptGuardPolicy(spec)) => {
                for (i, target) in spec.target_refs.iter().enumerate() {
                    let field = format!("spec.targetRefs[{i}]");
                    // Its admission refuses other kinds already.
                    self.caller_target(object, id, field, &target.kind, &target.name, None, false);
                }
            }
            Some(Spec::ResponseCachePolicy(spec)) => {
                for (i, target) in spec.target_refs.iter().enumerate() {
                    let field = format!("spec.targetRefs[{i}]");
                    // Its admission refuses other kinds already.
                    self.caller_target(object, id, field, &target.kind, &target.name, None, false);
                }
            }
            Some(Spec::ModelAccessPolicy(spec)) => {
                for (i, target) in spec.target_refs.iter().enumerate() {
                    let field = format!("spec.targetRefs[{i}]");
                    // Its admission refuses other kinds already.
                    self.caller_target(object, id, field, &target.kind, &target.name, None, false);
                }
            }
            _ => {}
        }
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one target reference, taken apart from two policy kinds' own types"
    )]
    fn caller_target(
        &mut self,
        object: &'a Object,
        id: NodeId,
        field: String,
        kind: &str,
        name: &'a str,
        section: Option<&str>,
        report_kind: bool,
    ) {
        let namespace = object.namespace.as_str();
        let exists = |b: &IrBuilder, kind| b.find(&Key::object(kind, namespace, name)).is_some();
        let kind = match kind {
            "Gateway" => Kind::Gateway,
            "AIGatewayRoute" => Kind::AIGatewayRoute,
            // The reference names the HTTPRoute it generates after its AIGatewayRoute, and
            // policies attach to that name.
            "HTTPRoute"
                if !exists(&self.b, Kind::HTTPRoute) && exists(&self.b, Kind::AIGatewayRoute) =>
            {
                Kind::AIGatewayRoute
            }
            "HTTPRoute" => Kind::HTTPRoute,
            _ if !report_kind => return,
            other => {
                let span = object.origin.span_of(&format!("{field}.kind"));
                self.out.push(
                    diagnostics::unsupported_policy(
                        span,
                        &format!("{field}.kind"),
                        &format!("policies on `{other}` targets"),
                        "aigw serves Gateways, HTTPRoutes and AIGatewayRoutes; target those",
                    )
                    .with_resource(object.resource()),
                );
                return;
            }
        };
        if let Some(section) = section
            && kind == Kind::Gateway
            && exists(&self.b, Kind::Gateway)
        {
            let key =
                Key::object(Kind::Gateway, namespace, name).child(format!("listeners[{section}]"));
            match self.b.find(&key) {
                Some(listener) => self.b.link(id, listener, Edge::Targets),
                None => {
                    let field = format!("{field}.sectionName");
                    let span = object.origin.span_of(&field);
                    let what = format!("listener `{section}` of Gateway `{namespace}/{name}`");
                    self.out.push(
                        diagnostics::unresolved(span, &field, &what, self.options.open)
                            .with_resource(object.resource()),
                    );
                }
            }
            return;
        }
        self.link(Ref {
            from: object,
            from_id: id,
            field,
            kind,
            namespace,
            name,
            edge: Edge::Targets,
        });
    }

    fn gateway(&mut self, object: &'a Object, id: NodeId, spec: &'a GatewaySpec) {
        let key = Key::object(object.kind, &object.namespace, &object.name);
        let gateway = self.node_arc(id);
        for (i, listener) in spec.listeners.iter().enumerate() {
            let part = self.b.add(
                key.child(format!("listeners[{}]", listener.name)),
                Node::Listener {
                    gateway: gateway.clone(),
                    index: i,
                },
            );
            self.b.link(id, part, Edge::Part);
            let Some(tls) = &listener.tls else { continue };
            for (c, cert) in tls.certificate_refs.iter().enumerate() {
                if cert.group.is_empty() && cert.kind == "Secret" {
                    self.secret(
                        object,
                        part,
                        format!("spec.listeners[{i}].tls.certificateRefs[{c}]"),
                        cert,
                    );
                }
            }
        }
        if let Some(config) = object.annotations.get(GATEWAY_CONFIG_ANNOTATION) {
            let field = format!("metadata.annotations.{GATEWAY_CONFIG_ANNOTATION}");
            self.link(Ref {
                from: object,
                from_id: id,
                field,
                kind: Kind::GatewayConfig,
                namespace: &object.namespace,
                name: config,
                edge: Edge::Config,
            });
        }
    }

    fn route(&mut self, object: &'a Object, id: NodeId, spec: &'a AIGatewayRouteSpec) {
        self.parents(object, id, &spec.parent_refs);
        let key = Key::object(object.kind, &object.namespace, &object.name);
        let route = self.node_arc(id);
        for (r, rule) in spec.rules.iter().enumerate() {
            let rule_id = self.b.add(
                key.child(format!("rules[{r}]")),
                Node::Rule {
                    route: route.clone(),
                    index: r,
                },
            );
            self.b.link(id, rule_id, Edge::Part);
            for (i, backend) in rule.backend_refs.iter().enumerate() {
                let part = format!("rules[{r}].backendRefs[{i}]");
                let ref_id = self.b.add(
                    key.child(part),
                    Node::BackendRef {
                        route: route.clone(),
                        rule: r,
                        index: i,
                    },
                );
                self.b.link(rule_id, ref_id, Edge::Part);
                let kind = if backend.kind.as_deref() == Some("InferencePool") {
                    Kind::InferencePool
                } else {
                    Kind::AIServiceBackend
                };
                let namespace = backend.namespace.as_deref().unwrap_or(&object.namespace);
                let field = format!("spec.rules[{r}].backendRefs[{i}]");
                let edge = Edge::Backend {
                    weight: backend.weight,
                    priority: backend.priority,
                };
                self.link(Ref {
                    from: object,
                    from_id: ref_id,
                    field,
                    kind,
                    namespace,
                    name: &backend.name,
                    edge,
                });
            }
        }
    }

    fn parents(&mut self, object: &'a Object, id: NodeId, parents: &'a [ParentReference]) {
        for (i, parent) in parents.iter().enumerate() {
            if parent.kind != "Gateway" || parent.group != GATEWAY_GROUP {
                continue;
            }
            let namespace = parent.namespace.as_deref().unwrap_or(&object.namespace);
            let field = format!("spec.parentRefs[{i}]");
            self.link(Ref {
                from: object,
                from_id: id,
                field,
                kind: Kind::Gateway,
                namespace,
                name: &parent.name,
                edge: Edge::Parent,
            });
        }
    }

    fn upstream(
        &mut self,
        object: &'a Object,
        id: NodeId,
        field: &str,
        backend: &'a BackendObjectReference,
    ) {
        if backend.group == ENVOY_GATEWAY_GROUP && backend.kind == "Backend" {
            let namespace = backend.namespace.as_deref().unwrap_or(&object.namespace);
            self.link(Ref {
                from: object,
                from_id: id,
                field: field.to_owned(),
                kind: Kind::Backend,
                namespace,
                name: &backend.name,
                edge: Edge::Upstream,
            });
        }
    }

    fn security_policy(
        &mut self,
        object: &'a Object,
        id: NodeId,
        spec: &'a BackendSecurityPolicySpec,
    ) {
        for (i, target) in spec.target_refs.iter().enumerate() {
            let kind = if target.kind == "InferencePool" {
                Kind::InferencePool
            } else {
                Kind::AIServiceBackend
            };
            let field = format!("spec.targetRefs[{i}]");
            self.link(Ref {
                from: object,
                from_id: id,
                field,
                kind,
                namespace: &object.namespace,
                name: &target.name,
                edge: Edge::Targets,
            });
        }
        for (field, secret) in crate::checks::policy_secrets(spec) {
            self.secret(object, id, field.to_owned(), secret);
        }
    }

    /// Secrets are often kept out of GitOps repositories, so a Secret absent from the input is
    /// not an error; one that is present is linked (and its keys checked later).
    fn secret(
        &mut self,
        object: &'a Object,
        from_id: NodeId,
        field: String,
        secret: &'a SecretObjectReference,
    ) {
        let namespace = secret.namespace.as_deref().unwrap_or(&object.namespace);
        let key = Key::object(Kind::Secret, namespace, &secret.name);
        if self.b.find(&key).is_some() {
            self.link(Ref {
                from: object,
                from_id,
                field,
                kind: Kind::Secret,
                namespace,
                name: &secret.name,
                edge: Edge::Secret,
            });
        }
    }

    /// Resolves one reference: an edge when the target exists and may be referred to, a
    /// diagnostic otherwise.
    fn link(&mut self, r: Ref<'_>) {
        let span = r.from.origin.span_of(&r.field);
        let what = format!("{:?} `{}/{}`", r.kind, r.namespace, r.name);
        let Some(target) = self.b.find(&Key::object(r.kind, r.namespace, r.name)) else {
            self.out.push(
                diagnostics::unresolved(span, &r.field, &what, self.options.open)
                    .with_resource(r.from.resource()),
            );
            return;
        };
        if r.namespace != r.from.namespace && !self.permitted(&r, target) {
            let from = format!("{} from namespace `{}`", r.from.kind_name, r.from.namespace);
            self.out.push(
                diagnostics::not_permitted(span, &r.field, &what, r.namespace, &from)
                    .with_resource(r.from.resource()),
            );
            return;
        }
        if r.edge == Edge::Parent && self.listens_nowhere(target) {
            self.out.push(
                diagnostics::parent_without_listeners(span, &r.field, &what)
                    .with_resource(r.from.resource()),
            );
        }
        self.b.link(r.from_id, target, r.edge);
    }

    /// A Gateway written with no listener (refused by its own admission): a route on it
    /// attaches to nothing, and Gateway API reports it not accepted rather than reconciled.
    fn listens_nowhere(&self, gateway: NodeId) -> bool {
        let Node::Object(gateway) = self.b.ir().node(gateway) else {
            return false;
        };
        let listeners = gateway
            .origin
            .root
            .get("spec")
            .and_then(|spec| spec.get("listeners"));
        match listeners.map(|l| &l.value) {
            None | Some(aigw_syntax::yaml::Value::Null) => true,
            Some(aigw_syntax::yaml::Value::Seq(items)) => items.is_empty(),
            Some(_) => false,
        }
    }

    /// Route → Gateway needs a listener whose `allowedRoutes.namespaces.from` is `All` or
    /// `Selector` (label selectors are taken as allowing: labels of namespaces are not in the
    /// input); every other cross-namespace reference needs a ReferenceGrant in the target's
    /// namespace naming the referrer's kind and namespace.
    fn permitted(&self, r: &Ref<'_>, target: NodeId) -> bool {
        if r.edge == Edge::Parent {
            let Node::Object(gateway) = self.b.ir().node(target) else {
                return false;
            };
            let Some(Spec::Gateway(spec)) = &gateway.spec else {
                return false;
            };
            return spec.listeners.iter().any(|l| {
                let from = l
                    .allowed_routes
                    .as_ref()
                    .and_then(|a| a.pointer("/namespaces/from"))
                    .and_then(|f| f.as_str());
                matches!(from, Some("All" | "Selector"))
            });
        }
        let (target_group, target_kind) = match self.b.ir().node(target) {
            Node::Object(o) => (o.group, o.kind_name),
            _ => return false,
        };
        self.grants
            .iter()
            .filter(|g| g.namespace == r.namespace)
            .any(|grant| {
                let Some(Spec::ReferenceGrant(spec)) = &grant.spec else {
                    return false;
                };
                let from_ok = spec.from.iter().any(|f| {
                    f.group == r.from.group
                        && f.kind == r.from.kind_name
                        && f.namespace == r.from.namespace
                });
                let to_ok = spec.to.iter().any(|t| {
                    t.group == target_group
                        && t.kind == target_kind
                        && t.name.as_deref().is_none_or(|n| n == r.name)
                });
                from_ok && to_ok
            })
    }

    fn node_arc(&self, id: NodeId) -> Arc<Object> {
        match self.b.ir().node(id) {
            Node::Object(object) => object.clone(),
            Node::Listener { gateway, .. } => gateway.clone(),
            Node::Rule { route, .. } | Node::BackendRef { route, .. } => route.clone(),
        }
    }
}
