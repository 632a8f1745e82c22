//! The controller's picture of the cluster: every watched object, sanitized, in a sorted map.
//! Pure: the watchers feed it events, reconcile reads it; no I/O here.
//!
//! *Invariant*: no Secret value enters the world. A Secret keeps only its key names (each value
//! replaced by the empty string), and no Secret keeps annotations (`kubectl apply` copies the
//! whole object, values included, into `last-applied-configuration`). The compiler needs key
//! names only: it checks that referenced keys exist; the data planes read values themselves.
//!
//! What the compiler reads of an object is its text: the object without `status` and without
//! the metadata the API server maintains (`resourceVersion`, `managedFields`, `uid`, ...). So a
//! status write, ours or anyone's, changes nothing the compiler sees and triggers no compile;
//! it only refreshes the conditions kept beside the text, which status writes are diffed with.

use super::kinds::{WATCHED, Watched};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Where an object lives: its kind (an index into [`WATCHED`]), namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: usize,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn watched(&self) -> &'static Watched {
        &WATCHED[self.kind]
    }

    /// `Kind/namespace/name` (`Kind/name` when cluster-scoped): the "file" of its diagnostics.
    pub fn source_name(&self) -> String {
        let kind = self.watched().kind;
        if self.namespace.is_empty() {
            format!("{kind}/{}", self.name)
        } else {
            format!("{kind}/{}/{}", self.namespace, self.name)
        }
    }
}

/// What the world keeps of one object.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The YAML the compiler reads.
    pub text: Arc<str>,
    pub uid: String,
    pub generation: i64,
    /// `status.conditions` as the API server last showed them.
    pub conditions: Vec<Value>,
    /// Generated from an AIGatewayRoute (by aigw or the reference controller: the
    /// `ai-gateway-generated` annotation): not compiled, only compared with what aigw would
    /// apply.
    pub generated: bool,
}

/// The texts of the world at one revision: what one compile reads, taken under the lock
/// (cheap: the texts are shared) and compiled outside it.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub revision: u64,
    pub objects: Vec<(Key, Arc<str>)>,
}

/// The watched objects, and a counter of changes the compiler would see.
#[derive(Debug, Default)]
pub struct World {
    objects: BTreeMap<Key, Entry>,
    /// Per watcher (kind, namespace scope), the objects of a relist in progress.
    relisting: BTreeMap<(usize, String), BTreeMap<Key, Entry>>,
    /// Bumped when an object's text is added, changed or removed.
    revision: u64,
}

impl World {
    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            revision: self.revision,
            objects: self
                .objects
                .iter()
                .filter(|(_, e)| !e.generated)
                .map(|(k, e)| (k.clone(), e.text.clone()))
                .collect(),
        }
    }

    pub fn objects(&self) -> impl Iterator<Item = (&Key, &Entry)> {
        self.objects.iter()
    }

    pub fn get(&self, key: &Key) -> Option<&Entry> {
        self.objects.get(key)
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// An object was added or changed.
    pub fn apply(&mut self, kind: usize, object: &Value) {
        if let Some((key, entry)) = sanitize(kind, object) {
            self.put(key, entry);
        }
    }

    /// An object was deleted.
    pub fn delete(&mut self, kind: usize, object: &Value) {
        let (namespace, name) = names(object);
        let key = Key {
            kind,
            namespace,
            name,
        };
        if self.objects.remove(&key).is_some() {
            self.revision += 1;
        }
    }

    /// A watcher of `kind` in `scope` (a namespace, or "" for all) starts listing again.
    pub fn relist_start(&mut self, kind: usize, scope: &str) {
        self.relisting
            .insert((kind, scope.to_owned()), BTreeMap::new());
    }

    /// One object of a relist.
    pub fn relist_apply(&mut self, kind: usize, scope: &str, object: &Value) {
        if let Some((key, entry)) = sanitize(kind, object) {
            self.relisting
                .entry((kind, scope.to_owned()))
                .or_default()
                .insert(key, entry);
        }
    }

    /// The relist is complete: what it did not list is gone.
    pub fn relist_done(&mut self, kind: usize, scope: &str) {
        let listed = self
            .relisting
            .remove(&(kind, scope.to_owned()))
            .unwrap_or_default();
        let stale: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.kind == kind && (scope.is_empty() || k.namespace == scope))
            .filter(|k| !listed.contains_key(k))
            .cloned()
            .collect();
        for key in stale {
            self.objects.remove(&key);
            self.revision += 1;
        }
        for (key, entry) in listed {
            self.put(key, entry);
        }
    }

    fn put(&mut self, key: Key, entry: Entry) {
        let same_text = self.objects.get(&key).is_some_and(|e| e.text == entry.text);
        if !same_text {
            self.revision += 1;
        }
        self.objects.insert(key, entry);
    }
}

