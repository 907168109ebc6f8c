//! Leader election with a `coordination.k8s.io/v1` Lease. Every replica runs this; the holder
//! renews every `renew` period with optimistic concurrency (the Lease's resourceVersion), so two
//! replicas can never both succeed a write of the same version. A standby takes the Lease when the
//! holder has not renewed for `duration` — measured on the standby's own clock from when it last
//! saw the Lease change, so clock skew between nodes does not matter. Losing the Lease ends
//! [`run`] with an error; the process exits and restarts as a standby.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::error::ControllerError;

/// Which Lease, who we are, and the timings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a holder that stopped renewing keeps the Lease.
    pub duration: Duration,
    /// How often the holder renews and a standby looks.
    pub renew: Duration,
}

/// What one look at the Lease found.
#[derive(Debug, PartialEq)]
enum Look {
    Held,
    HeldBy(String),
}

struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The Lease version last seen and when it was first seen (for expiry on our clock).
    observed: Option<(String, Instant)>,
}

impl Elector {
    fn lease_spec(&self, transitions: i32, acquire: Option<MicroTime>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquire.unwrap_or_else(|| now.clone())),
            renew_time: Some(now),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn err(&self, source: kube::Error) -> ControllerError {
        ControllerError::Lease {
            name: self.config.name.clone(),
            source,
        }
    }

    async fn look(&mut self) -> Result<Look, ControllerError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.lease_spec(0, None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Look::Held),
                Err(e) if is_conflict(&e) => Ok(Look::HeldBy(String::new())),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let version = lease.metadata.resource_version.clone().unwrap_or_default();
        let now = Instant::now();
        let first_seen = match &self.observed {
            Some((v, at)) if *v == version => *at,
            _ => now,
        };
        self.observed = Some((version, first_seen));
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == self.config.identity {
            self.lease_spec(transitions, spec.acquire_time.clone())
        } else {
            let held_for = Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            );
            if !holder.is_empty() && now.duration_since(first_seen) < held_for {
                return Ok(Look::HeldBy(holder));
            }
            self.lease_spec(transitions.saturating_add(1), None)
        };
        lease.spec = Some(next);
        // replace carries the resourceVersion we read: a concurrent writer makes this 409.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Look::Held),
            Err(e) if is_conflict(&e) => Ok(Look::HeldBy(holder)),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Give the Lease up so a standby takes over at once.
    async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(error) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(%error, "releasing the Lease");
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Hold or wait for the Lease until shutdown, publishing leadership on `leader`. Returns an error
/// when a held Lease is lost (taken, or not renewed within its duration).
pub async fn run(
    client: kube::Client,
    config: LeaseConfig,
    leader: watch::Sender<bool>,
    shutdown: CancellationToken,
) -> Result<(), ControllerError> {
    let mut elector = Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: None,
    };
    let mut last_renewal = Instant::now();
    loop {
        let result = tokio::select! {
            () = shutdown.cancelled() => {
                if *leader.borrow() {
                    elector.release().await;
                    leader.send_replace(false);
                }
                return Ok(());
            }
            r = elector.look() => r,
        };
        let was_leader = *leader.borrow();
        match result {
            Ok(Look::Held) => {
                last_renewal = Instant::now();
                if !was_leader {
                    tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "became the leader");
                    leader.send_replace(true);
                }
            }
            Ok(Look::HeldBy(holder)) if was_leader => {
                leader.send_replace(false);
                return Err(ControllerError::LostLease {
                    name: elector.config.name.clone(),
                    holder,
                });
            }
            Ok(Look::HeldBy(_)) => {}
            Err(error) => {
                tracing::warn!(%error, "Lease check failed");
                if was_leader && last_renewal.elapsed() >= elector.config.duration {
                    leader.send_replace(false);
                    return Err(error);
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(elector.config.renew) => {}
        }
    }
}
