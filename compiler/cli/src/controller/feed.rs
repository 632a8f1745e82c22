//! The watchers that feed the world: one kube-runtime `watcher` per watched kind and namespace
//! scope (with its own list/watch, bookmarks, resume from the last resourceVersion, and relist
//! after 410 Gone), each event applied to the world under its lock.
//!
//! kube-runtime's `reflector` store is not used: it would keep every Secret whole. The world
//! is our own store, which keeps only what [`super::world::sanitize`] leaves.

use super::kinds::{SECRET_FIELD_SELECTOR, WATCHED};
use super::world::World;
use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What the watchers share with the reconciler.
pub struct Feed {
    pub world: Mutex<World>,
    /// Bumped on every event the world took (the reconciler debounces on it).
    pub changed: watch::Sender<u64>,
    /// How many watchers have not finished their first list yet.
    pub unsynced: watch::Sender<usize>,
}

/// Starts a watcher per kind and scope (`namespaces` empty: the whole cluster).
pub fn start(client: &kube::Client, namespaces: &[String], feed: &Arc<Feed>) {
    let scopes: Vec<String> = if namespaces.is_empty() {
        vec![String::new()]
    } else {
        namespaces.to_vec()
    };
    let mut watchers = Vec::new();
    for (kind, watched) in WATCHED.iter().enumerate() {
        let resource = watched.api_resource();
        let kind_scopes = if watched.namespaced {
            scopes.clone()
        } else {
            vec![String::new()]
        };
        for scope in kind_scopes {
            let api: Api<DynamicObject> = if scope.is_empty() {
                Api::all_with(client.clone(), &resource)
            } else {
                Api::namespaced_with(client.clone(), &scope, &resource)
            };
            let mut config = watcher::Config::default();
            if watched.is_secret() {
                config = config.fields(SECRET_FIELD_SELECTOR);
            }
            watchers.push((api, config, kind, scope));
        }
    }
    // Counted before any starts: a watcher that lists at once must find its place counted.
    feed.unsynced.send_replace(watchers.len());
    for (api, config, kind, scope) in watchers {
        tokio::spawn(run(api, config, kind, scope, feed.clone()));
    }
}

async fn run(
    api: Api<DynamicObject>,
    config: watcher::Config,
    kind: usize,
    scope: String,
    feed: Arc<Feed>,
) {
    let name = WATCHED[kind].kind;
    let mut synced = false;
    let mut absent_logged = false;
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let done = match event {
            Ok(event) => apply(&feed, kind, &scope, event),
            Err(error) if not_installed(&error) => {
                if !absent_logged {
                    tracing::info!(
                        kind = name,
                        "not served by the API server (CRD not installed?); none of it is compiled until it is"
                    );
                    absent_logged = true;
                }
                true
            }
            Err(error) => {
                tracing::warn!(kind = name, namespace = %scope, %error, "watch failed; retrying");
                false
            }
        };
        if done && !synced {
            synced = true;
            tracing::debug!(kind = name, namespace = %scope, "listed");
            feed.unsynced.send_modify(|n| *n = n.saturating_sub(1));
        }
    }
}

/// Applies one event; true when the watcher's (re)list is complete.
fn apply(feed: &Feed, kind: usize, scope: &str, event: Event<DynamicObject>) -> bool {
    let value = |o: &DynamicObject| serde_json::to_value(o).unwrap_or_default();
    let mut world = feed.world.lock().unwrap_or_else(|p| p.into_inner());
    let done = match &event {
        Event::Apply(o) => {
            world.apply(kind, &value(o));
            false
        }
        Event::Delete(o) => {
            world.delete(kind, &value(o));
            false
        }
        Event::Init => {
            world.relist_start(kind, scope);
            false
        }
        Event::InitApply(o) => {
            world.relist_apply(kind, scope, &value(o));
            false
        }
        Event::InitDone => {
            world.relist_done(kind, scope);
            true
        }
    };
    let revision = world.revision();
    drop(world);
    feed.changed.send_replace(revision);
    done
}

/// A kind the API server does not serve answers 404 to its list.
fn not_installed(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}
