//! What the leader writes: each object's status condition by server-side apply to the status
//! subresource (field manager `aigw`), and a Kubernetes Event when an object stops (or starts
//! again) being accepted. Only the leader calls this; statuses are diffed first
//! ([`super::status::patch`]), so most reconciles write nothing.

use super::reconcile::{Compiled, Condition};
use super::status;
use super::world::{Key, World};
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use std::collections::HashMap;
use std::sync::Mutex;

/// The field manager of every write.
pub const FIELD_MANAGER: &str = "aigw";
/// Status writes in flight at once.
const CONCURRENCY: usize = 16;
/// An Event's note is at most 1 KiB.
const NOTE_LIMIT: usize = 1024;

pub struct Writer {
    client: kube::Client,
    recorder: Recorder,
    /// What this process last wrote per object (condition, generation): the API server's copy
    /// comes back on the watch a moment later, and until then it is not written again.
    written: HashMap<Key, (Condition, i64)>,
    /// The generated resources this process applied (deleted when no longer generated).
    applied: std::collections::BTreeSet<Key>,
}

/// Counts of one pass, for the log and the tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wrote {
    pub statuses: usize,
    pub failed: usize,
}

impl Writer {
    pub fn new(client: kube::Client, identity: &str) -> Self {
        let reporter = Reporter {
            controller: "aigw".into(),
            instance: Some(identity.to_owned()),
        };
        Writer {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            written: HashMap::new(),
            applied: std::collections::BTreeSet::new(),
        }
    }

    /// Forgets what was written, so that a new leader diffs against the cluster alone.
    pub fn forget(&mut self) {
        self.written.clear();
    }

