//! Status writes: the server-side apply body of an object's condition, or nothing when the
//! object already shows it. Pure; the clock is a parameter.
//!
//! As Kubernetes conditions require, `lastTransitionTime` changes only when the condition's
//! type or status does: a new message on an object that stays NotAccepted keeps the time it
//! stopped being accepted. A write is skipped when the object already carries exactly the
//! condition aigw wants (type, status, reason, message and `observedGeneration`), so a
//! restarted controller, or a second replica taking over, writes nothing that is already true.

use super::reconcile::Condition;
use super::world::{Entry, Key};
use serde_json::{Value, json};

/// The condition types aigw writes (one at a time).
const OURS: &[&str] = &["Accepted", "NotAccepted"];

/// The apply body for `key`'s status, or `None` when `entry` already shows `want`.
pub fn patch(key: &Key, entry: &Entry, want: &Condition, now: &str) -> Option<Value> {
    let ours: Vec<&Value> = entry
        .conditions
        .iter()
        .filter(|c| c["type"].as_str().is_some_and(|t| OURS.contains(&t)))
        .collect();
    let current = match ours.as_slice() {
        [one] => Some(*one),
        _ => None,
    };
    let same = |c: &Value| {
        c["type"] == want.type_
            && c["status"] == want.status
            && c["reason"] == want.reason
            && c["message"] == want.message.as_str()
            && c["observedGeneration"].as_i64() == Some(entry.generation)
    };
    if current.is_some_and(same) {
        return None;
    }
    let since = current
        .filter(|c| c["type"] == want.type_ && c["status"] == want.status)
        .and_then(|c| c["lastTransitionTime"].as_str())
        .unwrap_or(now);
    let watched = key.watched();
    let mut metadata = json!({"name": key.name});
    if !key.namespace.is_empty() {
        metadata["namespace"] = json!(key.namespace);
    }
    Some(json!({
        "apiVersion": watched.api_version(),
        "kind": watched.kind,
        "metadata": metadata,
        "status": {"conditions": [{
            "type": want.type_,
            "status": want.status,
            "reason": want.reason,
            "message": want.message,
            "observedGeneration": entry.generation,
            "lastTransitionTime": since,
        }]},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::kinds::WATCHED;

    fn key() -> Key {
        Key {
            kind: WATCHED
                .iter()
                .position(|w| w.kind == "AIGatewayRoute")
                .unwrap_or(0),
            namespace: "default".into(),
            name: "chat".into(),
        }
    }

    fn entry(conditions: Vec<Value>, generation: i64) -> Entry {
        Entry {
            text: "".into(),
            uid: "u".into(),
            generation,
            conditions,
            generated: false,
        }
    }

    fn not_accepted(message: &str) -> Condition {
        Condition {
            type_: "NotAccepted",
            status: "False",
            reason: "ReconciliationFailed",
            message: message.into(),
        }
    }

    fn written(patch: &Value) -> Value {
        patch["status"]["conditions"][0].clone()
    }

    #[test]
    fn a_first_write_sets_the_time_and_the_generation() {
        let patch = patch(&key(), &entry(vec![], 4), &not_accepted("bad"), "T1").expect("write");
        let c = written(&patch);
        assert_eq!(c["lastTransitionTime"], "T1");
        assert_eq!(c["observedGeneration"], 4);
        assert_eq!(patch["apiVersion"], "aigateway.envoyproxy.io/v1beta1");
        assert_eq!(patch["metadata"]["namespace"], "default");
    }

    #[test]
    fn what_is_already_shown_is_not_written_again() {
        let first = patch(&key(), &entry(vec![], 4), &not_accepted("bad"), "T1").expect("write");
        let shown = entry(vec![written(&first)], 4);
        assert_eq!(patch(&key(), &shown, &not_accepted("bad"), "T2"), None);
        // A new generation is written, keeping the transition time.
        let newer = entry(vec![written(&first)], 5);
        let again = patch(&key(), &newer, &not_accepted("bad"), "T2").expect("write");
        assert_eq!(written(&again)["lastTransitionTime"], "T1");
        // So is a new message.
        let other = patch(&key(), &shown, &not_accepted("worse"), "T3").expect("write");
        assert_eq!(written(&other)["lastTransitionTime"], "T1");
    }

    #[test]
    fn a_transition_takes_the_new_time() {
        let first = patch(&key(), &entry(vec![], 1), &not_accepted("bad"), "T1").expect("write");
        let shown = entry(vec![written(&first)], 1);
        let ok = Condition {
            type_: "Accepted",
            status: "True",
            reason: "ReconciliationSucceeded",
            message: "fine".into(),
        };
        let fixed = patch(&key(), &shown, &ok, "T9").expect("write");
        assert_eq!(written(&fixed)["lastTransitionTime"], "T9");
        assert_eq!(written(&fixed)["type"], "Accepted");
    }
}
