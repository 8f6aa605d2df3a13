//! Running a command as a ServiceAccount: a kubeconfig that impersonates it through the
//! control plane's admin credentials, so RBAC is checked exactly as for a pod using that
//! account.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::control_plane::ControlPlane;

/// Writes `<control plane dir>/kubeconfig-<namespace>-<name>` acting as the ServiceAccount.
pub fn kubeconfig_as(cp: &ControlPlane, namespace: &str, name: &str) -> Result<PathBuf> {
    let text = std::fs::read_to_string(cp.kubeconfig_path()).context("reading the kubeconfig")?;
    let mut config: Value = raygate_api::manifest::parse_documents(&text)
        .context("parsing the kubeconfig")?
        .into_iter()
        .next()
        .context("empty kubeconfig")?;
    let users = config["users"]
        .as_array_mut()
        .context("kubeconfig without users")?;
    for user in users {
        user["user"]["as"] = json!(format!("system:serviceaccount:{namespace}:{name}"));
        user["user"]["as-groups"] = json!([
            "system:serviceaccounts",
            format!("system:serviceaccounts:{namespace}"),
            "system:authenticated"
        ]);
    }
    let path = cp.dir().join(format!("kubeconfig-{namespace}-{name}"));
    // JSON is YAML: every kubeconfig reader takes it.
    std::fs::write(&path, serde_json::to_vec_pretty(&config)?).context("writing the kubeconfig")?;
    Ok(path)
}
