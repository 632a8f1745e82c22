//! The Gateway API target: what the reference controller generates for each AIGatewayRoute (an
//! HTTPRoute of the same name and two Envoy Gateway HTTPRouteFilters), so that Envoy Gateway
//! users can switch without surprise; and the status conditions each input object would get.
//!
//! Decisions:
//! - values the user wrote (parentRefs, hostnames, header matches, the AIServiceBackend's
//!   backendRef, labels, annotations) are copied as written, as the reference copies them;
//! - the owner reference carries `metadata.uid` when the input has one and is empty otherwise,
//!   as the reference's own `aigw translate` writes it (a live controller fills it in);
//! - a backendRef that does not resolve (possible only with `--open`) is left out of its rule.

pub mod crds;
mod status;

pub use status::{STATUS_KINDS, status};

use aigw_ir::{Edge, Ir, NodeId};
use aigw_syntax::model::AIGatewayRouteSpec;
use aigw_syntax::{Kind, Object, Spec};
use aigw_table::NOT_FOUND_BODY;
use serde_json::{Map, Value, json};

pub const GENERATED_ANNOTATION: &str = "gateway.envoyproxy.io/ai-gateway-generated";
pub const PRIORITY_ANNOTATION: &str = "gateway.envoyproxy.io/backend-ref-priority";
pub const HOST_REWRITE_PREFIX: &str = "ai-eg-host-rewrite";
pub const NOT_FOUND_PREFIX: &str = "ai-eg-route-not-found-response";
pub const NOT_FOUND_RULE: &str = "route-not-found";
const EG_GROUP: &str = "gateway.envoyproxy.io";
const ROOT_PREFIX: &str = "/";
const DEFAULT_REQUEST_TIMEOUT: &str = "60s";

/// The generated resources, in a stable order: per AIGatewayRoute (by namespace and name) its
/// HTTPRoute, then its host-rewrite and route-not-found filters. Made one at a time, so that a
/// large input is never held twice.
pub fn resources(ir: &Ir) -> impl Iterator<Item = Value> + '_ {
    ir.objects(Kind::AIGatewayRoute).flat_map(move |(id, route)| {
        let Some(Spec::AIGatewayRoute(spec)) = &route.spec else { return Vec::new() };
        vec![
            http_route(ir, id, route, spec),
            filter(route, HOST_REWRITE_PREFIX, json!({"urlRewrite": {"hostname": {"type": "Backend"}}})),
            filter(route, NOT_FOUND_PREFIX, json!({"directResponse": {"body": {"inline": NOT_FOUND_BODY}, "statusCode": 404}})),
        ]
    })
}

/// Renders resources as one multi-document YAML stream.
pub fn to_yaml(
    resources: impl IntoIterator<Item = Value>,
) -> Result<String, serde_saphyr::ser::Error> {
    let mut text = String::new();
    for resource in resources {
        text.push_str("---\n");
        serde_saphyr::to_fmt_writer(&mut text, &resource)?;
    }
    Ok(text)
}

/// Writes the resources into `out` as [`to_yaml`] renders them, one document at a time.
pub fn write_yaml(
    resources: impl IntoIterator<Item = Value>,
    out: &mut dyn std::io::Write,
) -> Result<(), serde_saphyr::ser::Error> {
    // Each resource is rendered into one buffer and written whole: the serializer's many small
    // writes cost a copy each there, and a trip through the writer's layers here.
    let mut text = String::with_capacity(4096);
    for resource in resources {
        text.clear();
        text.push_str("---\n");
        serde_saphyr::to_fmt_writer(&mut text, &resource)?;
        out.write_all(text.as_bytes())
            .map_err(|e| serde_saphyr::ser::Error::IO { error: e })?;
    }
    Ok(())
}