fn names(object: &Value) -> (String, String) {
    let meta = &object["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (text(&meta["namespace"]), text(&meta["name"]))
}

/// Metadata the compiler reads; the rest is the API server's bookkeeping.
/// (`uid` is kept for the owner references of the generated HTTPRoutes; it changes only when
/// the object is made anew.)
const KEPT_METADATA: &[&str] = &["name", "namespace", "uid", "labels", "annotations"];
/// The annotation in which `kubectl apply` keeps a copy of the whole object.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The world's entry for an object as the API server sends it; `None` without a name.
pub fn sanitize(kind: usize, object: &Value) -> Option<(Key, Entry)> {
    let watched = &WATCHED[kind];
    let (namespace, name) = names(object);
    if name.is_empty() {
        return None;
    }
    let meta = &object["metadata"];
    let mut clean = Map::new();
    clean.insert("apiVersion".into(), watched.api_version().into());
    clean.insert("kind".into(), watched.kind.into());
    let mut metadata = Map::new();
    for field in KEPT_METADATA {
        if let Some(value) = meta.get(*field) {
            metadata.insert((*field).into(), value.clone());
        }
    }
    if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
        annotations.remove(LAST_APPLIED);
    }
    if watched.is_secret() {
        metadata.remove("annotations");
    }
    clean.insert("metadata".into(), Value::Object(metadata));
    if let Value::Object(fields) = object {
        for (field, value) in fields {
            if !matches!(
                field.as_str(),
                "apiVersion" | "kind" | "metadata" | "status"
            ) {
                clean.insert(field.clone(), value.clone());
            }
        }
    }
    if watched.is_secret() {
        strip_secret(&mut clean);
    }
    let text = serde_saphyr::to_string(&Value::Object(clean)).ok()?;
    let conditions = object["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let key = Key {
        kind,
        namespace,
        name,
    };
    let generated = meta["annotations"]
        .get(aigw_target_gateway_api::GENERATED_ANNOTATION)
        .is_some();
    let entry = Entry {
        generated,
        text: text.into(),
        uid: meta["uid"].as_str().unwrap_or_default().to_owned(),
        generation: meta["generation"].as_i64().unwrap_or(0),
        conditions,
    };
    Some((key, entry))
}

/// Keeps a Secret's key names and type; every value becomes the empty string.
fn strip_secret(secret: &mut Map<String, Value>) {
    let mut keys = Map::new();
    for field in ["data", "stringData"] {
        if let Some(Value::Object(data)) = secret.remove(field) {
            for key in data.keys() {
                keys.insert(key.clone(), Value::String(String::new()));
            }
        }
    }
    let kept: Map<String, Value> = secret
        .iter()
        .filter(|(field, _)| matches!(field.as_str(), "apiVersion" | "kind" | "metadata" | "type"))
        .map(|(f, v)| (f.clone(), v.clone()))
        .collect();
    *secret = kept;
    secret.insert("data".into(), Value::Object(keys));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kind(name: &str) -> usize {
        WATCHED
            .iter()
            .position(|w| w.kind == name)
            .unwrap_or(usize::MAX)
    }

    fn route(name: &str, rv: &str, models: &str) -> Value {
        json!({
            "apiVersion": "aigateway.envoyproxy.io/v1beta1",
            "kind": "AIGatewayRoute",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": rv,
                         "uid": "u-1", "generation": 3, "managedFields": [{"manager": "kubectl"}]},
            "spec": {"models": models},
            "status": {"conditions": [{"type": "Accepted", "status": "True"}]},
        })
    }

    #[test]
    fn a_secret_keeps_its_key_names_and_no_value() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "openai", "namespace": "default", "annotations": {
                LAST_APPLIED: "{\"data\":{\"apiKey\":\"c2stc2VjcmV0\"}}",
                "note": "sk-secret-in-an-annotation"}},
            "type": "Opaque",
            "data": {"apiKey": "c2stc2VjcmV0"},
            "stringData": {"org": "sk-secret-org"},
        });
        let (key, entry) = sanitize(kind("Secret"), &secret).expect("named");
        assert_eq!(key.source_name(), "Secret/default/openai");
        assert!(!entry.text.contains("c2stc2VjcmV0"), "{}", entry.text);
        assert!(!entry.text.contains("sk-secret"), "{}", entry.text);
        assert!(entry.text.contains("apiKey"), "{}", entry.text);
        assert!(entry.text.contains("org"), "{}", entry.text);
        assert!(entry.text.contains("Opaque"), "{}", entry.text);
    }

    #[test]
    fn a_status_write_changes_no_text_and_bumps_no_revision() {
        let mut world = World::default();
        let k = kind("AIGatewayRoute");
        world.apply(k, &route("r", "1", "a"));
        assert_eq!(world.revision(), 1);
        let mut written = route("r", "2", "a");
        written["status"]["conditions"][0]["type"] = json!("NotAccepted");
        world.apply(k, &written);
        assert_eq!(
            world.revision(),
            1,
            "only status and resourceVersion changed"
        );
        let (_, entry) = world.objects().next().expect("one object");
        assert_eq!(entry.conditions[0]["type"], "NotAccepted");
        assert_eq!(entry.generation, 3);
        assert!(!entry.text.contains("managedFields") && !entry.text.contains("status"));
        world.apply(k, &route("r", "3", "b"));
        assert_eq!(world.revision(), 2, "the spec changed");
    }

    #[test]
    fn a_relist_removes_what_it_did_not_list_in_its_scope_only() {
        let mut world = World::default();
        let k = kind("AIGatewayRoute");
        world.apply(k, &route("a", "1", "x"));
        world.apply(k, &route("b", "1", "x"));
        let mut other = route("c", "1", "x");
        other["metadata"]["namespace"] = json!("other");
        world.apply(k, &other);
        world.relist_start(k, "default");
        world.relist_apply(k, "default", &route("a", "5", "x"));
        world.relist_done(k, "default");
        let names: Vec<String> = world.objects().map(|(k, _)| k.source_name()).collect();
        assert_eq!(
            names,
            ["AIGatewayRoute/default/a", "AIGatewayRoute/other/c"]
        );
        world.delete(k, &other);
        assert_eq!(world.len(), 1);
    }
}
