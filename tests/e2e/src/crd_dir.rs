//! Third-party CRDs that come as a directory of YAML files (cert-manager's, the Gateway API's),
//! installed the way their users install them.

use std::path::Path;

use anyhow::{Result, bail};

use crate::ControlPlane;

/// `kubectl apply` of every CRD in `dir`, then waits until the named ones are Established.
pub fn install_crd_dir(cp: &ControlPlane, what: &str, dir: &Path, wait_for: &[&str]) -> Result<()> {
    let dir = dir.display().to_string();
    // Server-side: these CRDs are too large for the last-applied annotation.
    let applied = cp.kubectl(["apply", "--server-side", "-f", dir.as_str()], None)?;
    if !applied.success() {
        bail!("installing {what}'s CRDs from {dir} failed:\n{applied}");
    }
    let mut args = vec!["wait", "--for=condition=Established", "--timeout=60s"];
    let names: Vec<String> = wait_for.iter().map(|n| format!("crd/{n}")).collect();
    args.extend(names.iter().map(String::as_str));
    let established = cp.kubectl(args, None)?;
    if !established.success() {
        bail!("{what}'s CRDs did not become established:\n{established}");
    }
    Ok(())
}