fn owner(route: &Object) -> Value {
    json!([{
        "apiVersion": "aigateway.envoyproxy.io/v1beta1",
        "kind": "AIGatewayRoute",
        "name": route.name,
        "uid": route.origin.node_at("metadata.uid").and_then(|n| n.as_str()).unwrap_or(""),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// The value at `path` of the object's document, as written.
fn written(object: &Object, path: &str) -> Option<Value> {
    object.origin.node_at(path).map(|n| n.to_json())
}

fn http_route(ir: &Ir, id: NodeId, route: &Object, spec: &AIGatewayRouteSpec) -> Value {
    let mut annotations: Map<String, Value> = route
        .annotations
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    annotations.insert(PRIORITY_ANNOTATION.to_owned(), json!(priorities(spec)));
    annotations.insert(GENERATED_ANNOTATION.to_owned(), json!("true"));
    let mut metadata = json!({"name": route.name, "namespace": route.namespace});
    if !route.labels.is_empty() {
        metadata["labels"] = json!(route.labels);
    }
    metadata["annotations"] = Value::Object(annotations);
    metadata["ownerReferences"] = owner(route);

    let host_rewrite = extension_ref(HOST_REWRITE_PREFIX, route);
    let mut rules: Vec<Value> = spec
        .rules
        .iter()
        .enumerate()
        .map(|(r, rule)| {
            let mut out = Map::new();
            if let Some(name) = &rule.name {
                out.insert("name".into(), json!(name));
            }
            let refs: Vec<Value> = (0..rule.backend_refs.len())
                .filter_map(|i| backend_ref(ir, id, route, r, i))
                .collect();
            out.insert("backendRefs".into(), Value::Array(refs));
            out.insert("filters".into(), json!([host_rewrite.clone()]));
            if !rule.matches.is_empty() {
                let matches = (0..rule.matches.len())
                    .map(|m| {
                        let mut one = Map::new();
                        if let Some(headers) =
                            written(route, &format!("spec.rules[{r}].matches[{m}].headers"))
                        {
                            one.insert("headers".into(), headers);
                        }
                        one.insert("path".into(), json!({"value": ROOT_PREFIX}));
                        Value::Object(one)
                    })
                    .collect();
                out.insert("matches".into(), Value::Array(matches));
            }
            let mut timeouts =
                written(route, &format!("spec.rules[{r}].timeouts")).unwrap_or_else(|| json!({}));
            if timeouts.get("request").is_none_or(Value::is_null) {
                timeouts["request"] = json!(DEFAULT_REQUEST_TIMEOUT);
            }
            out.insert("timeouts".into(), timeouts);
            Value::Object(out)
        })
        .collect();
    rules.push(json!({
        "matches": [{"path": {"value": ROOT_PREFIX}}],
        "name": NOT_FOUND_RULE,
        "filters": [extension_ref(NOT_FOUND_PREFIX, route)],
    }));

    let mut spec_out = Map::new();
    spec_out.insert(
        "parentRefs".into(),
        written(route, "spec.parentRefs").unwrap_or_else(|| json!([])),
    );
    if let Some(hostnames) = written(route, "spec.hostnames") {
        spec_out.insert("hostnames".into(), hostnames);
    }
    spec_out.insert("rules".into(), Value::Array(rules));
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": metadata,
        "spec": spec_out,
    })
}

/// `rule:name:priority` for every backendRef, in rule then reference order.
fn priorities(spec: &AIGatewayRouteSpec) -> String {
    let mut parts = Vec::new();
    for (r, rule) in spec.rules.iter().enumerate() {
        for backend in &rule.backend_refs {
            parts.push(format!("{r}:{}:{}", backend.name, backend.priority));
        }
    }
    parts.join(",")
}

/// The HTTPRoute backendRef for `rules[r].backendRefs[i]`: the AIServiceBackend's own
/// backendRef as written (namespaced when it lives elsewhere), or the InferencePool.
fn backend_ref(ir: &Ir, route_id: NodeId, route: &Object, r: usize, i: usize) -> Option<Value> {
    let key = ir
        .key_of(route_id)
        .child(format!("rules[{r}].backendRefs[{i}]"));
    let (_, target) = *ir
        .targets(ir.find(&key)?, |e| matches!(e, Edge::Backend { .. }))
        .first()?;
    let target = ir.object(target)?;
    let weight = written(route, &format!("spec.rules[{r}].backendRefs[{i}].weight"));
    let mut out = match target.kind {
        Kind::InferencePool => json!({
            "group": target.group,
            "kind": "InferencePool",
            "name": target.name,
            "namespace": target.namespace,
        }),
        _ => {
            let mut out = written(target, "spec.backendRef")?;
            if out.get("namespace").is_none() && target.namespace != route.namespace {
                out["namespace"] = json!(target.namespace);
            }
            out
        }
    };
    if let Some(weight) = weight {
        out["weight"] = weight;
    }
    Some(out)
}

fn extension_ref(prefix: &str, route: &Object) -> Value {
    json!({
        "extensionRef": {"group": EG_GROUP, "kind": "HTTPRouteFilter", "name": format!("{prefix}-{}", route.name)},
        "type": "ExtensionRef",
    })
}

fn filter(route: &Object, prefix: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "gateway.envoyproxy.io/v1alpha1",
        "kind": "HTTPRouteFilter",
        "metadata": {
            "name": format!("{prefix}-{}", route.name),
            "namespace": route.namespace,
            "ownerReferences": owner(route),
        },
        "spec": spec,
    })
}
