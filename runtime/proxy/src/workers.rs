//! Per-core serving: one set of `workers` threads serves every Gateway listener, each thread
//! running its own single-threaded tokio runtime and accepting on every listener, so a
//! connection, its requests and the tasks they spawn stay on the thread that accepted it (the
//! model of Envoy's workers and of thread-per-core proxies).
//!
//! Why: on tokio's shared work-stealing pool, a connection's task is woken by whichever thread
//! polls the I/O driver and may move between threads on every wake-up; on a busy machine those
//! hand-overs (and the futex wake-ups they cost) were where aigw's p99 went, while its CPU per
//! request stayed low (issue #21, BENCHMARKS.md). Pinned connections take no hand-over.
//!
//! Each worker has its own upstream pools as well ([`crate::upstream::Pools`], picked by the
//! thread's [`index`]), so a pooled upstream connection is driven by the thread that uses it.
//! What the process shares (the generation, metrics, quotas, caches, request slots, the Redis
//! connection, the side clients of token services) is reached from every worker.
//!
//! This module owns the threads and their shutdown; accepting and serving a connection is
//! [`crate::server`]'s. With `workers == 0` the listeners are served on the runtime that started
//! the gateway (the tests' runtime, for instance) instead.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, Barrier};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

thread_local! {
    /// This thread's worker number plus one; 0 on threads that are not workers.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The calling thread's worker number plus one, 0 when it is not a worker: which of an
/// upstream's [`crate::upstream::Pools`] it uses.
pub fn index() -> usize {
    INDEX.get()
}

/// Serves every one of `listeners` on each of `workers` threads of their own: `serve` is called
/// once per worker and listener, on that worker's runtime, with what the caller keeps of the
/// listener (`L`) and the worker's own handle to its socket. Returns once every worker listens (or the first error of one that could
/// not); the future it returns ends when every worker has ended.
///
/// A worker's runtime is dropped only once every worker has drained: a task one worker started
/// for the whole process (a shared connection's driver, say) may still be needed by another
/// worker's requests until then.
pub async fn spawn<L, F, Fut>(
    listeners: Vec<(L, TcpListener)>,
    workers: usize,
    serve: F,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static>
where
    L: Clone + Send + 'static,
    F: Fn(L, TcpListener) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let mut listening = Vec::with_capacity(listeners.len());
    for (listener, socket) in listeners {
        listening.push((listener, socket.into_std()?));
    }
    let drained = Arc::new(Barrier::new(workers));
    let mut done = Vec::with_capacity(workers);
    let mut ready = Vec::with_capacity(workers);
    for worker in 0..workers {
        let mut own = Vec::with_capacity(listening.len());
        for (listener, socket) in &listening {
            own.push((listener.clone(), socket.try_clone()?));
        }
        let (serve, drained) = (serve.clone(), drained.clone());
        let (finished, finished_rx) = oneshot::channel::<()>();
        let (started, started_rx) = oneshot::channel::<std::io::Result<()>>();
        // A thread that cannot be made ends the start (the workers already made then wait for
        // it at the barrier, in a process that is about to exit).
        std::thread::Builder::new()
            .name(format!("aigw-worker-{worker}"))
            .spawn(move || {
                INDEX.set(worker + 1);
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(run(own, serve, started));
                        drained.wait();
                        // Tasks the connections left behind (a mirror, a trace export) end
                        // here; a blocking lookup still running is not waited on for long.
                        runtime.shutdown_timeout(SHUTDOWN);
                    }
                    Err(error) => {
                        let _ = started.send(Err(error));
                        drained.wait();
                    }
                }
                let _ = finished.send(());
            })?;
        done.push(finished_rx);
        ready.push(started_rx);
    }
    for started in ready {
        started
            .await
            .map_err(|_| std::io::Error::other("a listener worker ended before it listened"))??;
    }
    Ok(async move {
        for finished in done {
            let _ = finished.await;
        }
    })
}

/// How long a worker's runtime waits, when it is dropped, for blocking work still running.
const SHUTDOWN: std::time::Duration = std::time::Duration::from_secs(1);

/// One worker: listens on its handles, says so, and serves until every listener's loop ends.
async fn run<L, F, Fut>(
    own: Vec<(L, std::net::TcpListener)>,
    serve: F,
    started: oneshot::Sender<std::io::Result<()>>,
) where
    F: Fn(L, TcpListener) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut sockets = Vec::with_capacity(own.len());
    for (listener, socket) in own {
        match TcpListener::from_std(socket) {
            Ok(socket) => sockets.push((listener, socket)),
            Err(error) => {
                let _ = started.send(Err(error));
                return;
            }
        }
    }
    let _ = started.send(Ok(()));
    let loops = sockets
        .into_iter()
        .map(|(port, socket)| serve(port, socket));
    futures_util::future::join_all(loops).await;
}

/// The default worker count: one per core the process may use.
pub fn per_core() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
