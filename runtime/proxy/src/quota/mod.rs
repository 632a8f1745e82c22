//! QuotaPolicy enforcement: token budgets per backend, for the whole service or per model (the
//! model sent upstream), over fixed windows (1s, 1m, 1h, 1d, aligned to the epoch as Envoy's
//! rate-limit service aligns them), with client-selected buckets (headers, query parameters,
//! method, path, source address; `Distinct` gives each value a bucket of its own; shadow rules
//! count and never refuse).
//!
//! Which buckets a request is charged to: for each QuotaPolicy targeting the chosen backend,
//! the per-model quota of the model sent, when there is one (its default bucket and every bucket
//! rule all of whose selectors match), else the service quota. Its cost is the policy's CEL
//! expression over the usage, `total_tokens` by default.
//!
//! Reserve, then settle (the reference charges after the answer only, so every request in
//! flight can pass a nearly spent budget: its issue #680). Before the request is forwarded, an
//! estimate of its cost is reserved in every bucket, and refused when any enforcing bucket has
//! no room for it: `used + reserved + estimate > limit`. The estimate is the cost expression
//! over the request's upper bounds: input tokens as a quarter of the body's bytes (a token of
//! English text or JSON is about four bytes) and output tokens as its `max_tokens`
//! (`max_completion_tokens`, `max_output_tokens`), else 4096. When the answer ends, its true cost
//! replaces the reservation. So the budget is overshot only by what requests in flight used
//! beyond their estimates, never by their number. A refused request answers 429 with
//! `Retry-After` (the end of the window) in the client API's shape, after the rule's other
//! priority levels were tried.
//!
//! Where the counts live: [`store`] (in process, the default; or Redis, shared by replicas).

mod redis;
mod store;

pub use store::{FailMode, Store, StoreError};

use crate::costs::{Cel, Vars};
use crate::select::{self, Selector};
use aigw_providers::Usage;
use aigw_table::Snapshot;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Output tokens reserved for a request that names no limit.
pub const DEFAULT_OUTPUT_ESTIMATE: u64 = 4096;

/// One bucket a request may be charged to.
struct Bucket {
    /// `policy/service`, `policy/model/{name}/default`, `policy/model/{name}/rule/{i}`.
    id: Arc<str>,
    limit: u64,
    window_ms: u64,
    selectors: Vec<Selector>,
    shadow: bool,
}

/// What a backend's requests for one model (or for every model) are charged to.
struct Quota {
    /// `None`: the service quota.
    model: Option<String>,
    cost: Option<Arc<Cel>>,
    buckets: Vec<Bucket>,
}

/// One QuotaPolicy: its service quota and its per-model quotas.
struct Policy {
    service: Option<Quota>,
    models: Vec<Quota>,
}

/// The compiled QuotaPolicies of a generation, by backend index.
#[derive(Default)]
pub struct Quotas {
    backends: Vec<Vec<Arc<Policy>>>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas")
            .field("backends", &self.backends.len())
            .finish_non_exhaustive()
    }
}

/// A QuotaPolicy that cannot be compiled (a table the compiler did not write).
#[derive(Debug, thiserror::Error)]
#[error("QuotaPolicy `{policy}`: {reason}")]
pub struct QuotaError {
    policy: String,
    reason: String,
}

/// What a request looks like to the selectors and the estimate.
pub struct Request<'a> {
    pub client: select::Request<'a>,
    /// The body's length, for the input estimate.
    pub body_len: usize,
    /// The request's own output limit (`max_tokens` and its kin), read with the model.
    pub max_output: Option<u64>,
}

/// One bucket's share of a charge: its key (with its window), the estimate reserved, its
/// limit (enforced unless shadow).
#[derive(Clone, Debug)]
pub struct Part {
    pub key: String,
    pub reserved: u64,
    pub limit: u64,
    pub enforce: bool,
    pub ttl_ms: u64,
    pub window_end_ms: u64,
    quota: usize,
}

/// A reservation made; settled with the true cost when the request's record closes.
pub struct Charge {
    store: Arc<Store>,
    parts: Vec<Part>,
    costs: Vec<Option<Arc<Cel>>>,
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge")
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

/// Why a request was not let through.
#[derive(Debug)]
pub enum Refusal {
    /// A bucket has no room: the policy and the seconds until its window ends.
    Exhausted { bucket: String, retry_after: u64 },
    /// The store could not be asked, and it fails closed.
    Store(StoreError),
}

impl Quotas {
    pub fn compile(snapshot: &Snapshot) -> Result<Self, QuotaError> {
        let table = snapshot.table();
        let mut backends: Vec<Vec<Arc<Policy>>> =
            (0..table.backends.len()).map(|_| Vec::new()).collect();
        for policy in &table.quotas {
            let error = |reason: String| QuotaError {
                policy: policy.name.clone(),
                reason,
            };
            let program = |expression: &Option<String>| {
                expression
                    .as_deref()
                    .map(|e| {
                        Cel::compile(e).map(Arc::new).map_err(|err| {
                            error(format!("the cost expression does not parse: {err}"))
                        })
                    })
                    .transpose()
            };
            let mut service = None;
            let mut models = Vec::new();
            if let Some(quota) = &policy.service {
                let service_quota = quota;
                service = Some(Quota {
                    model: None,
                    cost: program(&service_quota.cost_expression)?,
                    buckets: vec![Bucket {
                        id: format!("{}/service", policy.name).into(),
                        limit: service_quota.limit.max(0).cast_unsigned(),
                        window_ms: service_quota.window_ms,
                        selectors: Vec::new(),
                        shadow: false,
                    }],
                });
            }
            for model in &policy.per_model {
                let mut buckets = Vec::new();
                if let Some(bucket) = &model.default_bucket {
                    buckets.push(Bucket {
                        id: format!("{}/model/{}/default", policy.name, model.model).into(),
                        limit: bucket.limit.max(0).cast_unsigned(),
                        window_ms: bucket.window_ms,
                        selectors: Vec::new(),
                        shadow: false,
                    });
                }
                for (i, rule) in model.bucket_rules.iter().enumerate() {
                    let selectors = rule
                        .client_selectors
                        .iter()
                        .map(Selector::compile)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(error)?;
                    buckets.push(Bucket {
                        id: format!("{}/model/{}/rule/{i}", policy.name, model.model).into(),
                        limit: rule.limit.max(0).cast_unsigned(),
                        window_ms: rule.window_ms,
                        selectors,
                        shadow: rule.shadow_mode,
                    });
                }
                models.push(Quota {
                    model: Some(model.model.clone()),
                    cost: program(&model.cost_expression)?,
                    buckets,
                });
            }
            let compiled = Arc::new(Policy { service, models });
            for backend in &policy.backends {
                if let Some(list) = backends.get_mut(*backend) {
                    list.push(compiled.clone());
                }
            }
        }
        Ok(Quotas { backends })
    }

