//! Installing raygate's CRDs the way a user does: `raygate crd | kubectl apply -f -` (plain,
//! client-side), then waiting until the API server serves them.

use anyhow::{Result, bail};
use raygate_api::crd::{policy_crd, ray_crds, to_yaml};

use crate::ControlPlane;

pub fn install_ray_crds(cp: &ControlPlane) -> Result<()> {
    let yaml = to_yaml(&ray_crds())?;
    let applied = cp.kubectl(["apply", "-f", "-"], Some(&yaml))?;
    if !applied.success() {
        bail!("kubectl apply of raygate's CRDs failed:\n{applied}");
    }
    let established = cp.kubectl(
        [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/rayclusters.ray.io",
            "crd/rayjobs.ray.io",
            "crd/rayservices.ray.io",
        ],
        None,
    )?;
    if !established.success() {
        bail!("raygate's CRDs did not become established:\n{established}");
    }
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
    let established = cp.kubectl(
        [
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/raypolicies.raygate.io",
        ],
        None,
    )?;
    if !established.success() {
        bail!("the RayPolicy CRD did not become established:\n{established}");
    }
    Ok(())
}
