//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only
//! one acts: two controllers reconciling one cluster would both create the missing pods.
//!
//! The holder renews every `renew` period; others take over once the lease has gone
//! `duration` without renewal. A holder that cannot renew within `duration - renew` of its
//! last renewal stops acting (the process exits and is restarted), so it has stopped before
//! another replica may take over. A renewal that hangs (an API server or network that
//! stalls) counts as failed at that deadline; it is not awaited.
//!
//! A standby times that `duration` on its own clock, from when it saw the lease last change
//! (as client-go does), never from the holder's `renewTime`: nodes' clocks differ, and a
//! standby whose clock runs ahead would otherwise take a lease that is still being renewed.
//! The price is that a replica starting after a crash waits up to one `duration` for the dead
//! holder's lease; a holder that stops cleanly releases it, and the next takes it at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
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

/// What a standby last saw of another replica's lease, on its own clock.
#[derive(Default)]
struct Observation {
    /// The lease's resourceVersion: every renewal changes it.
    version: Option<String>,
    since: Option<Instant>,
}

impl Observation {
    /// Whether `lease`, read at `now`, is free to take: it has no holder, or it has not
    /// changed for its whole duration since this replica first saw it as it is.
    fn expired(&mut self, lease: &Lease, now: Instant) -> bool {
        let spec = lease.spec.as_ref();
        let holder = spec
            .and_then(|s| s.holder_identity.as_deref())
            .unwrap_or("");
        if holder.is_empty() {
            return true;
        }
        let version = lease.metadata.resource_version.clone();
        let since = match self.since {
            Some(since) if self.version == version => since,
            _ => {
                self.version = version;
                *self.since.insert(now)
            }
        };
        let seconds = spec.and_then(|s| s.lease_duration_seconds).unwrap_or(15);
        let duration = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        now.duration_since(since) >= duration
    }
}

impl LeaderLease {
    /// Waits until this replica holds the lease.
    pub async fn acquire(client: Client, options: LeaseOptions) -> Result<Self, Error> {
        let api: Api<Lease> = Api::namespaced(client, &options.namespace);
        let mut seen = Observation::default();
        loop {
            let sent = Instant::now();
            match Self::try_acquire(&api, &options, &mut seen).await {
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
        seen: &mut Observation,
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
        let mine = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref())
            == Some(options.identity.as_str());
        if !mine && !seen.expired(&lease, Instant::now()) {
            return Ok(None);
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
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

    fn lease(holder: Option<&str>, version: &str, renewed_second: i64) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                lease_duration_seconds: Some(10),
                renew_time: Some(MicroTime(
                    Timestamp::from_second(renewed_second).expect("time"),
                )),
                ..LeaseSpec::default()
            }),
        }
    }

    #[test]
    fn a_lease_expires_once_unchanged_for_its_duration_on_the_standbys_clock() {
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let mut seen = Observation::default();
        // The holder's renewTime is an hour in the past (its clock lags): that alone must
        // not make the lease look expired while it is being renewed.
        assert!(!seen.expired(&lease(Some("a"), "1", 0), at(0)));
        assert!(!seen.expired(&lease(Some("a"), "1", 0), at(9)));
        // Renewed (a new resourceVersion): the ten seconds start again.
        assert!(!seen.expired(&lease(Some("a"), "2", 2), at(9)));
        assert!(!seen.expired(&lease(Some("a"), "2", 2), at(18)));
        assert!(seen.expired(&lease(Some("a"), "2", 2), at(19)));
    }

    #[test]
    fn a_lease_renewed_in_the_future_by_a_fast_clock_still_expires() {
        let start = Instant::now();
        let mut seen = Observation::default();
        let ahead = lease(Some("a"), "7", i64::from(i32::MAX));
        assert!(!seen.expired(&ahead, start));
        assert!(seen.expired(&ahead, start + Duration::from_secs(10)));
    }

    #[test]
    fn a_released_lease_is_free_at_once() {
        let mut seen = Observation::default();
        assert!(seen.expired(&lease(None, "3", 0), Instant::now()));
        assert!(seen.expired(&lease(Some(""), "3", 0), Instant::now()));
    }
}
