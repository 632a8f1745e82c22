//! Traces over OTLP, by the OpenTelemetry crates: a span per AI request (`{operation} {model}`,
//! kind server, with the GenAI attributes: `gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.input_tokens` and
//! `gen_ai.usage.output_tokens`, `http.response.status_code`, `error.type`) and a child span
//! per upstream attempt (kind client, `server.address`), continuing the client's W3C
//! `traceparent` and passing the attempt's on to the backend.
//!
//! Configured as the OpenTelemetry SDKs are: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as it
//! is) or `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` added for HTTP), `OTEL_EXPORTER_OTLP_
//! {TRACES_,}PROTOCOL` (`http/protobuf`, the default, or `grpc`), `OTEL_SERVICE_NAME`
//! (default `aigw`); no endpoint, or `OTEL_TRACES_EXPORTER=none`: no traces. The same variables
//! set in a GatewayConfig's `extProc.kubernetes.env`, where the reference configures its
//! processor's tracing, come first ([`TraceConfig::from_table`]). OTLP/HTTP goes
//! through the gateway's own hyper client (the SDK's batch thread has no tokio runtime, so a
//! request is spawned on the gateway's); OTLP/gRPC through tonic, without TLS.
//!
//! Export never blocks a request: ended spans go into a bounded queue ([`queue`]), sent in
//! batches from its own thread; a full queue drops the span and counts it. Prompt and answer
//! text are recorded only when asked for ([`crate::content`]).

mod queue;

pub use queue::Sizes;

use crate::upstream::{Client, UpstreamBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanExporter as _};
use std::time::Duration;

/// Where traces go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    /// The full URL of the OTLP endpoint (with `/v1/traces` for HTTP).
    pub endpoint: String,
    pub grpc: bool,
    pub service: String,
    /// The queue's size, batches and interval (`OTEL_BSP_*`).
    pub sizes: queue::Sizes,
    /// Prompts and answers go into the request spans
    /// (`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`; see [`crate::content`]).
    pub capture_content: bool,
}

impl TraceConfig {
    /// From the standard `OTEL_*` variables; `None` when traces are not asked for.
    pub fn from_env() -> Option<Self> {
        Self::from_vars(&|name| std::env::var(name).ok())
    }

    /// When a GatewayConfig of `snapshot` sets `OTEL_*` variables: the configuration with
    /// those first and the process environment after (the reference's precedence: the
    /// GatewayConfig's env over the processor's own). `None` when no GatewayConfig sets any,
    /// and what the caller has stands. One process exports to one place, so where two
    /// GatewayConfigs give one variable different values, the first Gateway's (by name) is
    /// taken and the disagreement logged. Read when the data plane starts.
    pub fn from_table(snapshot: &aigw_table::Snapshot) -> Option<Option<Self>> {
        let mut set: std::collections::BTreeMap<&str, (&str, &str)> = Default::default();
        for gateway in &snapshot.table().gateways {
            for (name, value) in &gateway.telemetry {
                match set.get(name.as_str()) {
                    None => {
                        set.insert(name, (value, &gateway.name));
                    }
                    Some((first, from)) if first != value => tracing::warn!(
                        variable = %name, taken_from = %from, ignored_from = %gateway.name,
                        "GatewayConfigs disagree on a telemetry variable; the first is used"
                    ),
                    Some(_) => {}
                }
            }
        }
        if set.is_empty() {
            return None;
        }
        Some(Self::from_vars(&|name| {
            set.get(name)
                .map(|(value, _)| (*value).to_owned())
                .or_else(|| std::env::var(name).ok())
        }))
    }

    fn from_vars(lookup: &dyn Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if var("OTEL_TRACES_EXPORTER").is_some_and(|v| v == "none") {
            return None;
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "http/protobuf".to_owned());
        let grpc = protocol == "grpc";
        let endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(url) => url,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")?;
                if grpc {
                    base
                } else {
                    format!("{}/v1/traces", base.trim_end_matches('/'))
                }
            }
        };
        Some(TraceConfig {
            endpoint,
            grpc,
            service: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "aigw".to_owned()),
            sizes: queue::Sizes::from_vars(&var),
            capture_content: var("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        })
    }
}

/// The OTLP/HTTP client: the gateway's pooled hyper client, driven on the gateway's runtime.
#[derive(Debug)]
struct Hyper {
    client: Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Hyper {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let task = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let request = http::Request::from_parts(parts, UpstreamBody::full(body));
            let response =
                tokio::time::timeout(Duration::from_secs(10), client.request(request)).await??;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, opentelemetry_http::HttpError>(http::Response::from_parts(parts, body))
        });
        task.await?
    }
}

