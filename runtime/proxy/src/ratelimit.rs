//! Request-rate limits: Envoy Gateway's BackendTrafficPolicy `rateLimit`, per client. A rule
//! counts the requests all of whose client selectors hold ([`crate::select`]; `Distinct`
//! values key a counter each) in fixed windows aligned to the epoch, as Envoy's rate-limit
//! service counts them; a request past `limit.requests` in its window is refused with 429 and
//! `Retry-After` (the seconds to the window's end), after being counted. A `shadowMode` rule
//! counts and never refuses. Answers carry Envoy's draft-03 headers for the tightest rule:
//! `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset` (seconds), unless a rule
//! says `xRateLimitHeaders: Off`.
//!
//! Local rules count in this process (per replica, as Envoy's local rate limit; Envoy refills
//! its token bucket whole once per unit, so its limit is the same fixed window). Global rules
//! count in Redis, shared by every replica, through the link the quota store uses: all the
//! request's counters in one script, one round trip. Redis down: `--quota-fail`'s choice (open
//! lets the request through uncounted, closed refuses it with 503), logged and counted. With no
//! Redis configured, global rules count locally, and that is logged when the table loads.
//!
//! A counter is per route unless the rule is `shared`: a policy on a Gateway gives each of its
//! routes their own budget, as Envoy Gateway does.
//!
//! Not `governor`: its GCRA spreads a limit evenly over the window, where Envoy Gateway's
//! semantics, which its users configure for, are a count per window.

use crate::redis_link::{Link, bounded};
use crate::select::{self, Selector};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

const SHARDS: usize = 16;
/// A shard sweeps expired windows when it holds more counters than this.
const SWEEP_AT: usize = 4096;

/// Add `ARGV[i + 1]` to every key (0 reads it), give each new one its time to live
/// (`ARGV[1]`); the counts, in order.
const INCREMENT: &str = r"
local counts = {}
for i = 1, #KEYS do
  local n = redis.call('INCRBY', KEYS[i], ARGV[i + 1])
  if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
  counts[i] = n
end
return counts
";

/// The compiled limits of a generation, parallel to the table's `rate_limits`.
#[derive(Debug, Default)]
pub struct RateLimits {
    policies: Vec<Vec<Arc<Rule>>>,
}

#[derive(Debug)]
struct Rule {
    /// `policy/rule/{i}`.
    id: Arc<str>,
    selectors: Vec<Selector>,
    requests: u64,
    window_ms: u64,
    global: bool,
    shared: bool,
    shadow: bool,
    headers: bool,
    /// Taken on the request path (0: checked only).
    request_cost: u64,
    /// Taken after the answer.
    response: Option<Later>,
}

/// What a rule takes after the answer.
#[derive(Clone, Debug)]
enum Later {
    Number(u64),
    /// The request cost the route recorded under this metadata key.
    Cost(Arc<str>),
}

/// What a request owes its rules after its answer: settled when its record closes. Each item
/// is a rule, its counter's key without the window, and what the answer takes.
#[derive(Debug)]
pub struct Owed {
    counters: Arc<Counters>,
    items: Vec<(Arc<Rule>, String, Later)>,
}

/// A limit that cannot be compiled (a table the compiler did not write).
#[derive(Debug, thiserror::Error)]
#[error("BackendTrafficPolicy `{policy}`: {reason}")]
pub struct RateLimitError {
    policy: String,
    reason: String,
}

/// What the request's rules say: refused (with the seconds until the window ends), and the
/// headers of the tightest rule.
#[derive(Debug, Default)]
pub struct Verdict {
    pub retry_after: Option<u64>,
    /// `(limit, remaining, reset seconds)`.
    pub headers: Option<(u64, u64, u64)>,
    /// The store could not be asked and fails closed.
    pub unavailable: bool,
    /// What the answer will owe (response costs).
    pub owed: Option<Owed>,
}

/// Counters of one shard: key → (count, when its window's key expires).
type Shard = HashMap<String, (u64, u64), foldhash::quality::RandomState>;

