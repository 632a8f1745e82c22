//! The gateway's Prometheus metrics, exposed on the admin listener's `/metrics` in the
//! OpenMetrics text format (through `prometheus-client`, never hand-written).
//!
//! Two families of names:
//! - the OpenTelemetry GenAI semantic conventions, as the reference exports them through
//!   OpenTelemetry's Prometheus exporter (dots become underscores, the unit a suffix):
//!   `gen_ai_client_token_usage` (by `gen_ai_token_type`: `input`, `output`),
//!   `gen_ai_server_request_duration_seconds`, `gen_ai_server_time_to_first_token_seconds`
//!   and `gen_ai_server_time_per_output_token_seconds` (streams), each with
//!   `gen_ai_operation_name`, `gen_ai_provider_name`, `gen_ai_request_model`,
//!   `gen_ai_response_model` (and `error_type` on the duration), with the conventions' bucket
//!   boundaries;
//! - `aigw_*`: what the gateway does (requests by status and by route, backend and status,
//!   upstream attempts, every kind of token, costs, rate-limit refusals, access-log drops, spans exported and dropped,
//!   reloads).
//!
//! Label values that come from clients (the model) are only those a rule took, cut to 128
//! characters.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// `gen_ai.client.token.usage` bucket boundaries (the semantic conventions').
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// `gen_ai.server.request.duration`, seconds.
const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai.server.time_to_first_token`, seconds.
const FIRST_TOKEN_BUCKETS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// `gen_ai.server.time_per_output_token`, seconds.
const PER_TOKEN_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// The GenAI attributes of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GenAi {
    pub gen_ai_operation_name: &'static str,
    pub gen_ai_provider_name: &'static str,
    pub gen_ai_request_model: String,
    pub gen_ai_response_model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenUse {
    #[prometheus(flatten)]
    genai: GenAi,
    gen_ai_token_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Duration {
    #[prometheus(flatten)]
    genai: GenAi,
    error_type: Option<String>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Code {
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Tokens {
    backend: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteCall {
    route: String,
    backend: String,
    code: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Bucket {
    bucket: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLookup {
    policy: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostKey {
    route: String,
    key: String,
}

/// One MCP operation the gateway served (OpenTelemetry `mcp.server.operation.duration`, with
/// the route and the server it went to).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct McpOperation {
    pub mcp_method_name: &'static str,
    pub mcp_route: String,
    /// Empty for an operation answered by the gateway or fanned out to every server.
    pub mcp_backend: String,
    pub gen_ai_tool_name: Option<String>,
    pub error_type: Option<&'static str>,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Cheap to clone; every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    token_usage: Histograms<TokenUse>,
    duration: Histograms<Duration>,
    first_token: Histograms<GenAi>,
    per_token: Histograms<GenAi>,
    requests: Family<Code, Counter>,
    route_requests: Family<RouteCall, Counter>,
    attempts: Family<Outcome, Counter>,
    tokens: Family<Tokens, Counter>,
    costs: Family<CostKey, Counter>,
    quota_rejections: Family<Bucket, Counter>,
    rate_limited: Family<Bucket, Counter>,
    cache_lookups: Family<CacheLookup, Counter>,
    quota_store_errors: Counter,
    log_dropped: Counter,
    spans: Family<Outcome, Counter>,
    reloads: Family<Outcome, Counter>,
    generation: Gauge,
    mcp_operations: Histograms<McpOperation>,
    upstream_faults: Family<Fault, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Fault {
    fault: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn histograms<L: Clone + std::hash::Hash + Eq>(constructor: fn() -> Histogram) -> Histograms<L> {
    Family::new_with_constructor(constructor)
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let token_usage = histograms(|| Histogram::new(TOKEN_BUCKETS));
        let duration = histograms(|| Histogram::new(DURATION_BUCKETS));
        let first_token = histograms(|| Histogram::new(FIRST_TOKEN_BUCKETS));
        let per_token = histograms(|| Histogram::new(PER_TOKEN_BUCKETS));
        let mcp_operations = histograms(|| Histogram::new(DURATION_BUCKETS));
        let upstream_faults = Family::<Fault, Counter>::default();
        registry.register_with_unit(
            "mcp_server_operation_duration",
            "MCP operations served by the gateway (mcp.server.operation.duration)",
            Unit::Seconds,
            mcp_operations.clone(),
        );
        registry.register(
            "gen_ai_client_token_usage",
            "Number of input and output tokens used (OpenTelemetry gen_ai.client.token.usage)",
            token_usage.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_request_duration",
            "Generative AI server request duration (gen_ai.server.request.duration)",
            Unit::Seconds,
            duration.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_to_first_token",
            "Time to generate the first token of a streamed answer (gen_ai.server.time_to_first_token)",
            Unit::Seconds,
            first_token.clone(),
        );
        registry.register_with_unit(
            "gen_ai_server_time_per_output_token",
            "Time per output token after the first of a streamed answer (gen_ai.server.time_per_output_token)",
            Unit::Seconds,
            per_token.clone(),
        );
        let (requests, route_requests) = (Family::default(), Family::default());
        let (attempts, tokens, costs) = (Family::default(), Family::default(), Family::default());
        let (log_dropped, reloads, generation) =
            (Counter::default(), Family::default(), Gauge::default());
        let (quota_rejections, quota_store_errors) = (Family::default(), Counter::default());
        let spans = Family::default();
        let rate_limited = Family::default();
        let cache_lookups = Family::default();
        let gateway = registry.sub_registry_with_prefix("aigw");
        gateway.register(
            "requests",
            "Requests answered, by status code",
            Family::<Code, Counter>::clone(&requests),
        );
        gateway.register(
            "route_requests",
            "AI requests answered, by route, backend (empty when none was called) and status code",
            Family::<RouteCall, Counter>::clone(&route_requests),
        );
        gateway.register(
            "upstream_attempts",
            "Backend attempts, by outcome (answered, failed, retried_status)",
            Family::<Outcome, Counter>::clone(&attempts),
        );
        gateway.register(
            "usage_tokens",
            "Tokens reported by backends, by backend and kind (input, output, total, cached_input, cache_creation_input, reasoning)",
            Family::<Tokens, Counter>::clone(&tokens),
        );
        gateway.register(
            "request_cost",
            "Request costs recorded (llmRequestCosts), by route and metadata key",
            Family::<CostKey, Counter>::clone(&costs),
        );
        gateway.register(
            "quota_rejections",
            "Requests a QuotaPolicy bucket refused, by bucket (policy, quota and rule)",
            Family::<Bucket, Counter>::clone(&quota_rejections),
        );
        gateway.register(
            "rate_limited",
            "Requests a BackendTrafficPolicy rate-limit rule refused, by rule (policy and rule index) as `bucket`",
            Family::<Bucket, Counter>::clone(&rate_limited),
        );
        gateway.register(
            "cache_lookups",
            "AI requests a ResponseCachePolicy looked at, by policy and result (hit, miss, bypass)",
            Family::<CacheLookup, Counter>::clone(&cache_lookups),
        );
        gateway.register(
            "quota_store_errors",
            "Quota store (Redis) calls that failed or timed out",
            Counter::<u64>::clone(&quota_store_errors),
        );
        gateway.register(
            "access_log_dropped",
            "Access log lines dropped because the writer fell behind",
            Counter::<u64>::clone(&log_dropped),
        );
        gateway.register(
            "trace_spans",
            "Spans given to the OTLP exporter, by outcome (exported, dropped: the queue was full, failed: the export was refused or timed out)",
            Family::<Outcome, Counter>::clone(&spans),
        );
        gateway.register(
            "upstream_faults",
            "Backend faults: an attempt that failed (dns, connect, tls, closed, io, timeout, other) or was not sent because the backend had no request slot (overflow, pending_timeout), the status class of an answer (status_429, status_5xx), or an answer whose body broke after its head (timeout, idle_timeout, closed, event_limit, body_limit)",
            upstream_faults.clone(),
        );
        gateway.register(
            "table_reloads",
            "Routing table loads, by result (loaded, rejected)",
            Family::<Outcome, Counter>::clone(&reloads),
        );
        gateway.register(
            "table_generation",
            "The generation of the routing table being served",
            Gauge::<i64>::clone(&generation),
        );
        Metrics(Arc::new(Inner {
            registry,
            token_usage,
            duration,
            first_token,
            per_token,
            requests,
            route_requests,
            attempts,
            tokens,
            costs,
            quota_rejections,
            rate_limited,
            cache_lookups,
            quota_store_errors,
            log_dropped,
            spans,
            reloads,
            generation,
            mcp_operations,
            upstream_faults,
        }))
    }
}

/// A model name as a label value: at most 128 characters.
pub fn model_label(model: &str) -> String {
    model.chars().take(128).collect()
}

/// What one finished AI request reports to the metrics (see [`crate::record`]).
pub struct Finished<'a> {
    pub genai: GenAi,
    pub route: &'a str,
    pub backend: &'a str,
    pub status: u16,
    pub usage: Option<&'a aigw_providers::Usage>,
    pub costs: &'a [(&'a str, u64)],
    pub duration: std::time::Duration,
    pub first_token: Option<std::time::Duration>,
}

impl Metrics {
    pub fn request(&self, status: http::StatusCode) {
        self.0
            .requests
            .get_or_create(&Code {
                code: status.as_u16(),
            })
            .inc();
    }

    pub fn attempt(&self, outcome: &'static str) {
        self.0.attempts.get_or_create(&Outcome { outcome }).inc();
    }

    /// One AI request, at its end.
    pub fn finished(&self, f: &Finished<'_>) {
        let inner = &self.0;
        inner
            .route_requests
            .get_or_create(&RouteCall {
                route: f.route.to_owned(),
                backend: f.backend.to_owned(),
                code: f.status,
            })
            .inc();
        let error_type = (f.status >= 400).then(|| f.status.to_string());
        inner
            .duration
            .get_or_create(&Duration {
                genai: f.genai.clone(),
                error_type,
            })
            .observe(f.duration.as_secs_f64());
        if let Some(usage) = f.usage {
            self.usage(f, usage);
        }
        if !f.costs.is_empty() {
            // One label set, its key changed between the costs.
            let mut label = CostKey {
                route: f.route.to_owned(),
                key: String::new(),
            };
            for (key, value) in f.costs {
                label.key.clear();
                label.key.push_str(key);
                inner.costs.get_or_create(&label).inc_by(*value);
            }
        }
    }

    fn usage(&self, f: &Finished<'_>, usage: &aigw_providers::Usage) {
        let inner = &self.0;
        // One label set, its token type changed between the two observations.
        let mut tokens = TokenUse {
            genai: f.genai.clone(),
            gen_ai_token_type: "input",
        };
        for (kind, count) in [("input", usage.input), ("output", usage.output)] {
            tokens.gen_ai_token_type = kind;
            inner
                .token_usage
                .get_or_create(&tokens)
                .observe(count as f64);
        }
        let mut labels = Tokens {
            backend: f.backend.to_owned(),
            kind: "input",
        };
        for (kind, count) in [
            ("input", usage.input),
            ("output", usage.output),
            ("total", usage.total()),
            ("cached_input", usage.cached_input),
            ("cache_creation_input", usage.cache_creation_input),
            ("reasoning", usage.reasoning),
        ] {
            labels.kind = kind;
            inner.tokens.get_or_create(&labels).inc_by(count);
        }
        if let Some(first) = f.first_token {
            inner
                .first_token
                .get_or_create(&f.genai)
                .observe(first.as_secs_f64());
            if usage.output > 1 {
                let rest = f.duration.saturating_sub(first).as_secs_f64();
                inner
                    .per_token
                    .get_or_create(&f.genai)
                    .observe(rest / (usage.output - 1) as f64);
            }
        }
    }

    pub fn quota_rejected(&self, bucket: &str) {
        self.0
            .quota_rejections
            .get_or_create(&Bucket {
                bucket: bucket.to_owned(),
            })
            .inc();
    }

    pub fn rate_limited(&self, rule: &str) {
        self.0
            .rate_limited
            .get_or_create(&Bucket {
                bucket: rule.to_owned(),
            })
            .inc();
    }

    /// The hit, miss and bypass counters of a cache policy, taken once per generation.
    pub fn cache_counters(&self, policy: &str) -> [Counter; 3] {
        ["hit", "miss", "bypass"].map(|result| {
            self.0
                .cache_lookups
                .get_or_create(&CacheLookup {
                    policy: policy.to_owned(),
                    result,
                })
                .clone()
        })
    }

    pub fn quota_store_error(&self) {
        self.0.quota_store_errors.inc();
    }

    pub fn access_log_dropped(&self) {
        self.0.log_dropped.inc();
    }

    /// `count` spans had `outcome` (`exported`, `dropped`, `failed`).
    pub fn spans(&self, outcome: &'static str, count: u64) {
        self.0
            .spans
            .get_or_create(&Outcome { outcome })
            .inc_by(count);
    }

    /// A backend attempt that got no answer, by its fault.
    pub fn upstream_fault(&self, fault: &'static str) {
        self.0.upstream_faults.get_or_create(&Fault { fault }).inc();
    }

    /// An MCP operation that took `seconds`.
    pub fn mcp_operation(&self, operation: &McpOperation, seconds: f64) {
        self.0
            .mcp_operations
            .get_or_create(operation)
            .observe(seconds);
    }

    pub fn reload(&self, loaded: bool, generation: u64) {
        self.0
            .reloads
            .get_or_create(&Outcome {
                outcome: if loaded { "loaded" } else { "rejected" },
            })
            .inc();
        if loaded {
            self.0.generation.set(generation as i64);
        }
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.0.registry);
        text
    }
}
