//! Writes what [`crate::policy_status`] decided to the RayPolicies' status subresource, every
//! few seconds and only when there is something to add or report.
//!
//! Each write is a server-side apply of the webhook's status fields under the field manager
//! [`FIELD_MANAGER`], with the `resourceVersion` the status was computed from: if another
//! replica (or anyone) wrote since, the API server answers 409 Conflict, and the write is
//! recomputed from a fresh read. Nothing is ever overwritten on a guess. `force` only settles
//! field ownership (several replicas share the manager name, and `kubectl edit` may have taken a
//! field); the resourceVersion is what keeps the counts right.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use raygate_api::policy::{POLICY_API_VERSION, POLICY_KIND, RayPolicy};
use serde_json::json;

use crate::metrics::Metrics;
use crate::policy_state::PolicyState;
use crate::policy_status::{ObservedPolicy, StatusWrite};

/// The field manager of the webhook's status writes (`kubectl get --show-managed-fields`).
pub const FIELD_MANAGER: &str = "raygate-webhook";

/// How often pending counts and reports are written by default.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// Conflicts in a row before a write waits for the next round (another replica writing the same
/// policy at the same moment is the only cause; a third collision in a row is very unlikely).
const ATTEMPTS: usize = 3;

/// Writes the status of the cluster's RayPolicies for one webhook replica.
#[derive(Clone)]
pub struct StatusWriter {
    api: Api<DynamicObject>,
    state: Arc<PolicyState>,
    metrics: Arc<Metrics>,
    /// This replica's name, for the `Ready` condition's message.
    replica: String,
}

impl StatusWriter {
    pub fn new(
        client: Client,
        state: Arc<PolicyState>,
        metrics: Arc<Metrics>,
        replica: String,
    ) -> Self {
        let resource = ApiResource::erase::<RayPolicy>(&());
        Self {
            api: Api::all_with(client, &resource),
            state,
            metrics,
            replica,
        }
    }

    /// Flushes every `interval` until the process ends. Call [`StatusWriter::flush`] once more
    /// on shutdown, so the last seconds' counts are not lost.
    pub async fn run(self, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; there is nothing to write yet.
        ticks.tick().await;
        loop {
            ticks.tick().await;
            self.flush().await;
        }
    }

    /// Writes everything due now. Failures are logged and counted; what was not written stays
    /// pending for the next round.
    pub async fn flush(&self) {
        let book = self.state.status_book();
        for write in book.due(&self.replica, Timestamp::now()) {
            self.write(write).await;
        }
    }

    async fn write(&self, mut write: StatusWrite) {
        let book = self.state.status_book();
        for _ in 0..ATTEMPTS {
            match self.apply(&write).await {
                Ok(updated) => {
                    self.metrics.observe_policy_status_write("written");
                    match ObservedPolicy::from_object(&updated) {
                        Some(updated) => book.written(&write, updated),
                        None => {
                            tracing::warn!(policy = %write.name, "status write answered without metadata")
                        }
                    }
                    return;
                }
                Err(kube::Error::Api(status)) if status.is_conflict() => {
                    self.metrics.observe_policy_status_write("conflict");
                    tracing::debug!(policy = %write.name, "RayPolicy changed since read; re-reading");
                    match self.api.get(&write.name).await {
                        Ok(fresh) => {
                            if let Some(fresh) = ObservedPolicy::from_object(&fresh) {
                                book.observe(fresh);
                            }
                        }
                        Err(error) => {
                            self.failed(&write, &error);
                            return;
                        }
                    }
                    match book.due_for(&write.name, &self.replica, Timestamp::now()) {
                        Some(next) => write = next,
                        None => return,
                    }
                }
                // Deleted meanwhile: the watch forgets it.
                Err(kube::Error::Api(status)) if status.is_not_found() => return,
                Err(error) => {
                    self.failed(&write, &error);
                    return;
                }
            }
        }
    }

    fn failed(&self, write: &StatusWrite, error: &kube::Error) {
        self.metrics.observe_policy_status_write("error");
        tracing::warn!(
            policy = %write.name,
            %error,
            "writing RayPolicy status failed; retrying in the next round"
        );
    }

    async fn apply(&self, write: &StatusWrite) -> Result<DynamicObject, kube::Error> {
        let patch = json!({
            "apiVersion": POLICY_API_VERSION,
            "kind": POLICY_KIND,
            "metadata": {
                "name": write.name,
                // A precondition: refused with 409 if the object changed since it was read.
                "resourceVersion": write.resource_version,
            },
            "status": write.status,
        });
        self.api
            .patch_status(
                &write.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
    }
}

/// This replica's name: `configured` (the pod's name from the downward API), else the host
/// name, which Kubernetes sets to the pod's name.
pub fn replica_name(configured: Option<&str>) -> String {
    configured
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
        })
        .unwrap_or_else(|| FIELD_MANAGER.to_owned())
}
