//! Gateway sessions: one per MCP client session, each holding one session per server of the
//! route, created when the client initializes (and again, lazily, for a server that was down
//! or forgot its session), and ended when the client sends DELETE or leaves them idle for
//! [`IDLE`].
//!
//! A session belongs to this process (its id is 256 random bits, base64url): a client that
//! reaches another replica is asked to initialize again (404), as the transport allows.
//! What a session keeps of each server is its session id, negotiated version and
//! capabilities; a server that failed is tried again no sooner than [`RETRY`] later.

use super::upstream::{Call, Failure, SESSION};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A session unused this long is ended.
pub const IDLE: Duration = Duration::from_secs(3600);
/// A server that failed to initialize is not tried again before this.
pub const RETRY: Duration = Duration::from_secs(1);
/// The most sessions held at once; an initialize past it is refused (503).
pub const MOST: usize = 100_000;
/// Idle sessions are swept when the count of sessions reaches a multiple of this.
const SWEEP_EVERY: usize = 1024;

/// Every session of the process, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<Arc<str>, Arc<Session>>>,
}

/// One client session.
#[derive(Debug)]
pub struct Session {
    pub id: Arc<str>,
    /// The MCPRoute's name: a session is used only on the route that made it.
    pub route: Arc<str>,
    /// Who opened it (the OAuth token's `iss` and `sub`), on a route that takes tokens: only
    /// the same caller may use it, so a session id seen elsewhere is of no use to another.
    pub owner: Option<String>,
    /// The version negotiated with the client.
    pub version: String,
    /// The client's `initialize` params, to initialize servers lazily on its behalf.
    pub init: Value,
    /// Per server of the route, by name.
    pub servers: HashMap<Arc<str>, Server>,
    /// Resource URIs listed, to the server that listed them.
    pub resources: Mutex<HashMap<String, Arc<str>>>,
    /// Requests servers sent to the client (their ids as JSON), to the server that sent them:
    /// where the client's response goes.
    pub pending: Mutex<HashMap<String, Arc<str>>>,
    used: Mutex<Instant>,
    ids: AtomicU64,
}

/// A server's session, as far as it got.
#[derive(Debug, Default)]
pub struct Server {
    state: tokio::sync::Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    ready: Option<Arc<Ready>>,
    failed: Option<Instant>,
}

/// A server session that initialized.
#[derive(Debug)]
pub struct Ready {
    pub session: Option<http::HeaderValue>,
    pub version: String,
    pub capabilities: Value,
}

impl Sessions {
    /// Keeps `session`; false when the process holds [`MOST`] already.
    pub fn insert(&self, session: Arc<Session>) -> bool {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Idle sessions are swept now and then, and whenever the limit is reached.
        if map.len() >= MOST || map.len() % SWEEP_EVERY == SWEEP_EVERY - 1 {
            map.retain(|_, s| !s.idle());
            if map.len() >= MOST {
                return false;
            }
        }
        map.insert(session.id.clone(), session);
        true
    }

    /// The live session `id`, marked used.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let session = map.get(id)?.clone();
        if session.idle() {
            map.remove(id);
            return None;
        }
        *session
            .used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Instant::now();
        Some(session)
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
    }
}

impl Session {
    /// A new session with a fresh id; `None` when no id can be drawn.
    pub fn new(
        (route, owner): (Arc<str>, Option<String>),
        servers: impl Iterator<Item = Arc<str>>,
        version: String,
        init: Value,
    ) -> Option<Self> {
        Some(Session {
            id: new_id()?,
            route,
            owner,
            version,
            init,
            servers: servers.map(|name| (name, Server::default())).collect(),
            resources: Mutex::default(),
            pending: Mutex::default(),
            used: Mutex::new(Instant::now()),
            ids: AtomicU64::new(0),
        })
    }

    fn idle(&self) -> bool {
        self.used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .elapsed()
            > IDLE
    }

    /// A request id of the gateway's own, unlike any a client sends.
    pub fn next_id(&self) -> Value {
        json!(format!("aigw-{}", self.ids.fetch_add(1, Ordering::Relaxed)))
    }

    /// The server's session, initialized first when it has none (or when `stale`, the one it
    /// had, is what the server forgot). A server that failed within [`RETRY`] is not asked.
    pub async fn ready(
        &self,
        name: &str,
        call: Call<'_>,
        stale: Option<&Arc<Ready>>,
    ) -> Result<Arc<Ready>, Failure> {
        let server = self.servers.get(name).ok_or(Failure::NoEndpoint)?;
        let mut state = server.state.lock().await;
        match &state.ready {
            Some(ready) if stale.is_none_or(|s| !Arc::ptr_eq(s, ready)) => return Ok(ready.clone()),
            _ => state.ready = None,
        }
        if state.failed.is_some_and(|at| at.elapsed() < RETRY) {
            return Err(Failure::Unreachable(
                "the server failed to initialize a moment ago",
            ));
        }
        match self.initialize(call).await {
            Ok(ready) => {
                let ready = Arc::new(ready);
                state.ready = Some(ready.clone());
                state.failed = None;
                Ok(ready)
            }
            Err(failure) => {
                state.failed = Some(Instant::now());
                Err(failure)
            }
        }
    }

    /// The server's session if it has one, without initializing.
    pub async fn existing(&self, name: &str) -> Option<Arc<Ready>> {
        self.servers.get(name)?.state.lock().await.ready.clone()
    }

    /// Forgets a server's session (it failed): the next use initializes again.
    pub async fn forget(&self, name: &str, failed: bool) {
        if let Some(server) = self.servers.get(name) {
            let mut state = server.state.lock().await;
            state.ready = None;
            if failed {
                state.failed = Some(Instant::now());
            }
        }
    }

    /// `initialize` and `notifications/initialized` with the client's params.
    async fn initialize(&self, call: Call<'_>) -> Result<Ready, Failure> {
        let request = json!({
            "jsonrpc": "2.0",
            "id": self.next_id(),
            "method": "initialize",
            "params": self.init,
        });
        let call = Call {
            session: None,
            version: None,
            ..call
        };
        let (headers, response) = call.request(&request).await?;
        let result = response
            .get("result")
            .ok_or(Failure::Invalid("initialize was refused"))?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(&self.version)
            .to_owned();
        let ready = Ready {
            session: headers.get(SESSION).cloned(),
            version,
            capabilities: result
                .get("capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
        };
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let call = Call {
            session: ready.session.as_ref(),
            version: Some(&ready.version),
            ..call
        };
        call.notify(&initialized).await?;
        Ok(ready)
    }
}

/// 256 bits of the system's generator, base64url; `None` if it fails (a session id must not
/// be guessable, so there is no weaker fallback: the client is answered 500).
fn new_id() -> Option<Arc<str>> {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut bytes).ok()?;
    Some(Arc::from(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ))
}
