//! The account of one AI request: what it asked (endpoint, route, rule, model), where it went
//! (backend, attempts), what it got (status, response model, token usage, when the first byte
//! came), and what it cost. A [`Record`] is opened when a rule takes the request, travels with
//! it (into the response body's relay for an answer that streams), and is closed exactly once
//! when it is dropped: after the last byte of the answer, when the request fails, or when the
//! client goes away mid-stream (which still used the tokens counted so far). Closing it
//! evaluates the route's costs and reports to the metrics and the access log.
//!
//! *Invariant*: nothing a client sent besides the model name, and no credential, goes into a
//! record; the one exception is the answer's text, gathered for the request's span only when
//! traces are asked to capture content ([`crate::content`]).

use crate::access_log::AccessLog;
use crate::costs::Vars;
use crate::exchange::Endpoint;
use crate::generation::Generation;
use crate::metrics::{Finished, GenAi, Metrics, model_label};
use aigw_providers::Usage;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Where closed records go.
#[derive(Clone, Debug)]
pub struct Recorder {
    pub metrics: Metrics,
    pub log: Option<AccessLog>,
    pub traces: Option<Arc<crate::trace::Traces>>,
}

/// One request's account; closed (reported) when dropped, once.
#[derive(Default)]
pub struct Record {
    open: Option<Box<Open>>,
}

struct Open {
    recorder: Arc<Recorder>,
    generation: Arc<Generation>,
    at: SystemTime,
    started: Instant,
    endpoint: Endpoint,
    route: usize,
    rule: usize,
    model: String,
    stream: bool,
    backend: Option<usize>,
    /// The model sent upstream (the override, or the client's).
    sent_model: Option<String>,
    attempts: u32,
    status: u16,
    first_byte: Option<Instant>,
    response_model: Option<String>,
    usage: Option<Usage>,
    /// The quota reservation of the attempt that answered.
    charge: Option<crate::quota::Charge>,
    /// The request's span, when traces are on.
    span: Option<opentelemetry::Context>,
    /// The answer's text so far, when traces capture content.
    output: Option<String>,
    /// The caller's client ID, when a SecurityPolicy authenticated it.
    caller: Option<Arc<str>>,
    /// What the answer owes the rate limits (their response costs).
    owed: Option<crate::ratelimit::Owed>,
    /// What a response cache did.
    cache: Option<&'static str>,
    /// The last upstream fault of an attempt.
    fault: Option<&'static str>,
    /// The backend's request slot the answer holds (until the record closes with its body).
    slot: Option<crate::slots::Slot>,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("open", &self.open.is_some())
            .finish_non_exhaustive()
    }
}

/// What the rule took: the generation and the `(route, rule)` indices.
pub struct Taken<'a> {
    pub generation: &'a Arc<Generation>,
    pub route: usize,
    pub rule: usize,
    pub endpoint: Endpoint,
    pub model: &'a str,
    pub stream: bool,
    /// The client's headers (its `traceparent`).
    pub headers: &'a http::HeaderMap,
    /// The client's body (read only when traces capture content).
    pub body: &'a [u8],
}

impl Record {
    pub fn open(recorder: &Arc<Recorder>, taken: &Taken<'_>) -> Self {
        let span = recorder
            .traces
            .as_ref()
            .map(|t| t.request(taken.headers, operation(taken.endpoint), taken.model));
        let capture = recorder.traces.as_ref().is_some_and(|t| t.capture_content);
        if let Some(span) = span.as_ref().filter(|_| capture) {
            use opentelemetry::trace::TraceContextExt;
            for (name, json) in crate::content::input(taken.body) {
                span.span()
                    .set_attribute(opentelemetry::KeyValue::new(name, json));
            }
        }
        Record {
            open: Some(Box::new(Open {
                recorder: recorder.clone(),
                generation: taken.generation.clone(),
                at: SystemTime::now(),
                started: Instant::now(),
                endpoint: taken.endpoint,
                route: taken.route,
                rule: taken.rule,
                model: taken.model.to_owned(),
                stream: taken.stream,
                backend: None,
                sent_model: None,
                attempts: 0,
                status: 0,
                first_byte: None,
                response_model: None,
                usage: None,
                charge: None,
                span,
                output: capture.then(String::new),
                caller: None,
                owed: None,
                cache: None,
                fault: None,
                slot: None,
            })),
        }
    }

    /// The record, leaving a closed one in its place (it moves into the response body).
    pub fn take(&mut self) -> Record {
        std::mem::take(self)
    }

    /// An attempt at backend `index`, sending `model`.
    pub fn attempt(&mut self, backend: usize, model: &str) {
        if let Some(open) = &mut self.open {
            open.attempts += 1;
            open.backend = Some(backend);
            if open.sent_model.as_deref() != Some(model) {
                open.sent_model = Some(model.to_owned());
            }
        }
    }

