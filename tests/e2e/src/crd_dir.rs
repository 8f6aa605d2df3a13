//! Third-party CRDs that come as a directory of YAML files (cert-manager's, the Gateway API's),
//! installed the way their users install them.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::ControlPlane;

/// `kubectl apply` of every CRD in `dir`, then waits until the named ones are Established.
pub fn install_crd_dir(cp: &ControlPlane, what: &str, dir: &Path, wait_for: &[&str]) -> Result<()> {
    let dir = dir.display().to_string();
    // Server-side: these CRDs are too large for the last-applied annotation.
    let applied = cp.kubectl(["apply", "--server-side", "-f", dir.as_str()], None)?;
    if !applied.success() {
        bail!("installing {what}'s CRDs from {dir} failed:\n{applied}");
    }
    cp.wait_crds_established(wait_for)
        .with_context(|| format!("{what}'s CRDs did not become established"))?;
    Ok(())
}