/// The tracer of the process.
pub struct Traces {
    /// Held so the exporter lives as long as the gateway; dropping it (at exit) shuts the
    /// exporter down after sending what is queued.
    _provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    propagator: TraceContextPropagator,
    /// Whether request spans carry the prompt and the answer.
    pub capture_content: bool,
}

impl std::fmt::Debug for Traces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Traces").finish_non_exhaustive()
    }
}

impl Traces {
    /// Starts the exporter; called on the gateway's runtime.
    pub fn start(
        config: &TraceConfig,
        client: Client,
        metrics: crate::metrics::Metrics,
    ) -> Result<Self, String> {
        use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
        let mut exporter = if config.grpc {
            SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&config.endpoint)
                .build()
        } else {
            SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(&config.endpoint)
                .with_http_client(Hyper {
                    client,
                    runtime: tokio::runtime::Handle::current(),
                })
                .build()
        }
        .map_err(|e| format!("the OTLP exporter cannot be built: {e}"))?;
        let resource = opentelemetry_sdk::Resource::builder()
            .with_service_name(config.service.clone())
            .build();
        exporter.set_resource(&resource);
        let queue = queue::Queue::start(exporter, config.sizes, metrics)
            .map_err(|e| format!("the OTLP export thread cannot start: {e}"))?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(queue)
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "aigw");
        Ok(Traces {
            _provider: provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            capture_content: config.capture_content,
        })
    }

    /// The span of an AI request, continuing the client's `traceparent` when it sent one.
    pub fn request(&self, headers: &http::HeaderMap, operation: &str, model: &str) -> Context {
        let parent = self
            .propagator
            .extract(&opentelemetry_http::HeaderExtractor(headers));
        let span = self
            .tracer
            .span_builder(format!("{operation} {model}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", operation.to_owned()),
                KeyValue::new("gen_ai.request.model", model.to_owned()),
            ])
            .start_with_context(&self.tracer, &parent);
        parent.with_span(span)
    }

    /// The span of one upstream attempt, under `request`; its context goes upstream.
    pub fn attempt(&self, request: &Context, backend: &str, provider: &str) -> Context {
        let span = self
            .tracer
            .span_builder(format!("attempt {backend}"))
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("server.address", backend.to_owned()),
                KeyValue::new("gen_ai.provider.name", provider.to_owned()),
            ])
            .start_with_context(&self.tracer, request);
        request.with_span(span)
    }

    /// Writes `cx`'s `traceparent` into the upstream request's headers.
    pub fn inject(&self, cx: &Context, headers: &mut http::HeaderMap) {
        self.propagator
            .inject_context(cx, &mut opentelemetry_http::HeaderInjector(headers));
    }
}

/// One attempt's span, to pass upstream and end with the attempt's outcome.
pub struct Attempt {
    traces: std::sync::Arc<Traces>,
    cx: Context,
}

impl Attempt {
    pub fn new(
        traces: std::sync::Arc<Traces>,
        request: &Context,
        backend: &str,
        provider: &str,
    ) -> Self {
        let cx = traces.attempt(request, backend, provider);
        Attempt { traces, cx }
    }

    /// The attempt's `traceparent` on the upstream request.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        self.traces.inject(&self.cx, headers);
    }

    pub fn end(&self, status: Option<u16>, error: Option<&str>) {
        end_attempt(&self.cx, status, error);
    }
}

/// Ends an attempt's span with its outcome.
pub fn end_attempt(cx: &Context, status: Option<u16>, error: Option<&str>) {
    let span = cx.span();
    if let Some(status) = status {
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
    }
    match (error, status) {
        (Some(error), _) => span.set_status(Status::error(error.to_owned())),
        (None, Some(status)) if status >= 500 => {
            span.set_status(Status::error(format!("status {status}")));
        }
        _ => {}
    }
    span.end();
}

/// Ends a request's span with what its record knows.
pub fn end_request(cx: &Context, attributes: Vec<KeyValue>, status: u16) {
    let span = cx.span();
    span.set_attributes(attributes);
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 400 {
        span.set_attribute(KeyValue::new("error.type", status.to_string()));
    }
    if status >= 500 {
        span.set_status(Status::error(format!("status {status}")));
    }
    span.end();
}