    /// The span of an attempt at `backend`, when traces are on.
    pub fn trace_attempt(
        &self,
        backend: &crate::generation::Upstream,
    ) -> Option<crate::trace::Attempt> {
        let open = self.open.as_ref()?;
        let (traces, span) = (open.recorder.traces.as_ref()?, open.span.as_ref()?);
        Some(crate::trace::Attempt::new(
            traces.clone(),
            span,
            &backend.name,
            provider(&backend.schema),
        ))
    }

    /// The quota reservation of the current attempt; an earlier attempt's is released.
    pub fn charge(&mut self, charge: Option<crate::quota::Charge>) {
        let Some(open) = &mut self.open else {
            if let Some(charge) = charge {
                charge.settle(
                    None,
                    &Vars {
                        model: "",
                        backend: "",
                        route: "",
                    },
                );
            }
            return;
        };
        let earlier = std::mem::replace(&mut open.charge, charge);
        if let Some(earlier) = earlier {
            let vars = Vars {
                model: &open.model,
                backend: "",
                route: "",
            };
            earlier.settle(None, &vars);
        }
    }

    /// What the answer will owe the rate limits, taken when the record closes.
    pub fn rate_owed(&mut self, owed: Option<crate::ratelimit::Owed>) {
        if let Some(open) = &mut self.open {
            open.owed = owed;
        }
    }

    /// The caller a SecurityPolicy authenticated.
    pub fn caller(&mut self, client: Option<Arc<str>>) {
        if let Some(open) = &mut self.open {
            open.caller = client;
        }
    }

    /// What a response cache did: `miss`, `bypass`, or `hit` with the kept answer's usage.
    pub fn cache(&mut self, result: &'static str, usage: Option<Usage>) {
        if let Some(open) = &mut self.open {
            open.cache = Some(result);
            if usage.is_some() {
                open.usage = usage;
            }
        }
    }

    /// An upstream fault: of an attempt (`connect`, `status_5xx`, `overflow`, …) or of the
    /// answer's body after its head (`timeout`, `idle_timeout`, `closed`, `event_limit`):
    /// counted in `aigw_upstream_faults_total` and named in the log line (the last one).
    pub fn fault(&mut self, fault: &'static str) {
        if let Some(open) = &mut self.open {
            open.recorder.metrics.upstream_fault(fault);
            open.fault = Some(fault);
        }
    }

    /// Holds the attempt's request slot for as long as the answer lives.
    pub fn hold(&mut self, slot: crate::slots::Slot) {
        if let Some(open) = &mut self.open {
            open.slot = Some(slot);
        }
    }

    /// Gives back the last attempt's slot: before the next attempt waits for one of its own.
    pub fn release(&mut self) {
        if let Some(open) = &mut self.open {
            open.slot = None;
        }
    }

    pub fn status(&mut self, status: u16) {
        if let Some(open) = &mut self.open {
            open.status = status;
        }
    }

    /// The first byte of the answer's body reached the gateway.
    pub fn first_byte(&mut self) {
        if let Some(open) = &mut self.open
            && open.first_byte.is_none()
        {
            open.first_byte = Some(Instant::now());
        }
    }

    pub fn usage(&mut self, usage: Usage) {
        if let Some(open) = &mut self.open {
            open.usage = Some(usage);
        }
    }

    /// The model the answer names.
    pub fn response_model(&mut self, model: &str) {
        if let Some(open) = &mut self.open
            && open.response_model.is_none()
        {
            open.response_model = Some(model.to_owned());
        }
    }

    /// Where the answer's text goes, when traces capture content (see [`crate::content`]).
    pub fn output(&mut self) -> Option<&mut String> {
        self.open.as_mut()?.output.as_mut()
    }

    /// Whether the response model is still to be read.
    pub fn wants_response_model(&self) -> bool {
        self.open
            .as_ref()
            .is_some_and(|o| o.response_model.is_none())
    }
}

/// What a request's account says so far, for those who report it before it closes (Envoy's
/// dynamic metadata, in [`crate::extproc`]).
#[derive(Debug, Default)]
pub struct Summary {
    pub usage: Option<Usage>,
    /// The route's costs: `(metadataKey, value)` in declaration order.
    pub costs: Vec<(String, u64)>,
    pub backend: Option<Arc<str>>,
    pub sent_model: Option<String>,
}

