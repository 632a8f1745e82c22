//! Where quota counts live, behind one interface: in this process ([`Local`], the default:
//! sixteen shards, each a mutex held for a few map operations), or in Redis (`super::redis`),
//! so that replicas share one budget. Both keep, per bucket and window, what was `used` and
//! what is `reserved` by requests in flight, and expire a window's counts after two windows.
//!
//! The admission rule, the same in both: a request is let through when its bucket has budget
//! left (`used < limit`) and either its estimate fits (`used + reserved + estimate <= limit`)
//! or nothing else is in flight (`reserved == 0`), so that a request whose estimate alone is
//! larger than the remaining budget still gets through an idle bucket. The budget is then
//! overshot by at most what the requests let through used beyond their estimates, and by at
//! most one request when estimates hold.

use super::Part;
use std::collections::HashMap;
use std::sync::Mutex;

const SHARDS: usize = 16;
/// A shard sweeps expired windows when it holds more buckets than this.
const SWEEP_AT: usize = 4096;

/// What to do when the store cannot be asked (Redis down or slow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FailMode {
    /// Let the request through uncharged (Envoy's rate-limit filter default).
    #[default]
    Open,
    /// Refuse it with a 503.
    Closed,
}

pub use crate::redis_link::StoreError;

/// The quota store of the process (kept across table reloads, so budgets are too).
pub enum Store {
    Local(Box<Local>),
    Redis(Box<super::redis::Redis>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Local(_) => "Store::Local",
            Store::Redis(_) => "Store::Redis",
        })
    }
}

impl Store {
    pub fn local() -> Self {
        Store::Local(Box::default())
    }

    /// The store in the Redis of `link`.
    pub fn redis(
        link: std::sync::Arc<crate::redis_link::Link>,
        fail: FailMode,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Store::Redis(Box::new(super::redis::Redis::new(link, fail, metrics)))
    }

    pub fn fail_mode(&self) -> FailMode {
        match self {
            Store::Local(_) => FailMode::Open,
            Store::Redis(r) => r.fail_mode(),
        }
    }

    /// Reserves every part, or none: `Ok(Some(i))` when part `i` has no room.
    pub async fn reserve(&self, parts: &[Part]) -> Result<Option<usize>, StoreError> {
        match self {
            Store::Local(local) => Ok(local.reserve(parts, super::now_ms())),
            Store::Redis(redis) => redis.reserve(parts).await,
        }
    }

