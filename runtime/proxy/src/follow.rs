//! `serve --table-url URL`: follow the table a controller publishes (`aigw controller`'s
//! `/v1/table`) instead of a file.
//!
//! The follower long-polls: it sends the version it serves in `If-None-Match` with `?wait=30`,
//! and the controller answers when a newer table exists (200 with the table and its `ETag`) or
//! when the wait ends (304). A new table goes through the same reload as a file's (validated,
//! compiled, swapped in whole), so a table the data plane refuses leaves the previous one
//! serving, and a controller that is down or unreachable changes nothing: the data plane keeps
//! serving its last good table and retries with backoff (0.5 s doubling to 10 s).
//!
//! With `--table FILE` as well, the file is the follower's cache: each table installed from the
//! controller is written to it (atomically), and at start, when the controller does not answer
//! within [`START_GRACE`], the data plane starts from the file. Without a file it waits for the
//! controller, since it has nothing to serve.

use crate::body::Body;
use crate::reload::{self, Source};
use crate::secrets::Secrets;
use crate::server::Handle;
use aigw_table::Snapshot;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a data plane with a cached table waits for the controller at start.
pub const START_GRACE: Duration = Duration::from_secs(5);
/// The long-poll wait asked of the controller.
const WAIT: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The followed table: the newest bytes fetched, with secrets from a fixed place.
pub struct Followed {
    url: String,
    latest: Mutex<Option<(Bytes, String)>>,
    secrets: Secrets,
    cache: Option<PathBuf>,
    client: crate::upstream::Client,
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Followed")
            .field("url", &self.url)
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Source for Followed {
    fn load(&self) -> Result<(Snapshot, Secrets), String> {
        let latest = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (bytes, _) = latest.ok_or("no table fetched yet")?;
        let snapshot = aigw_table::load(&bytes).map_err(|e| format!("{}: {e}", self.url))?;
        Ok((snapshot, self.secrets.clone()))
    }

    /// The mounted Secrets: a rotated key is a reload, as with a table file.
    fn watched(&self) -> Vec<PathBuf> {
        self.secrets
            .dir()
            .map(|d| vec![d.to_path_buf()])
            .unwrap_or_default()
    }
}

/// What one poll got.
enum Polled {
    New(Bytes, String),
    Same,
}

impl Followed {
    /// Fetches the first table: from the controller, or (past [`START_GRACE`]) from the cache
    /// file when there is one.
    pub async fn start(url: &str, cache: Option<PathBuf>, secrets: Secrets) -> Arc<Followed> {
        let followed = Arc::new(Followed {
            url: url.to_owned(),
            latest: Mutex::new(None),
            secrets,
            cache,
            client: crate::upstream::Clients::new().plain(),
        });
        let started = std::time::Instant::now();
        let mut backoff = BACKOFF_FIRST;
        loop {
            match followed.poll(None, Duration::ZERO).await {
                Ok(Polled::New(bytes, etag)) => {
                    tracing::info!(url, version = %etag, "fetched the table");
                    followed.set(bytes, etag);
                    return followed;
                }
                Ok(Polled::Same) => {}
                Err(error) => tracing::warn!(url, %error, "the table could not be fetched yet"),
            }
            if started.elapsed() >= START_GRACE
                && let Some(bytes) = followed.read_cache()
            {
                tracing::warn!(
                    url,
                    "the controller does not answer: starting from the cached table"
                );
                followed.set(bytes, String::new());
                return followed;
            }
            // With a cache, never sleep past the grace: the fallback comes at START_GRACE.
            let nap = match &followed.cache {
                Some(_) => backoff.min(START_GRACE.saturating_sub(started.elapsed())),
                None => backoff,
            };
            tokio::time::sleep(nap.max(Duration::from_millis(10))).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    fn set(&self, bytes: Bytes, etag: String) {
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some((bytes, etag));
    }

    fn version(&self) -> Option<String> {
        let latest = self.latest.lock().unwrap_or_else(|p| p.into_inner());
        latest
            .as_ref()
            .map(|(_, etag)| etag.clone())
            .filter(|e| !e.is_empty())
    }

    fn read_cache(&self) -> Option<Bytes> {
        let path = self.cache.as_ref()?;
        std::fs::read(path).ok().map(Bytes::from)
    }

    /// Writes the installed table to the cache file, atomically.
    pub fn write_cache(&self) {
        let (Some(path), Some((bytes, _))) = (
            &self.cache,
            self.latest
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        ) else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "the cached table could not be written");
        }
    }

    async fn poll(&self, known: Option<&str>, wait: Duration) -> Result<Polled, String> {
        let mut uri = self.url.clone();
        if !wait.is_zero() {
            let sep = if uri.contains('?') { '&' } else { '?' };
            uri.push_str(&format!("{sep}wait={}", wait.as_secs()));
        }
        let mut request = http::Request::get(&uri);
        if let Some(etag) = known {
            request = request.header(http::header::IF_NONE_MATCH, etag);
        }
        let request = request.body(Body::empty()).map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(wait + Duration::from_secs(10), async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let etag = response
                .headers()
                .get(http::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((status, etag, body))
        })
        .await
        .map_err(|_| "the controller did not answer in time".to_owned())??;
        match answer {
            (http::StatusCode::OK, etag, body) => Ok(Polled::New(body, etag)),
            (http::StatusCode::NOT_MODIFIED, _, _) => Ok(Polled::Same),
            (status, _, _) => Err(format!("the controller answered {status}")),
        }
    }
}

/// Follows the controller until the runtime stops: installs each new table it publishes.
pub async fn follow(runtime: Handle, followed: Arc<Followed>) {
    let mut backoff = BACKOFF_FIRST;
    let mut failing = false;
    loop {
        let known = followed.version();
        match followed.poll(known.as_deref(), WAIT).await {
            Ok(polled) => {
                if failing {
                    tracing::info!(url = %followed.url, "the controller answers again");
                    failing = false;
                }
                backoff = BACKOFF_FIRST;
                if let Polled::New(bytes, etag) = polled {
                    followed.set(bytes, etag);
                    let (runtime, source) = (runtime.clone(), followed.clone());
                    let _ = tokio::task::spawn_blocking(move || {
                        if reload::reload_now(
                            &runtime,
                            source.as_ref(),
                            "the controller published a table",
                        ) {
                            source.write_cache();
                        }
                    })
                    .await;
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(url = %followed.url, %error, "the controller cannot be reached; the last good table keeps serving");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