impl Record {
    pub fn summary(&self) -> Summary {
        let Some(open) = &self.open else {
            return Summary::default();
        };
        Summary {
            usage: open.usage,
            costs: open
                .costs()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            backend: open
                .backend
                .and_then(|b| open.generation.backends.get(b))
                .map(|u| u.name.clone()),
            sent_model: open.sent_model.clone(),
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        if let Some(open) = self.open.take() {
            open.close();
        }
    }
}

impl Open {
    /// The route's costs of the usage read so far. A kept answer called no backend: it costs
    /// nothing and used no backend's tokens.
    fn costs(&self) -> Vec<(&str, u64)> {
        let table = self.generation.snapshot.table();
        let route = table.routes.get(self.route).map_or("", |r| r.name.as_str());
        let backend = self
            .backend
            .and_then(|b| self.generation.backends.get(b))
            .map_or("", |u| &*u.name);
        match &self.usage {
            Some(usage) if self.cache != Some("hit") => self.generation.costs.evaluate(
                self.route,
                usage,
                &Vars {
                    model: &self.model,
                    backend,
                    route,
                },
            ),
            _ => Vec::new(),
        }
    }

    fn close(mut self) {
        let table = self.generation.snapshot.table();
        let route = table.routes.get(self.route).map_or("", |r| r.name.as_str());
        let upstream = self.backend.and_then(|b| self.generation.backends.get(b));
        let backend = upstream.map_or("", |u| &*u.name);
        let duration = self.started.elapsed();
        let first = self.first_byte.map(|t| t.duration_since(self.started));
        let hit = self.cache == Some("hit");
        let (owed, charge) = (self.owed.take(), self.charge.take());
        let costs = self.costs();
        if let Some(owed) = owed {
            owed.settle(&costs);
        }
        if let Some(charge) = charge {
            // Only a successful answer used tokens; anything else releases the reservation.
            let usage = self.usage.as_ref().filter(|_| self.status < 400);
            charge.settle(
                usage,
                &Vars {
                    model: &self.model,
                    backend,
                    route,
                },
            );
        }
        let response_model = self
            .response_model
            .as_deref()
            .or(self.sent_model.as_deref());
        let genai = GenAi {
            gen_ai_operation_name: operation(self.endpoint),
            gen_ai_provider_name: upstream.map_or("", |u| provider(&u.schema)),
            gen_ai_request_model: model_label(&self.model),
            gen_ai_response_model: model_label(response_model.unwrap_or("")),
        };
        if let Some(span) = &self.span {
            let mut attributes = vec![
                opentelemetry::KeyValue::new("gen_ai.provider.name", genai.gen_ai_provider_name),
                opentelemetry::KeyValue::new(
                    "gen_ai.response.model",
                    genai.gen_ai_response_model.clone(),
                ),
            ];
            if let Some(usage) = &self.usage {
                attributes.push(opentelemetry::KeyValue::new(
                    "gen_ai.usage.input_tokens",
                    usage.input.cast_signed(),
                ));
                attributes.push(opentelemetry::KeyValue::new(
                    "gen_ai.usage.output_tokens",
                    usage.output.cast_signed(),
                ));
            }
            if let Some(text) = &self.output {
                attributes.push(opentelemetry::KeyValue::new(
                    "gen_ai.output.messages",
                    crate::content::output(text),
                ));
            }
            crate::trace::end_request(span, attributes, self.status);
        }
        self.recorder.metrics.finished(&Finished {
            genai,
            route,
            backend,
            status: self.status,
            usage: self.usage.as_ref().filter(|_| !hit),
            costs: &costs,
            duration,
            // Time to first token is a streaming measure.
            first_token: first.filter(|_| self.stream),
        });
        let Some(log) = &self.recorder.log else {
            return;
        };
        let line = crate::access_log::Line {
            at: self.at,
            endpoint: self.endpoint.path(),
            route,
            rule: self.rule,
            backend: upstream.map(|u| &*u.name),
            attempts: self.attempts,
            status: self.status,
            request_model: &self.model,
            response_model,
            caller: self.caller.as_deref(),
            stream: self.stream,
            cache: self.cache,
            fault: self.fault,
            usage: self.usage.as_ref(),
            costs: &costs,
            duration,
            first_byte: first,
        };
        if !log.send(&line) {
            self.recorder.metrics.access_log_dropped();
        }
    }
}

/// `gen_ai.operation.name` of an endpoint (the semantic conventions' values where they have
/// one).
fn operation(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => "chat",
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
        Endpoint::CountTokens => "count_tokens",
        Endpoint::Rerank => "rerank",
        Endpoint::ImagesGenerations => "image_generation",
        Endpoint::AudioSpeech => "speech",
        Endpoint::AudioTranscriptions => "transcription",
        Endpoint::AudioTranslations => "translation",
        Endpoint::Models => "models",
    }
}

/// `gen_ai.provider.name` of a backend schema (the semantic conventions' well-known values).
fn provider(schema: &str) -> &'static str {
    match schema {
        "OpenAI" => "openai",
        "AzureOpenAI" => "azure.ai.openai",
        "AWSBedrock" | "AWSAnthropic" => "aws.bedrock",
        "GCPVertexAI" | "GCPAnthropic" => "gcp.vertex_ai",
        "Anthropic" => "anthropic",
        "Cohere" => "cohere",
        _ => "_OTHER",
    }
}