/// Where the counts live: the process, and Redis for global rules. Kept across reloads.
pub struct Counters {
    local: [Mutex<Shard>; SHARDS],
    redis: Option<Arc<Link>>,
    fail: crate::quota::FailMode,
    script: redis::Script,
    metrics: crate::metrics::Metrics,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters")
            .field("redis", &self.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    pub fn compile(snapshot: &aigw_table::Snapshot) -> Result<Self, RateLimitError> {
        let mut policies = Vec::new();
        for policy in &snapshot.table().rate_limits {
            let mut rules = Vec::new();
            for (i, rule) in policy.rules.iter().enumerate() {
                let selectors = rule
                    .client_selectors
                    .iter()
                    .map(Selector::compile)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|reason| RateLimitError {
                        policy: policy.name.clone(),
                        reason,
                    })?;
                let response = match (&rule.response_cost_key, rule.response_cost) {
                    (Some(key), _) => Some(Later::Cost(key.as_str().into())),
                    (None, Some(n)) => Some(Later::Number(n)),
                    (None, None) => None,
                };
                rules.push(Arc::new(Rule {
                    id: format!("{}/rule/{i}", policy.name).into(),
                    selectors,
                    requests: rule.requests,
                    window_ms: rule.window_ms.max(1),
                    global: rule.global,
                    shared: rule.shared,
                    shadow: rule.shadow_mode,
                    headers: !rule.no_headers,
                    request_cost: rule.request_cost,
                    response,
                }));
            }
            policies.push(rules);
        }
        Ok(RateLimits { policies })
    }

    /// Whether any rule is global.
    pub fn any_global(&self) -> bool {
        self.policies.iter().flatten().any(|r| r.global)
    }

    /// Counts `request` against policy `index` on `route` and says what its rules decide.
    pub async fn check(
        &self,
        counters: &Arc<Counters>,
        index: usize,
        route: &str,
        request: &select::Request<'_>,
    ) -> Verdict {
        let Some(rules) = self.policies.get(index) else {
            return Verdict::default();
        };
        let now = now_ms();
        let mut keyed: Vec<(&Arc<Rule>, String, u64)> = Vec::new();
        for rule in rules {
            let Some(distinct) = select::all_match(&rule.selectors, request) else {
                continue;
            };
            let start = now - now % rule.window_ms;
            let scope = if rule.shared { "" } else { route };
            let key = format!("aigw:ratelimit:{}:{scope}:{distinct}:{start}", rule.id);
            keyed.push((rule, key, start + rule.window_ms));
        }
        if keyed.is_empty() {
            return Verdict::default();
        }
        let counts = match counters.count(&keyed, now).await {
            Ok(counts) => counts,
            Err(closed) => {
                return Verdict {
                    unavailable: closed,
                    ..Verdict::default()
                };
            }
        };
        let mut verdict = Verdict::default();
        let owed: Vec<(Arc<Rule>, String, Later)> = keyed
            .iter()
            .filter_map(|(rule, key, _)| {
                let later = rule.response.clone()?;
                // The counter's key without its window: the answer is charged to the window
                // it ends in, as Envoy applies a response cost when the response ends.
                let prefix = key.rsplit_once(':').map_or("", |(prefix, _)| prefix);
                Some(((*rule).clone(), prefix.to_owned(), later))
            })
            .collect();
        if !owed.is_empty() {
            verdict.owed = Some(Owed {
                counters: counters.clone(),
                items: owed,
            });
        }
        for ((rule, _, end), count) in keyed.iter().zip(counts) {
            let reset = end.saturating_sub(now).div_ceil(1000);
            if count > rule.requests && !rule.shadow {
                counters.metrics.rate_limited(&rule.id);
                verdict.retry_after = Some(verdict.retry_after.unwrap_or(0).max(reset.max(1)));
            }
            let remaining = rule.requests.saturating_sub(count);
            if rule.headers && verdict.headers.is_none_or(|(_, r, _)| remaining < r) {
                verdict.headers = Some((rule.requests, remaining, reset));
            }
        }
        verdict
    }
}

impl Counters {
    pub fn new(
        redis: Option<Arc<Link>>,
        fail: crate::quota::FailMode,
        metrics: crate::metrics::Metrics,
    ) -> Self {
        Counters {
            local: std::array::from_fn(|_| Mutex::default()),
            redis,
            fail,
            script: redis::Script::new(INCREMENT),
            metrics,
        }
    }

