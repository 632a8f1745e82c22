//! The topology target: the resource graph as a picture. Gateways → routes → rules →
//! AIServiceBackends → Backends, with policies, Secrets and GatewayConfigs attached, each node
//! labelled by kind and name, one cluster per namespace. Written as Graphviz DOT and as Mermaid
//! (which GitHub renders inline); an SVG comes from running DOT through Graphviz.
//!
//! Listeners and backend references are folded into their neighbours to keep the picture
//! readable: a listener's certificate hangs off its Gateway, and a backend reference becomes the
//! rule → backend edge, labelled with its weight and priority.

mod render;

pub use render::{dot, mermaid};

use aigw_ir::{Edge, Ir, Key, Node, NodeId};
use aigw_syntax::Kind;
use std::collections::BTreeMap;

/// The kinds drawn, in drawing order (GatewayClass, ReferenceGrant and carried kinds are not).
const DRAWN: &[Kind] = &[
    Kind::Gateway,
    Kind::GatewayConfig,
    Kind::AIGatewayRoute,
    Kind::HTTPRoute,
    Kind::MCPRoute,
    Kind::AIServiceBackend,
    Kind::InferencePool,
    Kind::Backend,
    Kind::BackendSecurityPolicy,
    Kind::BackendTLSPolicy,
    Kind::QuotaPolicy,
    Kind::Secret,
];

/// The picture before it is written out: boxes per namespace and arrows between them.
#[derive(Debug, Default)]
pub struct Picture {
    /// Namespace ("" for cluster-scoped) → boxes in it.
    pub namespaces: BTreeMap<String, Vec<Shape>>,
    pub arrows: Vec<Arrow>,
}

#[derive(Debug)]
pub struct Shape {
    pub id: String,
    pub kind: Kind,
    /// First line: the kind (or `rule`); second: the name.
    pub title: String,
    pub name: String,
}

#[derive(Debug)]
pub struct Arrow {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
    /// Attachments (policies, Secrets, configuration) are dashed; traffic is solid.
    pub dashed: bool,
}

/// Lays out the graph.
pub fn picture(ir: &Ir) -> Picture {
    let mut picture = Picture::default();
    let mut ids: BTreeMap<Key, String> = BTreeMap::new();
    for kind in DRAWN {
        for (key, id) in ir.nodes_of(*kind) {
            let (title, name) = match ir.node(id) {
                Node::Object(object) => (object.kind_name.to_owned(), object.name.clone()),
                Node::Rule { route, index } => {
                    let rule = match &route.spec {
                        Some(aigw_syntax::Spec::AIGatewayRoute(spec)) => {
                            spec.rules.get(*index).and_then(|r| r.name.clone())
                        }
                        _ => None,
                    };
                    (
                        "rule".to_owned(),
                        rule.unwrap_or_else(|| format!("{}[{index}]", route.name)),
                    )
                }
                Node::Listener { .. } | Node::BackendRef { .. } => continue,
            };
            let box_id = format!("n{}", ids.len());
            ids.insert(key.clone(), box_id.clone());
            picture
                .namespaces
                .entry(key.namespace.clone())
                .or_default()
                .push(Shape {
                    id: box_id,
                    kind: *kind,
                    title,
                    name,
                });
        }
    }
    for (key, from_id) in ir.nodes() {
        for (edge, to_id) in ir.outgoing(from_id) {
            arrows(ir, &ids, key, from_id, edge, to_id, &mut picture.arrows);
        }
    }
    picture
}

fn arrows(
    ir: &Ir,
    ids: &BTreeMap<Key, String>,
    key: &Key,
    from_id: NodeId,
    edge: Edge,
    to_id: NodeId,
    out: &mut Vec<Arrow>,
) {
    let id = |k: &Key| ids.get(k).cloned();
    let to_key = ir.key_of(to_id);
    let mut push =
        |from: Option<String>, to: Option<String>, label: Option<String>, dashed: bool| {
            if let (Some(from), Some(to)) = (from, to) {
                out.push(Arrow {
                    from,
                    to,
                    label,
                    dashed,
                });
            }
        };
    match (ir.node(from_id), edge) {
        // Traffic flows from the Gateway to the route: draw parent links reversed.
        (_, Edge::Parent) => push(id(to_key), id(key), None, false),
        // Folded: listener certificates hang off the Gateway.
        (Node::Listener { .. }, Edge::Secret) => {
            let gateway = Key {
                part: String::new(),
                ..key.clone()
            };
            push(
                id(&gateway),
                id(to_key),
                Some("certificate".to_owned()),
                true,
            );
        }
        (Node::Listener { .. }, _) => {}
        // Folded: rule → backend ref → backend becomes rule → backend.
        (Node::BackendRef { .. }, Edge::Backend { weight, priority }) => {
            let rule = key.part.split_once(".backendRefs").map(|(rule, _)| Key {
                part: rule.to_owned(),
                ..key.clone()
            });
            let label = if priority == 0 {
                format!("weight {weight}")
            } else {
                format!("weight {weight}, priority {priority}")
            };
            push(rule.as_ref().and_then(id), id(to_key), Some(label), false);
        }
        (_, Edge::Part) => push(id(key), id(to_key), None, false),
        (_, Edge::Upstream) => push(id(key), id(to_key), None, false),
        (_, Edge::Targets) => push(id(key), id(to_key), Some("targets".to_owned()), true),
        (_, Edge::Secret) => push(id(key), id(to_key), None, true),
        (_, Edge::Config) => push(id(key), id(to_key), Some("config".to_owned()), true),
        (_, Edge::Backend { .. }) => push(id(key), id(to_key), None, false),
    }
}