    /// Replaces each part's reservation by its `actual` cost. Never waits on the request path:
    /// Redis settles on its own task, pipelined with the other requests' commands.
    pub fn settle(&self, parts: Vec<Part>, actual: Vec<u64>) {
        match self {
            Store::Local(local) => local.settle(&parts, &actual, super::now_ms()),
            Store::Redis(redis) => redis.settle(parts, actual),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Count {
    used: u64,
    reserved: u64,
    expires_ms: u64,
}

/// A shard's map: foldhash, randomly seeded per map (keys carry client header values, so
/// the seed matters), and far cheaper than SipHash on these short keys.
type Shard = HashMap<String, Count, foldhash::quality::RandomState>;

/// The in-process store.
#[derive(Default)]
pub struct Local {
    shards: [Mutex<Shard>; SHARDS],
}

fn shard_of(key: &str) -> usize {
    // FNV-1a: cheap and stable; the keys are ours.
    let mut hash: u32 = 0x811c_9dc5;
    for b in key.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    hash as usize % SHARDS
}

impl Local {
    fn lock(&self, i: usize) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn reserve(&self, parts: &[Part], now: u64) -> Option<usize> {
        // Lock every shard involved, in index order (no deadlock), so the check and the
        // reservation are one step. No heap: a request has a handful of parts.
        let mut guards: [Option<std::sync::MutexGuard<'_, Shard>>; SHARDS] =
            std::array::from_fn(|_| None);
        let involved = parts
            .iter()
            .fold(0u32, |set, p| set | 1 << shard_of(&p.key));
        for (i, guard) in guards.iter_mut().enumerate() {
            if involved & 1 << i != 0 {
                *guard = Some(self.lock(i));
            }
        }
        for (i, part) in parts.iter().enumerate() {
            let count = guards[shard_of(&part.key)]
                .as_ref()
                .and_then(|map| map.get(&part.key).copied())
                .filter(|c| c.expires_ms > now)
                .unwrap_or_default();
            if part.enforce && !admits(count.used, count.reserved, part.reserved, part.limit) {
                return Some(i);
            }
        }
        for part in parts {
            let Some(map) = guards[shard_of(&part.key)].as_mut() else {
                continue;
            };
            if map.len() > SWEEP_AT {
                map.retain(|_, c| c.expires_ms > now);
            }
            // The key is copied only for a bucket's first request of a window.
            let count = match map.get_mut(&part.key) {
                Some(count) => count,
                None => map.entry(part.key.clone()).or_default(),
            };
            if count.expires_ms <= now {
                *count = Count::default();
            }
            count.reserved = count.reserved.saturating_add(part.reserved);
            count.expires_ms = now + part.ttl_ms;
        }
        None
    }

    fn settle(&self, parts: &[Part], actual: &[u64], now: u64) {
        for (part, actual) in parts.iter().zip(actual) {
            let mut map = self.lock(shard_of(&part.key));
            // A window swept or expired since the reservation has nothing left to charge.
            let Some(count) = map.get_mut(&part.key).filter(|c| c.expires_ms > now) else {
                continue;
            };
            count.reserved = count.reserved.saturating_sub(part.reserved);
            count.used = count.used.saturating_add(*actual);
        }
    }

    #[cfg(test)]
    fn counts(&self, key: &str, now: u64) -> (u64, u64) {
        let map = self.lock(shard_of(key));
        map.get(key)
            .filter(|c| c.expires_ms > now)
            .map_or((0, 0), |c| (c.used, c.reserved))
    }
}

/// The admission rule (module doc).
pub(super) fn admits(used: u64, reserved: u64, estimate: u64, limit: u64) -> bool {
    used < limit
        && (used.saturating_add(reserved).saturating_add(estimate) <= limit || reserved == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue #21: a client's `max_tokens` (the estimate) may be any number; the rule
    /// saturates instead of overflowing.
    #[test]
    fn the_admission_rule_saturates() {
        assert!(!admits(10, 5, u64::MAX, 1_000));
        assert!(
            admits(10, 0, u64::MAX, 1_000),
            "the first reservation is always let in"
        );
        assert!(!admits(u64::MAX, u64::MAX, u64::MAX, u64::MAX));
    }

    fn part(key: &str, reserved: u64, limit: u64) -> Part {
        Part {
            key: key.into(),
            reserved,
            limit,
            enforce: true,
            ttl_ms: 60_000,
            window_end_ms: 0,
            quota: 0,
        }
    }

    #[test]
    fn reservations_count_until_settled_and_the_rule_admits_one_into_an_idle_bucket() {
        let local = Local::default();
        let now = 1_000;
        assert_eq!(local.reserve(&[part("a", 40, 100)], now), None);
        assert_eq!(local.reserve(&[part("a", 40, 100)], now), None);
        // 80 reserved: a third does not fit.
        assert_eq!(local.reserve(&[part("a", 40, 100)], now), Some(0));
        local.settle(&[part("a", 40, 100)], &[10], now);
        assert_eq!(local.counts("a", now), (10, 40));
        assert_eq!(local.reserve(&[part("a", 40, 100)], now), None);
        // All or none: the first part fits, the second does not, nothing is reserved.
        assert_eq!(
            local.reserve(&[part("b", 1, 100), part("a", 40, 100)], now),
            Some(1)
        );
        assert_eq!(local.counts("b", now), (0, 0));
        // An estimate larger than the whole budget passes an idle bucket.
        assert_eq!(local.reserve(&[part("c", 500, 100)], now), None);
        assert_eq!(local.reserve(&[part("c", 1, 100)], now), Some(0));
        // Expired windows start again.
        assert_eq!(local.counts("a", now + 60_001), (0, 0));
        assert!(!admits(100, 0, 1, 100), "a spent budget admits nothing");
    }
}
