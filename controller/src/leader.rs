//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one acts: two controllers reconciling one cluster would both create the missing pods.
//!
//! The holder renews every `renew` period; others take over once the lease has gone
//! `duration` without renewal. A holder that cannot renew within `duration - renew` of its
//! last renewal stops acting (the process exits and is restarted), so it has stopped before
//! another replica may take over. A renewal that hangs (an API server or network that
//! stalls) counts as failed at that deadline; it is not awaited.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::time::Instant;

use crate::error::Error;

#[derive(Debug, Clone)]
pub struct LeaseOptions {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    /// How long a lease stays valid without renewal: the worst-case failover time.
    pub duration: Duration,
    pub renew: Duration,
}

impl LeaseOptions {
    pub fn new(namespace: String, identity: String) -> Self {
        Self {
            namespace,
            name: "raygate-controller".to_string(),
            identity,
            duration: Duration::from_secs(10),
            renew: Duration::from_secs(2),
        }
    }
}

/// A held lease.
pub struct LeaderLease {
    api: Api<Lease>,
    options: LeaseOptions,
    lease: Lease,
    /// When the write that last took or renewed the lease was sent: the `renewTime` other
    /// replicas judge expiry by.
    renewed_at: Instant,
}

/// Whether the lease is still ours, as the API server answered a renewal.
enum Renewal {
    Renewed(Lease),
    /// Someone else's write came between: still ours (the lease read back).
    StillOurs(Lease),
    Lost,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX).max(1)
}

/// Whether the lease is free to take: no holder, or not renewed within its own duration.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return true;
    }
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed.0 + duration < now
}

impl LeaderLease {
    /// Waits until this replica holds the lease.
    pub async fn acquire(client: Client, options: LeaseOptions) -> Result<Self, Error> {
        let api: Api<Lease> = Api::namespaced(client, &options.namespace);
        loop {
            let sent = Instant::now();
            match Self::try_acquire(&api, &options).await {
                Ok(Some(lease)) => {
                    tracing::info!(
                        lease = options.name,
                        identity = options.identity,
                        "became leader"
                    );
                    return Ok(Self {
                        api,
                        options,
                        lease,
                        renewed_at: sent,
                    });
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(options.renew).await;
        }
    }

    async fn try_acquire(
        api: &Api<Lease>,
        options: &LeaseOptions,
    ) -> Result<Option<Lease>, kube::Error> {
        let Some(mut lease) = api.get_opt(&options.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(options.name.clone()),
                    namespace: Some(options.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(options.identity.clone()),
                    lease_duration_seconds: Some(seconds(options.duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(created) => Ok(Some(created)),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                Err(error) => Err(error),
            };
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let mine = spec.holder_identity.as_deref() == Some(options.identity.as_str());
        if !mine && !expired(spec, Timestamp::now()) {
            return Ok(None);
        }
        if !mine {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            spec.acquire_time = Some(now());
        }
        spec.holder_identity = Some(options.identity.clone());
        spec.lease_duration_seconds = Some(seconds(options.duration));
        spec.renew_time = Some(now());
        // The resourceVersion in `lease` makes this a compare-and-swap: of two replicas
        // taking an expired lease at once, one gets 409.
        match api
            .replace(&options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(taken) => Ok(Some(taken)),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The time after its last renewal at which a holder gives up: one renewal period short
    /// of the lease duration, so it has stopped acting before a standby may take over.
    fn renew_deadline(&self) -> Duration {
        self.options
            .duration
            .saturating_sub(self.options.renew)
            .max(self.options.renew)
    }

    /// Renews until renewal fails past the renew deadline or another replica took the
    /// lease; then returns the error that ends this replica's term.
    pub async fn keep(&mut self) -> Error {
        let lost = || Error::LostLease {
            lease: self.options.name.clone(),
        };
        loop {
            tokio::time::sleep(self.options.renew).await;
            let deadline = self.renewed_at + self.renew_deadline();
            let sent = Instant::now();
            match tokio::time::timeout_at(deadline, self.renew_once()).await {
                Ok(Ok(Renewal::Renewed(lease))) => {
                    self.lease = lease;
                    self.renewed_at = sent;
                    continue;
                }
                Ok(Ok(Renewal::StillOurs(lease))) => self.lease = lease,
                Ok(Ok(Renewal::Lost)) => return lost(),
                Ok(Err(error)) => tracing::warn!(%error, "renewing the leader lease failed"),
                Err(_) => {
                    tracing::warn!("renewing the leader lease did not finish by its deadline");
                    return lost();
                }
            }
            if Instant::now() >= deadline {
                return lost();
            }
        }
    }

    async fn renew_once(&self) -> Result<Renewal, kube::Error> {
        let mut lease = self.lease.clone();
        if let Some(spec) = lease.spec.as_mut() {
            spec.renew_time = Some(now());
        }
        match self
            .api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(renewed) => Ok(Renewal::Renewed(renewed)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Someone wrote the lease: still ours only if it names us. The next renewal
                // carries the resourceVersion read here.
                let current = self.api.get(&self.options.name).await?;
                let holder = current
                    .spec
                    .as_ref()
                    .and_then(|s| s.holder_identity.as_deref());
                Ok(if holder == Some(self.options.identity.as_str()) {
                    Renewal::StillOurs(current)
                } else {
                    Renewal::Lost
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Gives the lease up on a clean shutdown, so a standby takes over at once instead of
    /// waiting for it to expire.
    pub async fn release(self) {
        let mut lease = self.lease;
        if let Some(spec) = lease.spec.as_mut() {
            spec.holder_identity = None;
            spec.lease_duration_seconds = Some(1);
            spec.renew_time = Some(now());
        }
        match self
            .api
            .replace(&self.options.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!(lease = self.options.name, "released the leader lease"),
            Err(error) => tracing::warn!(%error, "releasing the leader lease failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        let renewed = Timestamp::from_second(1_000).expect("time");
        let spec = LeaseSpec {
            holder_identity: Some("a".into()),
            lease_duration_seconds: Some(10),
            renew_time: Some(MicroTime(renewed)),
            ..LeaseSpec::default()
        };
        assert!(!expired(
            &spec,
            Timestamp::from_second(1_009).expect("time")
        ));
        assert!(expired(&spec, Timestamp::from_second(1_011).expect("time")));
        let released = LeaseSpec {
            holder_identity: None,
            ..spec
        };
        assert!(expired(
            &released,
            Timestamp::from_second(1_000).expect("time")
        ));
    }
}
