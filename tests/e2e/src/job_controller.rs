//! Playing the Job controller: there is none in the test control plane, so tests report a
//! Job's outcome by patching its `status` as that controller would.

use anyhow::{Context, Result};
use k8s_openapi::api::batch::v1::Job;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

/// Records that the Job succeeded. The API server takes `Complete` only together with
/// `SuccessCriteriaMet`, the start and completion times and a succeeded count.
pub async fn mark_complete(jobs: &Api<Job>, name: &str) -> Result<()> {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let complete = json!({"status": {
        "startTime": now,
        "completionTime": now,
        "succeeded": 1,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "lastTransitionTime": now},
        ],
    }});
    jobs.patch_status(name, &PatchParams::default(), &Patch::Merge(&complete))
        .await
        .with_context(|| format!("marking Job {name} complete"))?;
    Ok(())
}
