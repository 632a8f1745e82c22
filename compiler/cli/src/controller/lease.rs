//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several controller replicas
//! exactly one writes (statuses, Events, applied resources) while all of them watch, compile and
//! serve the table.
//!
//! The algorithm is client-go's: the holder renews the Lease every `retry`; another replica takes
//! it over only when it has seen the same `renewTime` unchanged for `duration`, measured on its
//! own clock (so clock skew between nodes does not matter); every write carries the
//! `resourceVersion` it read, so of two replicas racing for an expired Lease the API server
//! lets one win (409 Conflict for the other). A holder that cannot renew for `renew_deadline`
//! stops writing before anyone else may start (`renew_deadline < duration`). On shutdown the
//! holder releases the Lease so a successor need not wait.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Timings of the election.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long a Lease holds without renewal.
    pub duration: Duration,
    /// How long the holder tries to renew before it stops writing.
    pub renew_deadline: Duration,
    /// How often it tries.
    pub retry: Duration,
}

impl Timing {
    /// client-go's defaults: 15 s, 10 s, 2 s.
    pub const DEFAULT: Timing = Timing {
        duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry: Duration::from_secs(2),
    };

    /// Scaled from the Lease duration, in client-go's proportions.
    pub fn from_duration(duration: Duration) -> Timing {
        Timing {
            duration,
            renew_deadline: duration.mul_f64(2.0 / 3.0),
            retry: duration.mul_f64(2.0 / 15.0),
        }
    }
}

/// What identifies one renewal of a Lease: its holder and its `renewTime`.
type Record = (Option<String>, Option<String>);

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The Lease as last read: (holder, renewTime), and when this replica first saw it so.
    observed: Option<(Record, Instant)>,
    /// When this replica last renewed successfully, while it leads.
    renewed: Option<Instant>,
}

impl Elector {
    pub fn new(api: Api<Lease>, name: &str, identity: &str, timing: Timing) -> Self {
        Elector {
            api,
            name: name.to_owned(),
            identity: identity.to_owned(),
            timing,
            observed: None,
            renewed: None,
        }
    }

    /// Campaigns until `stop` turns true, publishing leadership on `leading`; then releases the
    /// Lease if held.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        loop {
            let now_leading = self.step().await;
            if *leading.borrow() != now_leading {
                tracing::info!(identity = %self.identity, leading = now_leading, "leader election");
                let _ = leading.send(now_leading);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.timing.retry) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        if *leading.borrow() {
            let _ = leading.send(false);
            self.release().await;
        }
    }

    /// One try to acquire or renew; true while this replica may write.
    async fn step(&mut self) -> bool {
        match self.try_acquire_or_renew().await {
            Ok(true) => {
                self.renewed = Some(Instant::now());
                true
            }
            Ok(false) => {
                self.renewed = None;
                false
            }
            Err(error) => {
                tracing::warn!(%error, "leader election: the Lease could not be read or written");
                // Keep leading only within the renew deadline of the last renewal.
                self.renewed
                    .is_some_and(|at| at.elapsed() < self.timing.renew_deadline)
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let Some(mut lease) = self.api.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let record = (
            holder.clone(),
            spec.renew_time.as_ref().map(|t| t.0.to_string()),
        );
        let seen_at = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record, at));
                at
            }
        };
        let mine = holder.as_deref() == Some(self.identity.as_str());
        let held_for = spec
            .lease_duration_seconds
            .map_or(self.timing.duration, |s| {
                Duration::from_secs(s.max(0) as u64)
            });
        if !mine && holder.is_some() && seen_at.elapsed() < held_for {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        lease.spec = Some(self.spec(now, transitions, acquired));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn spec(&self, now: MicroTime, transitions: i32, acquired: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.duration.as_secs().max(1) as i32),
            acquire_time: Some(acquired.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up: no holder, and a one-second duration, as client-go releases it.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        lease.spec = Some(spec);
        if let Err(error) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "the Lease could not be released");
        }
    }
}

fn conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}
