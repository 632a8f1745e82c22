//! The Redis quota store, so that several aigw replicas share one budget. A bucket-window is
//! one hash (`used`, `reserved`) that expires after two windows. Reserving is one Lua script,
//! atomic across every bucket of the request (check all, then reserve all: the same rule as
//! the local store), so a request costs one round trip before it is forwarded; settling is a
//! second script sent without waiting, pipelined by the multiplexed connection with the other
//! requests' commands.
//!
//! Redis down or slow: every call is bounded ([`crate::redis_link`]); the error is logged and
//! counted (`aigw_quota_store_errors_total`) and the request goes through uncharged (fail open,
//! the default) or is refused with a 503 (fail closed, `--quota-fail closed`).

use super::Part;
use super::store::FailMode;
use crate::redis_link::{Link, StoreError, bounded};

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

pub struct Redis {
    link: std::sync::Arc<Link>,
    fail: FailMode,
    reserve: redis::Script,
    settle: redis::Script,
    metrics: crate::metrics::Metrics,
}

impl Redis {
    pub fn new(
        link: std::sync::Arc<Link>,
        fail: FailMode,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Redis {
            link,
            fail,
            reserve: redis::Script::new(RESERVE),
            settle: redis::Script::new(SETTLE),
            metrics,
        }
    }

    pub fn fail_mode(&self) -> FailMode {
        self.fail
    }

    fn failed(&self, error: &StoreError) {
        self.metrics.quota_store_error();
        tracing::warn!(%error, "quota store call failed");
    }

    pub async fn reserve(&self, parts: &[Part]) -> Result<Option<usize>, StoreError> {
        let result = async {
            let mut connection = self.link.connection().await?;
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
        let Some(mut connection) = self.link.current() else {
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
