//! The Redis quota store, so that several aigw replicas share one budget. A bucket-window is
//! one hash (`used`, `reserved`) that expires after two windows. Reserving is one Lua script,
//! atomic across every bucket of the request (check all, then reserve all: the same rule as
//! the local store), so a request costs one round trip before it is forwarded; settling is a
//! second script sent without waiting, pipelined by the multiplexed connection with the other
//! requests' commands.
//!
//! Redis down or slow: every call is bounded by [`TIMEOUT`]; the error is logged and counted
//! (`aigw_quota_store_errors_total`) and the request goes through uncharged (fail open, the
//! default) or is refused with a 503 (fail closed, `--quota-fail closed`). The connection is
//! made on first use and remade after a failure, at most once per [`REDIAL`].

use super::Part;
use super::store::{FailMode, StoreError};
use redis::aio::ConnectionManager;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The most a quota call to Redis may take.
pub const TIMEOUT: Duration = Duration::from_millis(250);
/// After a failed dial, the next waits this long.
const REDIAL: Duration = Duration::from_secs(1);

/// Check every bucket, then reserve in every bucket; the 1-based index of a full bucket, or 0.
/// `ARGV` per key: estimate, limit, ttl (ms), enforce (`1`/`0`).
const RESERVE: &str = r"
for i = 1, #KEYS do
  local b = (i - 1) * 4
  if ARGV[b + 4] == '1' then
    local used = tonumber(redis.call('HGET', KEYS[i], 'used') or '0')
    local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
    local est = tonumber(ARGV[b + 1])
    local limit = tonumber(ARGV[b + 2])
    if not (used < limit and (used + reserved + est <= limit or reserved == 0)) then
      return i
    end
  end
end
for i = 1, #KEYS do
  local b = (i - 1) * 4
  redis.call('HINCRBY', KEYS[i], 'reserved', ARGV[b + 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[b + 3])
end
return 0
";

/// Per key: release the reservation (`ARGV[2i-1]`), charge the true cost (`ARGV[2i]`); a
/// window that has expired is left alone.
const SETTLE: &str = r"
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local reserved = tonumber(redis.call('HGET', KEYS[i], 'reserved') or '0')
    local release = math.min(reserved, tonumber(ARGV[2 * i - 1]))
    redis.call('HINCRBY', KEYS[i], 'reserved', -release)
    redis.call('HINCRBY', KEYS[i], 'used', ARGV[2 * i])
  end
end
return 0
";

/// A Redis call within [`TIMEOUT`].
async fn bounded<T>(
    call: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(TIMEOUT, call)
        .await
        .map_err(|_| StoreError::Timeout(TIMEOUT.as_millis() as u64))?
        .map_err(|e| StoreError::Redis(e.to_string()))
}

pub struct Redis {
    client: redis::Client,
    fail: FailMode,
    connection: Mutex<Option<ConnectionManager>>,
    /// Held by the one dial in progress.
    dialling: tokio::sync::Mutex<()>,
    last_dial: Mutex<Option<Instant>>,
    reserve: redis::Script,
    settle: redis::Script,
    metrics: crate::metrics::Metrics,
}

impl Redis {
    pub fn new(
        url: &str,
        fail: FailMode,
        metrics: crate::metrics::Metrics,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url).map_err(|e| StoreError::Redis(e.to_string()))?;
        Ok(Redis {
            client,
            fail,
            connection: Mutex::new(None),
            dialling: tokio::sync::Mutex::new(()),
            last_dial: Mutex::new(None),
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
            metrics,
        })
    }

    pub fn fail_mode(&self) -> FailMode {
        self.fail
    }

    /// The connection, dialled on first use (bounded, and not again within [`REDIAL`]).
    fn current(&self) -> Option<ConnectionManager> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
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

    fn failed(&self, error: &StoreError) {
        self.metrics.quota_store_error();
        tracing::warn!(%error, "quota store call failed");
    }

    pub async fn reserve(&self, parts: &[Part]) -> Result<Option<usize>, StoreError> {
        let result = async {
            let mut connection = self.connection().await?;
            let mut call = self.reserve.prepare_invoke();
            for part in parts {
                call.key(&part.key);
            }
            for part in parts {
                call.arg(part.reserved)
                    .arg(part.limit)
                    .arg(part.ttl_ms)
                    .arg(if part.enforce { "1" } else { "0" });
            }
            let full: i64 = bounded(call.invoke_async(&mut connection)).await?;
            Ok(usize::try_from(full - 1).ok())
        }
        .await;
        if let Err(error) = &result {
            self.failed(error);
        }
        result
    }

    pub fn settle(&self, parts: Vec<Part>, actual: Vec<u64>) {
        let script = self.settle.clone();
        let Some(mut connection) = self.current() else {
            self.failed(&StoreError::Redis(
                "not connected; a settlement is lost".into(),
            ));
            return;
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let mut call = script.prepare_invoke();
            for part in &parts {
                call.key(&part.key);
            }
            for (part, actual) in parts.iter().zip(&actual) {
                call.arg(part.reserved).arg(*actual);
            }
            if bounded(call.invoke_async::<i64>(&mut connection))
                .await
                .is_err()
            {
                metrics.quota_store_error();
                tracing::warn!("a quota settlement did not reach Redis");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_script_rule_is_the_local_rule() {
        // The Lua condition spelled as the Rust one, for the cases that matter.
        for (used, reserved, est, limit) in [
            (0, 0, 500, 100),
            (10, 40, 40, 100),
            (10, 80, 40, 100),
            (100, 0, 1, 100),
        ] {
            let lua = used < limit && (used + reserved + est <= limit || reserved == 0);
            assert_eq!(lua, super::super::store::admits(used, reserved, est, limit));
        }
    }
}
