//! Per-core serving: each Gateway listener is accepted on by `workers` threads, each running its
//! own single-threaded tokio runtime, so a connection, its requests and the tasks they spawn stay
//! on the thread that accepted it (the model of Envoy's workers and of thread-per-core proxies).
//!
//! Why: on tokio's shared work-stealing pool, a connection's task is woken by whichever thread
//! polls the I/O driver and may move between threads on every wake-up; on a busy machine those
//! hand-overs (and the futex wake-ups they cost) were where aigw's p99 went, while its CPU per
//! request stayed low (issue #21, BENCHMARKS.md). Pinned connections take no hand-over.
//!
//! Each worker has its own upstream pools as well ([`crate::upstream::Clients`] keeps one set per
//! thread), so a pooled upstream connection is driven by the thread that uses it.
//!
//! This module owns the threads and their shutdown; accepting and serving a connection is
//! [`crate::server`]'s. With `workers == 0` the listener is served on the runtime that started
//! the gateway (the tests' runtime, for instance) instead.

use std::cell::Cell;
use std::future::Future;
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

/// Serves `socket` on `workers` threads of their own: `serve` is called once per worker, on that
/// worker's runtime, with its own handle to the listening socket. Returns once every worker
/// listens (or the first error of one that could not); the future it returns ends when every
/// worker's `serve` has ended (each drains its own connections first).
pub async fn spawn<F, Fut>(
    socket: TcpListener,
    port: u16,
    workers: usize,
    serve: F,
) -> std::io::Result<impl Future<Output = ()> + Send + 'static>
where
    F: Fn(TcpListener) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = socket.into_std()?;
    let mut done = Vec::with_capacity(workers);
    let mut ready = Vec::with_capacity(workers);
    for worker in 0..workers {
        let listener = listener.try_clone()?;
        let serve = serve.clone();
        let (finished, finished_rx) = oneshot::channel::<()>();
        let (listening, listening_rx) = oneshot::channel::<std::io::Result<()>>();
        std::thread::Builder::new()
            .name(format!("aigw-{port}-{worker}"))
            .spawn(move || {
                INDEX.set(worker + 1);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = listening.send(Err(error));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(socket) => {
                            let _ = listening.send(Ok(()));
                            serve(socket).await;
                        }
                        Err(error) => {
                            let _ = listening.send(Err(error));
                        }
                    }
                });
                // Tasks the connections left behind (a mirror, a trace export) end with the
                // runtime; the drain above already waited for every request.
                drop(runtime);
                let _ = finished.send(());
            })?;
        done.push(finished_rx);
        ready.push(listening_rx);
    }
    for listening in ready {
        listening
            .await
            .map_err(|_| std::io::Error::other("a listener worker ended before it listened"))??;
    }
    Ok(async move {
        for finished in done {
            let _ = finished.await;
        }
    })
}

/// The default worker count: one per core the process may use.
pub fn per_core() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}
