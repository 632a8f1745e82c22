//! Per-backend request slots: how many requests one backend may have in flight from this
//! process at once, and how many may wait for a slot (the model of Envoy's circuit breakers,
//! whose defaults these are: `max_requests` and `max_pending_requests`, 1024 each).
//!
//! A request takes a slot before its attempt is sent and holds it until its answer's body has
//! ended (the slot rides in the request's [`crate::record::Record`], which lives exactly that
//! long), so with HTTP/1.1 a backend's connections in use are bounded by its slots; its idle
//! pooled connections are bounded apart (1,024 per endpoint and pool).
//!
//! At the limit a request queues for a slot, up to the attempt's deadline (then 504, counted as
//! `pending_timeout`). When the queue is full too it is refused at once: 503 with the fault `overflow`,
//! which fails over to the rule's next priority like any 5xx. The slots of a backend are kept
//! across table reloads (by the backend's name), so a reload neither frees nor forgets the
//! requests in flight.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tokio::time::Instant;

/// The bounds of every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight to one backend.
    pub max_requests: usize,
    /// Requests waiting for a slot of one backend.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_requests: 1024,
            max_pending: 1024,
        }
    }
}

/// The slots of one backend. Below the limit a slot costs one compare-and-swap on a counter
/// the workers share, and giving it back one decrement: no lock on the hot path. Only at the
/// limit do requests wait, woken as slots come back (not strictly in arrival order: a request
/// that arrives as a slot frees may take it first).
#[derive(Debug)]
pub struct Slots {
    in_flight: AtomicUsize,
    max_requests: usize,
    waiting: AtomicUsize,
    max_pending: usize,
    freed: Notify,
}

/// A slot held: given back when dropped.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.0.waiting.load(Ordering::Acquire) > 0 {
            self.0.freed.notify_one();
        }
    }
}

/// Why no slot was had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Every slot is taken and the queue is full.
    Overflow,
    /// The deadline passed in the queue.
    Timeout,
}

impl Slots {
    fn new(limits: Limits) -> Self {
        Slots {
            in_flight: AtomicUsize::new(0),
            max_requests: limits.max_requests.max(1),
            waiting: AtomicUsize::new(0),
            max_pending: limits.max_pending,
            freed: Notify::new(),
        }
    }

    /// A slot now, or after queueing until `deadline`.
    pub async fn take(self: &Arc<Self>, deadline: Instant) -> Result<Slot, Refused> {
        if let Some(slot) = self.try_take() {
            return Ok(slot);
        }
        let _waiting = Waiting::enter(&self.waiting, self.max_pending).ok_or(Refused::Overflow)?;
        loop {
            // Registered before the second look, so a slot given back in between still wakes
            // this request (`Slot::drop` sees it waiting).
            let freed = self.freed.notified();
            let mut freed = std::pin::pin!(freed);
            freed.as_mut().enable();
            if let Some(slot) = self.try_take() {
                return Ok(slot);
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(Refused::Timeout);
            }
        }
    }

    fn try_take(self: &Arc<Self>) -> Option<Slot> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_requests).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }
}

/// A place in a backend's queue, given back when dropped (also when the request is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(waiting: &'a AtomicUsize, max: usize) -> Option<Self> {
        waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Waiting(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The client's error for `refused`: 503 `overflow` (which fails over), or 504
/// `pending_timeout`.
pub fn refused(backend: &str, refused: Refused) -> crate::error::ProxyError {
    use crate::error::ProxyError;
    let (mut error, cause) = match refused {
        Refused::Overflow => {
            let mut error = ProxyError::unavailable(format!(
                "backend `{backend}` has as many requests in flight and waiting as it may"
            ));
            error.retry = true;
            (error, "overflow")
        }
        // The gateway's own queue, not the backend, took the time: named apart from `timeout`.
        Refused::Timeout => (
            ProxyError::timeout("the request timed out waiting for the backend"),
            "pending_timeout",
        ),
    };
    error.cause = Some(cause);
    error
}

/// Every backend's slots, by name, kept across generations.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    limits: Limits,
    backends: Arc<Mutex<HashMap<String, Arc<Slots>>>>,
}

impl Registry {
    pub fn new(limits: Limits) -> Self {
        Registry {
            limits,
            backends: Arc::default(),
        }
    }

    /// The slots of backend `name`, made on first use.
    pub fn of(&self, name: &str) -> Arc<Slots> {
        let mut backends = self
            .backends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        backends
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Slots::new(self.limits)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn slots(max_requests: usize, max_pending: usize) -> Arc<Slots> {
        Registry::new(Limits {
            max_requests,
            max_pending,
        })
        .of("b")
    }

    #[tokio::test]
    async fn past_the_slots_requests_queue_and_past_the_queue_they_are_refused() {
        let slots = slots(1, 1);
        let soon = Instant::now() + Duration::from_secs(5);
        let held = slots.take(soon).await.expect("the first slot");
        let queued = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take(soon).await.map(drop) }
        });
        while slots.waiting.load(Ordering::Acquire) == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(slots.take(soon).await.err(), Some(Refused::Overflow));
        drop(held);
        assert_eq!(
            queued.await.ok(),
            Some(Ok(())),
            "the queued one got the slot"
        );
        assert_eq!(slots.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_queued_request_leaves_at_its_deadline_and_gives_its_place_back() {
        let slots = slots(1, 1);
        let _held = slots
            .take(Instant::now() + Duration::from_secs(5))
            .await
            .expect("the first slot");
        let short = Instant::now() + Duration::from_millis(20);
        assert_eq!(slots.take(short).await.err(), Some(Refused::Timeout));
        assert_eq!(slots.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_reload_keeps_a_backends_slots() {
        let registry = Registry::new(Limits::default());
        assert!(Arc::ptr_eq(&registry.of("a"), &registry.of("a")));
        assert!(!Arc::ptr_eq(&registry.of("a"), &registry.of("b")));
    }
}
