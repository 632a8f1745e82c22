//! The connection to Redis that the QuotaPolicy store and the global rate limits share (one
//! client per process, `--quota-redis`): dialled on first use, redialled after a failure at
//! most once per [`REDIAL`], every call bounded by [`TIMEOUT`] so that Redis down or slow is an
//! error to decide on (fail open or closed), never a hang. The multiplexed connection pipelines
//! the commands of concurrent requests.

use redis::aio::ConnectionManager;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most a Redis call may take.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed dial, the next waits this long.
const REDIAL: Duration = Duration::from_secs(1);

/// Why Redis could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(String),
    #[error("Redis did not answer within {0} ms")]
    Timeout(u64),
}

/// A Redis call within [`TIMEOUT`].
pub async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| StoreError::Timeout(TIMEOUT.as_millis() as u64))?
        .map_err(|e| StoreError::Redis(e.to_string()))
}

pub struct Link {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    /// Held by the one dial in progress.
    dialling: tokio::sync::Mutex<()>,
    last_dial: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `url` (`redis://host:port/db`); nothing is dialled until first use.
    pub fn new(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(Link {
            client,
            connection: Mutex::new(None),
            dialling: tokio::sync::Mutex::new(()),
            last_dial: Mutex::new(None),
        })
    }

    /// The connection if one is made.
    pub fn current(&self) -> Option<ConnectionManager> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The connection, dialled on first use (bounded, and not again within [`REDIAL`]).
    pub async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _dialling = self.dialling.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        {
            let mut last = self
                .last_dial
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if last.is_some_and(|at| at.elapsed() < REDIAL) {
                return Err(StoreError::Redis("not connected (redialling soon)".into()));
            }
            *last = Some(Instant::now());
        }
        let dialled = bounded(ConnectionManager::new(self.client.clone())).await?;
        *self
            .connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(dialled.clone());
        Ok(dialled)
    }
}
