//! Playing kubelet: there is none in the test control plane, so tests move pods to Running
//! and Ready by patching `status` as a kubelet would. Pod IPs are loopback addresses only
//! (127.0.0.x): nothing may ever point at a real network.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

static NEXT_IP: AtomicU32 = AtomicU32::new(0);

/// A loopback address for the next pod: 127.0.0.2 .. 127.0.0.254.
pub fn loopback_pod_ip() -> String {
    let n = NEXT_IP.fetch_add(1, Ordering::Relaxed) % 253;
    format!("127.0.0.{}", n + 2)
}

/// Marks one pod Running and Ready with a loopback IP.
pub async fn mark_ready(pods: &Api<Pod>, name: &str) -> Result<()> {
    let ip = loopback_pod_ip();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let status = json!({
        "status": {
            "phase": "Running",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            ],
        }
    });
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("marking pod {name} ready"))?;
    Ok(())
}

/// Marks every pod matching `selector` that is not Running yet; returns how many it marked.
pub async fn mark_all_ready(pods: &Api<Pod>, selector: &str) -> Result<usize> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .context("listing pods")?;
    let mut marked = 0;
    for pod in list.items {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        if running || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if let Some(name) = &pod.metadata.name {
            mark_ready(pods, name).await?;
            marked += 1;
        }
    }
    Ok(marked)
}

/// Marks a pod Failed, as after its container exited with an error under `restartPolicy: Never`.
pub async fn mark_failed(pods: &Api<Pod>, name: &str) -> Result<()> {
    let status = json!({"status": {"phase": "Failed", "reason": "Error"}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("marking pod {name} failed"))?;
    Ok(())
}

/// The finalizer [`hold_deletion`] puts on a pod.
const STILL_STOPPING: &str = "raygate.test/still-stopping";

/// Keeps a pod terminating once deleted, as a kubelet still stopping its containers would:
/// a finalizer the API server waits for.
pub async fn hold_deletion(pods: &Api<Pod>, name: &str) -> Result<()> {
    let hold = json!({"metadata": {"finalizers": [STILL_STOPPING]}});
    pods.patch(name, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .with_context(|| format!("holding pod {name}"))?;
    Ok(())
}

/// Lets a pod held by [`hold_deletion`] go: its containers have stopped.
pub async fn finish_deletion(pods: &Api<Pod>, name: &str) -> Result<()> {
    let release = json!([{"op": "remove", "path": "/metadata/finalizers"}]);
    let release = Patch::Json::<()>(serde_json::from_value(release).context("a JSON patch")?);
    pods.patch(name, &PatchParams::default(), &release)
        .await
        .with_context(|| format!("releasing pod {name}"))?;
    Ok(())
}
