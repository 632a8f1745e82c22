//! The gateway's Prometheus metrics, exposed on the admin listener's `/metrics` in the
//! OpenMetrics text format (through `prometheus-client`, never hand-written). The GenAI
//! semantic-convention metrics come with the usage work; these count what the core does.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// Token usage of one response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub total: u64,
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

/// Cheap to clone; every clone counts into the same registry.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

struct Inner {
    registry: Registry,
    requests: Family<Code, Counter>,
    attempts: Family<Outcome, Counter>,
    tokens: Family<Tokens, Counter>,
    reloads: Family<Outcome, Counter>,
    generation: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aigw");
        let requests = Family::<Code, Counter>::default();
        let attempts = Family::<Outcome, Counter>::default();
        let tokens = Family::<Tokens, Counter>::default();
        let reloads = Family::<Outcome, Counter>::default();
        let generation = Gauge::default();
        registry.register(
            "requests",
            "Requests answered, by status code",
            requests.clone(),
        );
        registry.register(
            "upstream_attempts",
            "Backend attempts, by outcome (answered, failed, retried_status)",
            attempts.clone(),
        );
        registry.register(
            "usage_tokens",
            "Tokens reported by backends, by backend and kind (input, output, total)",
            tokens.clone(),
        );
        registry.register(
            "table_reloads",
            "Routing table loads, by result (loaded, rejected)",
            reloads.clone(),
        );
        registry.register(
            "table_generation",
            "The generation of the routing table being served",
            generation.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            requests,
            attempts,
            tokens,
            reloads,
            generation,
        }))
    }
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

    pub fn usage(&self, backend: &str, usage: Usage) {
        let mut labels = Tokens {
            backend: backend.to_owned(),
            kind: "input",
        };
        for (kind, count) in [
            ("input", usage.input),
            ("output", usage.output),
            ("total", usage.total),
        ] {
            labels.kind = kind;
            self.0.tokens.get_or_create(&labels).inc_by(count);
        }
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