    /// Whether requests to `backend` are charged at all.
    pub fn applies(&self, backend: usize) -> bool {
        self.backends.get(backend).is_some_and(|q| !q.is_empty())
    }

    /// Reserves the estimate of `request` (sent to `backend` as `model`) in every bucket it is
    /// charged to; `Ok(None)` when no quota applies.
    pub async fn reserve(
        &self,
        store: &Arc<Store>,
        backend: usize,
        model: &str,
        request: &Request<'_>,
        vars: &Vars<'_>,
    ) -> Result<Option<Charge>, Refusal> {
        let Some(quotas) = self.backends.get(backend).filter(|q| !q.is_empty()) else {
            return Ok(None);
        };
        let estimate = estimate(request);
        let now = now_ms();
        let mut parts = Vec::new();
        // The bucket of each part, for a refusal's message (borrowed: no reference count is
        // touched per request).
        let mut ids: Vec<&str> = Vec::new();
        let mut costs = Vec::new();
        // Per policy: the model's quota when it has one, else the service quota.
        for policy in quotas {
            let quota = policy
                .models
                .iter()
                .find(|q| q.model.as_deref() == Some(model))
                .or(policy.service.as_ref());
            let Some(quota) = quota else { continue };
            let cost = cost_of(quota.cost.as_deref(), &estimate, vars);
            let index = costs.len();
            costs.push(quota.cost.clone());
            for bucket in &quota.buckets {
                let Some(distinct) = select::all_match(&bucket.selectors, &request.client) else {
                    continue;
                };
                let window = bucket.window_ms.max(1);
                let start = now - now % window;
                ids.push(&bucket.id);
                parts.push(Part {
                    key: key(&bucket.id, &distinct, start),
                    reserved: cost,
                    limit: bucket.limit,
                    enforce: !bucket.shadow,
                    ttl_ms: window * 2,
                    window_end_ms: start + window,
                    quota: index,
                });
            }
        }
        if parts.is_empty() {
            return Ok(None);
        }
        match store.reserve(&parts).await {
            Ok(None) => Ok(Some(Charge {
                store: store.clone(),
                parts,
                costs,
            })),
            Ok(Some(full)) => {
                let part = &parts[full];
                Err(Refusal::Exhausted {
                    bucket: ids[full].to_owned(),
                    retry_after: part.window_end_ms.saturating_sub(now).div_ceil(1000),
                })
            }
            Err(error) => match store.fail_mode() {
                FailMode::Open => {
                    tracing::warn!(%error, "quota store unavailable; the request is let through (fail open)");
                    Ok(None)
                }
                FailMode::Closed => Err(Refusal::Store(error)),
            },
        }
    }
}

impl Charge {
    /// Replaces the reservation by the true cost of `usage` (none: the request used nothing,
    /// and its reservation is released).
    pub fn settle(self, usage: Option<&Usage>, vars: &Vars<'_>) {
        let empty = Usage::default();
        let usage = usage.unwrap_or(&empty);
        let actual: Vec<u64> = self
            .parts
            .iter()
            .map(|p| cost_of(self.costs[p.quota].as_deref(), usage, vars))
            .collect();
        self.store.settle(self.parts, actual);
    }
}

/// The request's upper-bound usage (see the module doc).
fn estimate(request: &Request<'_>) -> Usage {
    let output = request.max_output.unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let input = (request.body_len as u64).div_ceil(4);
    Usage {
        input,
        output,
        // Saturating: `max_tokens` is the client's, and may be any number.
        total: Some(input.saturating_add(output)),
        ..Usage::default()
    }
}

/// A quota's cost of `usage`: its CEL expression, or the total tokens.
fn cost_of(program: Option<&Cel>, usage: &Usage, vars: &Vars<'_>) -> u64 {
    match program {
        Some(program) => crate::costs::run_cel(program, "quota cost", usage, vars),
        None => usage.total(),
    }
}

fn key(id: &str, distinct: &str, start_ms: u64) -> String {
    format!("aigw:quota:{id}:{distinct}:{start_ms}")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}
