//! The checked graph: every input object and its parts (listeners, rules, backend references)
//! as typed nodes, and every reference between them as a typed edge, in a petgraph
//! `StableDiGraph`. Targets read it through `&Ir`; only `aigw-lower` builds it (through
//! [`IrBuilder`]).
//!
//! Invariants:
//! - petgraph indices never leave this crate: callers hold [`NodeId`]s;
//! - every edge joins two nodes that exist (there are no dangling edges: an unresolved
//!   reference is a diagnostic and no edge);
//! - iteration is deterministic: nodes come out sorted by their [`Key`], edges by target key.

use aigw_syntax::{Kind, Object};
use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

/// A node's identity: the object's kind, namespace and name, plus a part path for listeners,
/// rules and backend references (`rules[0]`, `rules[0].backendRefs[1]`, `listeners[http]`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub part: String,
}

impl Key {
    /// The key of a whole object.
    pub fn object(kind: Kind, namespace: &str, name: &str) -> Self {
        Key {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            part: String::new(),
        }
    }

    /// The key of a part of this object.
    pub fn child(&self, part: String) -> Self {
        Key {
            part,
            ..self.clone()
        }
    }
}

/// An opaque handle to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeId(NodeIndex);

/// What a node is.
#[derive(Clone, Debug)]
pub enum Node {
    /// A whole input object, with its typed spec and origin.
    Object(Arc<Object>),
    /// A Gateway listener (index into the Gateway's listeners).
    Listener { gateway: Arc<Object>, index: usize },
    /// An AIGatewayRoute rule.
    Rule { route: Arc<Object>, index: usize },
    /// A backend reference of a rule.
    BackendRef {
        route: Arc<Object>,
        rule: usize,
        index: usize,
    },
}

/// How two nodes are related.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Edge {
    /// Whole → part (Gateway → Listener, route → rule, rule → backend ref).
    Part,
    /// A route (or MCPRoute, HTTPRoute) attaches to a Gateway.
    Parent,
    /// A rule's backend ref → AIServiceBackend or InferencePool, with its weight and priority.
    Backend { weight: i32, priority: i32 },
    /// AIServiceBackend (or MCPRoute) → Envoy Gateway Backend.
    Upstream,
    /// A policy → its target (BackendSecurityPolicy, BackendTLSPolicy, QuotaPolicy).
    Targets,
    /// Anything → a Secret it reads.
    Secret,
    /// Gateway → GatewayConfig (annotation).
    Config,
}

/// The checked graph.
#[derive(Debug, Default)]
pub struct Ir {
    graph: StableDiGraph<(Key, Node), Edge>,
    index: BTreeMap<Key, NodeId>,
}

impl Ir {
    /// The node behind an id.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.0].1
    }

    /// Looks a node up by key.
    pub fn find(&self, key: &Key) -> Option<NodeId> {
        self.index.get(key).copied()
    }

    /// Every node, sorted by key.
    pub fn nodes(&self) -> impl Iterator<Item = (&Key, NodeId)> {
        self.index.iter().map(|(k, id)| (k, *id))
    }

    /// Every node of one kind (objects and their parts), sorted by key.
    pub fn nodes_of(&self, kind: Kind) -> impl Iterator<Item = (&Key, NodeId)> {
        self.index
            .range(Key::object(kind, "", "")..)
            .take_while(move |(k, _)| k.kind == kind)
            .map(|(k, id)| (k, *id))
    }

    /// Edges leaving `id`, sorted by the key of their target.
    pub fn outgoing(&self, id: NodeId) -> Vec<(Edge, NodeId)> {
        self.sorted(
            self.graph
                .edges_directed(id.0, Direction::Outgoing)
                .map(|e| (*e.weight(), NodeId(e.target()))),
        )
    }

    /// Edges entering `id`, sorted by the key of their source.
    pub fn incoming(&self, id: NodeId) -> Vec<(Edge, NodeId)> {
        self.sorted(
            self.graph
                .edges_directed(id.0, Direction::Incoming)
                .map(|e| (*e.weight(), NodeId(e.source()))),
        )
    }

    fn sorted(&self, edges: impl Iterator<Item = (Edge, NodeId)>) -> Vec<(Edge, NodeId)> {
        let mut edges: Vec<_> = edges.collect();
        edges.sort_by(|a, b| (a.0, self.key_of(a.1)).cmp(&(b.0, self.key_of(b.1))));
        edges
    }

    /// The object behind an id, when the node is a whole object.
    pub fn object(&self, id: NodeId) -> Option<&Arc<Object>> {
        match self.node(id) {
            Node::Object(object) => Some(object),
            _ => None,
        }
    }

    /// Every whole object of one kind with its id, sorted by namespace and name.
    pub fn objects(&self, kind: Kind) -> impl Iterator<Item = (NodeId, &Arc<Object>)> {
        self.nodes_of(kind)
            .filter_map(|(_, id)| self.object(id).map(|o| (id, o)))
    }

    /// Targets of the edges leaving `id` that satisfy `want`, sorted by key.
    pub fn targets(&self, id: NodeId, want: impl Fn(Edge) -> bool) -> Vec<(Edge, NodeId)> {
        let mut edges = self.outgoing(id);
        edges.retain(|(edge, _)| want(*edge));
        edges
    }

    /// Sources of the edges entering `id` that satisfy `want`, sorted by key.
    pub fn sources(&self, id: NodeId, want: impl Fn(Edge) -> bool) -> Vec<(Edge, NodeId)> {
        let mut edges = self.incoming(id);
        edges.retain(|(edge, _)| want(*edge));
        edges
    }

    /// The key of a node.
    pub fn key_of(&self, id: NodeId) -> &Key {
        &self.graph[id.0].0
    }

    /// A sorted, line-per-edge text form for snapshots.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (key, id) in self.nodes() {
            let _ = writeln!(out, "{}", show(key));
            let mut edges: Vec<(Edge, &Key)> = self
                .graph
                .edges_directed(id.0, Direction::Outgoing)
                .map(|e| (*e.weight(), self.key_of(NodeId(e.target()))))
                .collect();
            edges.sort();
            for (edge, target) in edges {
                let _ = writeln!(out, "  -{edge:?}-> {}", show(target));
            }
        }
        out
    }
}

fn show(key: &Key) -> String {
    let mut s = format!("{:?} {}/{}", key.kind, key.namespace, key.name);
    if !key.part.is_empty() {
        s.push(' ');
        s.push_str(&key.part);
    }
    s
}

/// Builds an [`Ir`]. Used by `aigw-lower` only; every other crate reads the finished `Ir`.
#[derive(Debug, Default)]
pub struct IrBuilder {
    ir: Ir,
}

impl IrBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node under `key` (or returns the existing one: keys are unique).
    pub fn add(&mut self, key: Key, node: Node) -> NodeId {
        if let Some(id) = self.ir.index.get(&key) {
            return *id;
        }
        let id = NodeId(self.ir.graph.add_node((key.clone(), node)));
        self.ir.index.insert(key, id);
        id
    }

    /// Adds an edge between two existing nodes.
    pub fn link(&mut self, from: NodeId, to: NodeId, edge: Edge) {
        self.ir.graph.add_edge(from.0, to.0, edge);
    }

    /// Looks a node up by key while building.
    pub fn find(&self, key: &Key) -> Option<NodeId> {
        self.ir.find(key)
    }

    /// Read access while building.
    pub fn ir(&self) -> &Ir {
        &self.ir
    }

    /// The finished graph.
    pub fn finish(self) -> Ir {
        self.ir
    }
}
