//! Installing raygate's CRDs the way a user does: `raygate crd | kubectl apply -f -` (plain,
//! client-side), then waiting until the API server serves them.

use anyhow::{Context, Result, bail};
use raygate_api::crd::{policy_crd, ray_crds, to_yaml};

use crate::ControlPlane;

pub fn install_ray_crds(cp: &ControlPlane) -> Result<()> {
    let yaml = to_yaml(&ray_crds())?;
    let applied = cp.kubectl(["apply", "-f", "-"], Some(&yaml))?;
    if !applied.success() {
        bail!("kubectl apply of raygate's CRDs failed:\n{applied}");
    }
    cp.wait_crds_established(&["rayclusters.ray.io", "rayjobs.ray.io", "rayservices.ray.io"])
        .context("raygate's CRDs did not become established")?;
    Ok(())
}

/// Installs the RayPolicy CRD (`raygate crd` prints it after the Ray kinds) and waits until
/// the API server serves it.
pub fn install_policy_crd(cp: &ControlPlane) -> Result<()> {
    let yaml = to_yaml(&[policy_crd()])?;
    let applied = cp.kubectl(["apply", "-f", "-"], Some(&yaml))?;
    if !applied.success() {
        bail!("kubectl apply of the RayPolicy CRD failed:\n{applied}");
    }
    cp.wait_crds_established(&["raypolicies.raygate.io"])
        .context("the RayPolicy CRD did not become established")?;
    Ok(())
}