    /// Writes every condition of `compiled` that the cluster does not show yet.
    pub async fn statuses(&mut self, compiled: &Compiled, world: &Mutex<World>) -> Wrote {
        let now = k8s_openapi::jiff::Timestamp::now()
            .round(k8s_openapi::jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        let mut work = Vec::new();
        {
            let world = world.lock().unwrap_or_else(|p| p.into_inner());
            for (key, want) in &compiled.conditions {
                let Some(entry) = world.get(key) else {
                    continue;
                };
                if self.written.get(key) == Some(&(want.clone(), entry.generation)) {
                    continue;
                }
                if let Some(body) = status::patch(key, entry, want, &now) {
                    let was = current_type(&entry.conditions);
                    work.push((
                        key.clone(),
                        entry.uid.clone(),
                        entry.generation,
                        want.clone(),
                        was,
                        body,
                    ));
                }
            }
        }
        let client = &self.client;
        let recorder = &self.recorder;
        let results: Vec<_> = futures_util::stream::iter(work)
            .map(|(key, uid, generation, want, was, body)| async move {
                let result = write_status(client, &key, &body).await;
                if result.is_ok() {
                    notify(recorder, &key, &uid, &want, was.as_deref()).await;
                }
                (key, generation, want, result)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut wrote = Wrote::default();
        for (key, generation, want, result) in results {
            match result {
                Ok(()) => {
                    wrote.statuses += 1;
                    self.written.insert(key, (want, generation));
                }
                Err(error) => {
                    wrote.failed += 1;
                    tracing::warn!(object = %key.source_name(), %error, "status not written");
                }
            }
        }
        wrote
    }
}

impl Writer {
    /// With `--apply-gateway-api`: server-side applies each generated HTTPRoute and
    /// HTTPRouteFilter that the cluster does not show as generated (compared through the same
    /// sanitizing as every watched object), and deletes those this process applied that are no
    /// longer generated. Each carries an owner reference to its AIGatewayRoute, so deleting the
    /// route lets the garbage collector delete them.
    pub async fn generated(&mut self, compiled: &Compiled, world: &Mutex<World>) -> Wrote {
        let mut work = Vec::new();
        let mut current = std::collections::HashSet::new();
        {
            let world = world.lock().unwrap_or_else(|p| p.into_inner());
            for resource in &compiled.gateway_api {
                let Some(kind) = kind_of(resource) else {
                    continue;
                };
                let Some((key, want)) = super::world::sanitize(kind, resource) else {
                    continue;
                };
                current.insert(key.clone());
                if world.get(&key).is_some_and(|have| have.text == want.text) {
                    continue;
                }
                work.push((key, resource.clone()));
            }
        }
        let stale: Vec<Key> = self
            .applied
            .iter()
            .filter(|k| !current.contains(*k))
            .cloned()
            .collect();
        let mut wrote = Wrote::default();
        for (key, body) in work {
            match apply(&self.client, &key, &body).await {
                Ok(()) => {
                    wrote.statuses += 1;
                    self.applied.insert(key);
                }
                Err(error) => {
                    wrote.failed += 1;
                    tracing::warn!(object = %key.source_name(), %error, "generated resource not applied");
                }
            }
        }
        for key in stale {
            let resource = key.watched().api_resource();
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
            match api.delete(&key.name, &Default::default()).await {
                Ok(_) => {
                    self.applied.remove(&key);
                }
                Err(kube::Error::Api(status)) if status.code == 404 => {
                    self.applied.remove(&key);
                }
                Err(error) => {
                    tracing::warn!(object = %key.source_name(), %error, "stale generated resource not deleted");
                }
            }
        }
        wrote
    }
}

/// The watched kind of a generated resource.
fn kind_of(resource: &serde_json::Value) -> Option<usize> {
    let kind = resource["kind"].as_str()?;
    super::kinds::WATCHED.iter().position(|w| w.kind == kind)
}

async fn apply(
    client: &kube::Client,
    key: &Key,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let resource = key.watched().api_resource();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &key.namespace, &resource);
    let mut body = body.clone();
    // The generated resources are written at the version aigw watches them at.
    body["apiVersion"] = serde_json::Value::String(key.watched().api_version());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&key.name, &params, &Patch::Apply(&body))
        .await
        .map(|_| ())
}

fn current_type(conditions: &[serde_json::Value]) -> Option<String> {
    conditions
        .iter()
        .find_map(|c| {
            c["type"]
                .as_str()
                .filter(|t| matches!(*t, "Accepted" | "NotAccepted"))
        })
        .map(str::to_owned)
}

async fn write_status(
    client: &kube::Client,
    key: &Key,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let resource = key.watched().api_resource();
    let api: Api<DynamicObject> = if key.namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), &key.namespace, &resource)
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&key.name, &params, &Patch::Apply(body))
        .await
        .map(|_| ())
}

/// An Event when an object is refused (every new refusal: a new message is a new finding), and
/// when a refused object is accepted again.
async fn notify(recorder: &Recorder, key: &Key, uid: &str, want: &Condition, was: Option<&str>) {
    let event = if want.accepted() {
        if was != Some("NotAccepted") {
            return;
        }
        Event {
            type_: EventType::Normal,
            reason: "Accepted".into(),
            note: Some(cut(&want.message)),
            action: "Reconcile".into(),
            secondary: None,
        }
    } else {
        Event {
            type_: EventType::Warning,
            reason: "NotAccepted".into(),
            note: Some(cut(&want.message)),
            action: "Reconcile".into(),
            secondary: None,
        }
    };
    let watched = key.watched();
    let reference = ObjectReference {
        api_version: Some(watched.api_version()),
        kind: Some(watched.kind.into()),
        name: Some(key.name.clone()),
        namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
        uid: (!uid.is_empty()).then(|| uid.to_owned()),
        ..ObjectReference::default()
    };
    if let Err(error) = recorder.publish(&event, &reference).await {
        tracing::warn!(object = %key.source_name(), %error, "event not recorded");
    }
}

/// At most [`NOTE_LIMIT`] bytes, cut on a character boundary.
fn cut(text: &str) -> String {
    if text.len() <= NOTE_LIMIT {
        return text.to_owned();
    }
    let mut end = NOTE_LIMIT - 3;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}
