//! The span queue between the request path and the OTLP exporter. Ending a span never waits: it
//! goes into a bounded channel, and when the channel is full the span is dropped and counted
//! (`aigw_trace_spans_total{outcome="dropped"}`). A thread of its own takes the spans and sends
//! them in batches of at most [`BATCH`]: when a batch is full, else every interval. Exported
//! and failed spans are counted too, so every ended span is accounted for once the queue is
//! shut down: exported + failed + dropped = ended.
//!
//! The SDK's `BatchSpanProcessor` does the same but keeps its drop count to itself (it logs the
//! first drop and the total at shutdown), so a gateway could not show it on `/metrics`.
//!
//! Sizes follow the SDK's standard variables: `OTEL_BSP_MAX_QUEUE_SIZE` (2048),
//! `OTEL_BSP_SCHEDULE_DELAY` (milliseconds, 5000), `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` (512).

use crate::metrics::Metrics;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter, SpanProcessor};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// The largest batch sent at once, unless `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` says otherwise.
pub const BATCH: usize = 512;

/// How big the queue is and how often it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    pub queue: usize,
    pub batch: usize,
    pub interval: Duration,
}

impl Sizes {
    /// The SDK's defaults, or its `OTEL_BSP_*` variables as `var` gives them.
    pub fn from_vars(var: &dyn Fn(&str) -> Option<String>) -> Self {
        let number = |name: &str| {
            var(name)
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
        };
        let queue = number("OTEL_BSP_MAX_QUEUE_SIZE").map_or(2048, |n| n as usize);
        let batch = number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE").map_or(BATCH, |n| n as usize);
        Sizes {
            queue,
            batch: batch.min(queue),
            interval: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY").unwrap_or(5000)),
        }
    }
}

#[expect(
    clippy::large_enum_variant,
    reason = "the channel's slots are allocated once, at its size; a box would allocate per span"
)]
enum Message {
    Span(SpanData),
    /// Send what is queued, then answer.
    Flush(SyncSender<OTelSdkResult>),
    /// Send what is queued, shut the exporter down, answer and stop.
    Shutdown(SyncSender<OTelSdkResult>),
}

/// The span processor of the gateway's tracer provider.
pub struct Queue {
    sender: SyncSender<Message>,
    worker: Mutex<Option<std::thread::JoinHandle<()>>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    /// Starts the thread that sends to `exporter` (whose resource is already set).
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        sizes: Sizes,
        metrics: Metrics,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(sizes.queue.max(1));
        let counted = metrics.clone();
        let worker = std::thread::Builder::new()
            .name("aigw-otlp".into())
            .spawn(move || run(&exporter, &receiver, sizes, &counted))?;
        Ok(Queue {
            sender,
            worker: Mutex::new(Some(worker)),
            metrics,
        })
    }

    /// Asks the thread for `message`'s answer, waiting at most `timeout`.
    fn ask(
        &self,
        message: fn(SyncSender<OTelSdkResult>) -> Message,
        timeout: Duration,
    ) -> OTelSdkResult {
        let (answer, answered) = std::sync::mpsc::sync_channel(1);
        self.sender
            .send(message(answer))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        answered
            .recv_timeout(timeout)
            .map_err(|_| OTelSdkError::Timeout(timeout))?
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        match self.sender.try_send(Message::Span(span)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.spans("dropped", 1);
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Message::Flush, Duration::from_secs(10))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let worker = self
            .worker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(worker) = worker else {
            return Err(OTelSdkError::AlreadyShutdown);
        };
        let result = self.ask(Message::Shutdown, timeout);
        if result.is_ok() {
            // It has answered, so it is about to return.
            let _ = worker.join();
        }
        result
    }
}

fn run<E: SpanExporter>(
    exporter: &E,
    receiver: &Receiver<Message>,
    sizes: Sizes,
    metrics: &Metrics,
) {
    let mut batch: Vec<SpanData> = Vec::with_capacity(sizes.batch);
    let mut due = Instant::now() + sizes.interval;
    loop {
        let message = receiver.recv_timeout(due.saturating_duration_since(Instant::now()));
        match message {
            Ok(Message::Span(span)) => {
                batch.push(span);
                if batch.len() >= sizes.batch {
                    let _ = send(exporter, &mut batch, metrics);
                }
            }
            Ok(Message::Flush(answer)) => {
                let _ = answer.send(send(exporter, &mut batch, metrics));
            }
            Ok(Message::Shutdown(answer)) => {
                let sent = send(exporter, &mut batch, metrics);
                let _ = answer.send(sent.and(exporter.shutdown()));
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = send(exporter, &mut batch, metrics);
                let _ = exporter.shutdown();
                return;
            }
        }
        if Instant::now() >= due {
            let _ = send(exporter, &mut batch, metrics);
            due = Instant::now() + sizes.interval;
        }
    }
}

/// Exports `batch` (emptying it) and counts the outcome.
fn send<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<SpanData>,
    metrics: &Metrics,
) -> OTelSdkResult {
    if batch.is_empty() {
        return Ok(());
    }
    let count = batch.len() as u64;
    let spans = std::mem::replace(batch, Vec::with_capacity(batch.capacity()));
    let result = futures_executor::block_on(exporter.export(spans));
    match &result {
        Ok(()) => metrics.spans("exported", count),
        Err(error) => {
            tracing::warn!(%error, spans = count, "OTLP export failed");
            metrics.spans("failed", count);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Span as _, Tracer, TracerProvider};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// An exporter that holds every export until the test lets it go, and counts what it got.
    #[derive(Debug, Clone)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        received: Arc<AtomicU64>,
    }

    impl SpanExporter for Gate {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            let (open, changed) = &*self.open;
            let mut guard = open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while !*guard {
                guard = changed
                    .wait(guard)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            self.received
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            Ok(())
        }
    }

    fn counted(metrics: &Metrics, outcome: &str) -> u64 {
        let text = metrics.encode();
        text.lines()
            .find(|l| l.starts_with(&format!("aigw_trace_spans_total{{outcome=\"{outcome}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    #[test]
    fn a_full_queue_drops_and_counts_and_every_span_is_accounted_for() {
        let gate = Gate {
            open: Arc::new((Mutex::new(false), std::sync::Condvar::new())),
            received: Arc::new(AtomicU64::new(0)),
        };
        let metrics = Metrics::default();
        let sizes = Sizes {
            queue: 4,
            batch: 2,
            interval: Duration::from_secs(60),
        };
        let queue = Queue::start(gate.clone(), sizes, metrics.clone())
            .unwrap_or_else(|e| unreachable!("{e}"));
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_span_processor(queue)
            .build();
        let tracer = provider.tracer("test");
        let started = Instant::now();
        for _ in 0..100 {
            tracer.start("request").end();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "ending spans never waits on the exporter"
        );
        let dropped = counted(&metrics, "dropped");
        // At most the queue and the batch held by the blocked export got in.
        assert!(dropped >= 100 - 4 - 2 - 1, "dropped {dropped}");
        {
            let (open, changed) = &*gate.open;
            *open
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
            changed.notify_all();
        }
        assert!(provider.shutdown().is_ok());
        let exported = counted(&metrics, "exported");
        assert_eq!(exported, gate.received.load(Ordering::SeqCst));
        assert_eq!(
            exported + dropped,
            100,
            "exported {exported}, dropped {dropped}"
        );
    }
}