    /// Whether global rules are counted in Redis.
    pub fn shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Adds each rule's request cost to its counter; `Err(closed)` when Redis could not be
    /// asked.
    async fn count(&self, keyed: &[(&Arc<Rule>, String, u64)], now: u64) -> Result<Vec<u64>, bool> {
        let mut counts = vec![0; keyed.len()];
        let (mut remote, mut remote_at) = (Vec::new(), Vec::new());
        for (i, (rule, key, end)) in keyed.iter().enumerate() {
            if rule.global && self.redis.is_some() {
                remote.push((key.as_str(), rule.request_cost, rule.window_ms * 2));
                remote_at.push(i);
            } else {
                counts[i] = self.local(key, rule.request_cost, *end, now);
            }
        }
        if remote.is_empty() {
            return Ok(counts);
        }
        match self.remote(&remote).await {
            Ok(found) => {
                for (i, n) in remote_at.into_iter().zip(found) {
                    counts[i] = n;
                }
                Ok(counts)
            }
            Err(error) => {
                self.metrics.quota_store_error();
                tracing::warn!(%error, "rate limit store call failed");
                match self.fail {
                    // Uncounted: the remote counters stay 0.
                    crate::quota::FailMode::Open => Ok(counts),
                    crate::quota::FailMode::Closed => Err(true),
                }
            }
        }
    }

    fn local(&self, key: &str, amount: u64, end: u64, now: u64) -> u64 {
        let shard = key
            .bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
        let mut map = self.local[shard % SHARDS]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > SWEEP_AT {
            map.retain(|_, (_, expires)| *expires > now);
        }
        let entry = match map.get_mut(key) {
            Some(entry) => entry,
            None => map.entry(key.to_owned()).or_insert((0, end)),
        };
        entry.0 += amount;
        entry.0
    }

    /// Adds `(key, amount, ttl)` in Redis: one script, one round trip.
    async fn remote(
        &self,
        items: &[(&str, u64, u64)],
    ) -> Result<Vec<u64>, crate::redis_link::StoreError> {
        let Some(link) = &self.redis else {
            return Ok(Vec::new());
        };
        let mut connection = link.connection().await?;
        let mut call = self.script.prepare_invoke();
        let ttl = items.iter().map(|(_, _, ttl)| *ttl).max().unwrap_or(1);
        call.arg(ttl);
        for (key, amount, _) in items {
            call.key(*key);
            call.arg(*amount);
        }
        bounded(call.invoke_async::<Vec<u64>>(&mut connection)).await
    }
}

impl Owed {
    /// Takes what the answer owes: each rule's fixed response cost, or the request cost the
    /// route recorded under its key (`costs`, as the record evaluated them). Redis is not
    /// waited for.
    pub fn settle(self, costs: &[(&str, u64)]) {
        let now = now_ms();
        let mut remote: Vec<(String, u64, u64)> = Vec::new();
        for (rule, prefix, later) in self.items {
            let start = now - now % rule.window_ms;
            let key = format!("{prefix}:{start}");
            let amount = match &later {
                Later::Number(n) => *n,
                Later::Cost(name) => costs
                    .iter()
                    .find(|(k, _)| *k == &**name)
                    .map_or(0, |(_, v)| *v),
            };
            if amount == 0 {
                continue;
            }
            if rule.global && self.counters.redis.is_some() {
                remote.push((key, amount, rule.window_ms * 2));
            } else {
                self.counters
                    .local(&key, amount, start + rule.window_ms, now);
            }
        }
        if remote.is_empty() {
            return;
        }
        let counters = self.counters;
        tokio::spawn(async move {
            let items: Vec<(&str, u64, u64)> = remote
                .iter()
                .map(|(k, a, t)| (k.as_str(), *a, *t))
                .collect();
            if let Err(error) = counters.remote(&items).await {
                counters.metrics.quota_store_error();
                tracing::warn!(%error, "a rate-limit response cost did not reach Redis");
            }
        });
    }
}

/// Counts a request against the rate limit in force on its route, if any.
pub async fn limit(
    shared: &crate::Shared,
    generation: &crate::generation::Generation,
    in_force: &crate::callers::InForce<'_>,
    route: &str,
    parts: &http::request::Parts,
    peer: std::net::IpAddr,
) -> Verdict {
    let Some(index) = in_force.rate_limit else {
        return Verdict::default();
    };
    let request = select::Request::of(parts, peer);
    generation
        .rate_limits
        .check(&shared.limits, index, route, &request)
        .await
}

/// Writes Envoy's draft-03 rate-limit headers.
pub fn headers(headers: &mut http::HeaderMap, (limit, remaining, reset): (u64, u64, u64)) {
    for (name, value) in [
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-reset", reset),
    ] {
        headers.insert(name, http::HeaderValue::from(value));
    }
}

impl Verdict {
    /// The refusal, when the rules refuse.
    pub fn refusal(&self) -> Option<crate::error::ProxyError> {
        if self.unavailable {
            return Some(crate::error::ProxyError::unavailable(
                "the rate limit store cannot be asked and fails closed",
            ));
        }
        self.retry_after
            .map(|after| crate::error::ProxyError::rate_limited(after, self.headers))
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
