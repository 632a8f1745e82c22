//! One reconcile: the world → the checked graph → what the cluster and the data planes should
//! see. Pure and deterministic (the same world gives the same table bytes on every replica, so
//! data planes following any replica agree on the table's version); no I/O, no clock.
//!
//! Every object is one source named `Kind/namespace/name`, so a diagnostic reads
//! `AIGatewayRoute/default/chat:12:7` where `aigw check` would name a file. A diagnostic is
//! attributed to the object it names, else to the object whose text it points into.

use super::reader::{Reader, Reads};
use super::world::{Key, Snapshot};
use crate::{CheckOptions, Checked, check_loaded};
use aigw_diag::{Diagnostic, Severity, SourceMap};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// The condition aigw wants on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl Condition {
    pub fn accepted(&self) -> bool {
        self.status == "True"
    }
}

/// What one compile of the world produced.
#[derive(Debug)]
pub struct Compiled {
    /// The world revision compiled.
    pub revision: u64,
    pub checked: Checked,
    /// The table's JSON, when the world compiled without errors.
    pub table: Option<Vec<u8>>,
    /// The generated Gateway API resources (HTTPRoutes, HTTPRouteFilters), when it did.
    pub gateway_api: Vec<Value>,
    /// The condition of each object of a kind with status.
    pub conditions: BTreeMap<Key, Condition>,
    /// How many objects were read, and how many reused from earlier compiles.
    pub reads: Reads,
}

impl Compiled {
    pub fn errors(&self) -> usize {
        self.checked.count(Severity::Error)
    }
}

/// The longest status message written (the API server takes 32 KiB; long lists of errors are
/// cut with a count of what was left out).
const MESSAGE_LIMIT: usize = 4096;

/// Compiles a snapshot of the world; `generate`: also produce the Gateway API resources (for
/// `--apply-gateway-api`; skipped otherwise).
/// Objects are read through `reader`, which reads again only what changed since its last
/// compile.
pub fn compile(reader: &mut Reader, world: &Snapshot, generate: bool) -> Compiled {
    let by_source: HashMap<String, Key> = world
        .objects
        .iter()
        .map(|(key, _)| (key.source_name(), key.clone()))
        .collect();
    let (sources, loaded, reads) = reader.read(world);
    let mut checked = check_loaded(sources, loaded, CheckOptions::default());
    checked.require_objects();
    let ok = !checked.has_errors();
    let (table, gateway_api) = match (&checked.ir, ok) {
        (Some(ir), true) => {
            let table = aigw_target_table::table(ir);
            let mut bytes = Vec::new();
            let json = aigw_table::write_json(&table, &mut bytes).map(|()| bytes);
            let resources = if generate {
                aigw_target_gateway_api::resources(ir).collect()
            } else {
                Vec::new()
            };
            (json.ok(), resources)
        }
        _ => (None, Vec::new()),
    };
    let conditions = conditions(world, &checked, &by_source);
    Compiled {
        revision: world.revision,
        checked,
        table,
        gateway_api,
        conditions,
        reads,
    }
}

/// The condition of every object of a status kind: `Accepted` unless an error is its own.
fn conditions(
    world: &Snapshot,
    checked: &Checked,
    by_source: &HashMap<String, Key>,
) -> BTreeMap<Key, Condition> {
    let mut errors: BTreeMap<Key, Vec<String>> = BTreeMap::new();
    for d in &checked.diagnostics {
        if d.severity() != Severity::Error {
            continue;
        }
        if let Some(key) = owner(d, &checked.sources, by_source) {
            errors
                .entry(key)
                .or_default()
                .push(describe(d, &checked.sources));
        }
    }
    world
        .objects
        .iter()
        .filter(|(key, _)| key.watched().status)
        .map(|(key, _)| {
            let condition = match errors.remove(key) {
                None => accepted(key),
                Some(list) => not_accepted(key, &list),
            };
            (key.clone(), condition)
        })
        .collect()
}

/// The object a diagnostic is about: the one it names, else the one it points into.
fn owner(d: &Diagnostic, sources: &SourceMap, by_source: &HashMap<String, Key>) -> Option<Key> {
    if let Some(r) = d.resource() {
        let name = if r.namespace.is_empty() {
            format!("{}/{}", r.kind, r.name)
        } else {
            format!("{}/{}/{}", r.kind, r.namespace, r.name)
        };
        if let Some(key) = by_source.get(&name) {
            return Some(key.clone());
        }
    }
    let (file, _) = d.location(sources)?;
    by_source.get(&file).cloned()
}

/// `[AIGW0012 unresolved-reference] spec.rules[0].backendRefs[0]: message (at Kind/ns/name:3:5)`.
fn describe(d: &Diagnostic, sources: &SourceMap) -> String {
    let code = d.code();
    let mut text = format!("[{} {}] ", code.id, code.name);
    if let Some(field) = d
        .field()
        .filter(|f| !d.message().starts_with(&format!("`{f}`")))
    {
        text.push_str(field);
        text.push_str(": ");
    }
    text.push_str(d.message());
    if let Some((file, at)) = d.location(sources) {
        text.push_str(&format!(" (at {file}:{}:{})", at.line, at.column));
    }
    text
}

fn success_message(key: &Key) -> &'static str {
    aigw_target_gateway_api::STATUS_KINDS
        .iter()
        .find(|(kind, _)| format!("{kind:?}") == key.watched().kind)
        .map_or("reconciled successfully", |(_, message)| message)
}

fn accepted(key: &Key) -> Condition {
    Condition {
        type_: "Accepted",
        status: "True",
        reason: reason(key, "ReconciliationSucceeded", "Accepted"),
        message: success_message(key).to_owned(),
    }
}

fn not_accepted(key: &Key, errors: &[String]) -> Condition {
    let mut message = String::new();
    for (i, error) in errors.iter().enumerate() {
        let sep = if i == 0 { "" } else { "; " };
        if message.len() + sep.len() + error.len() > MESSAGE_LIMIT {
            message.push_str(&format!("; and {} more", errors.len() - i));
            break;
        }
        message.push_str(sep);
        message.push_str(error);
    }
    Condition {
        type_: "NotAccepted",
        status: "False",
        reason: reason(key, "ReconciliationFailed", "NotAccepted"),
        message,
    }
}

/// The reference writes GatewayConfig's condition type as its reason.
fn reason(key: &Key, reason: &'static str, type_: &'static str) -> &'static str {
    if key.watched().kind == "GatewayConfig" {
        type_
    } else {
        reason
    }
}
