//! A real cert-manager next to the local control plane: its CRDs, and its controller and
//! cainjector — built from the published github.com/cert-manager/cert-manager module by
//! `tests/certmanager/build.sh` — running as local processes against the test kubeconfig.
//! cert-manager's own webhook is not run: nothing here needs its validation or conversion,
//! and the API server would have to call it. Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::control_plane::{ControlPlane, Supervised, workspace_root};

/// Directory with `cert-manager-controller` and `cert-manager-cainjector`.
pub const BIN_DIR_ENV: &str = "RAYGATE_CERT_MANAGER_BIN";
/// Directory with cert-manager's CRDs (copied from the module's `deploy/crds`).
pub const CRD_DIR_ENV: &str = "RAYGATE_CERT_MANAGER_CRDS";

pub fn build_script() -> PathBuf {
    workspace_root().join("tests/certmanager/build.sh")
}

fn dir_from_env(env: &str, default: &str) -> PathBuf {
    match std::env::var_os(env) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => workspace_root().join(default),
    }
}

/// Paths of the built cert-manager.
#[derive(Debug, Clone)]
pub struct CertManagerBinaries {
    pub controller: PathBuf,
    pub cainjector: PathBuf,
    pub crds: PathBuf,
}

impl CertManagerBinaries {
    /// Finds them in `$RAYGATE_CERT_MANAGER_BIN` / `$RAYGATE_CERT_MANAGER_CRDS`, else under
    /// `<workspace>/target/cert-manager/`. Fails (never skips) when something is missing,
    /// naming the build script.
    pub fn locate() -> Result<Self> {
        let bin = dir_from_env(BIN_DIR_ENV, "target/cert-manager/bin");
        let crds = dir_from_env(CRD_DIR_ENV, "target/cert-manager/crds");
        let found = Self {
            controller: bin.join("cert-manager-controller"),
            cainjector: bin.join("cert-manager-cainjector"),
            crds: crds.clone(),
        };
        let mut missing = Vec::new();
        for path in [&found.controller, &found.cainjector] {
            if !path.is_file() {
                missing.push(path.display().to_string());
            }
        }
        if !crds.join("cert-manager.io_certificates.yaml").is_file() {
            missing.push(crds.join("cert-manager.io_*.yaml").display().to_string());
        }
        if !missing.is_empty() {
            bail!(
                "cert-manager is not built: missing {}. Build it with `{}` (first build takes \
                 minutes; later runs are instant), or set ${BIN_DIR_ENV} and ${CRD_DIR_ENV}.",
                missing.join(", "),
                build_script().display()
            );
        }
        Ok(found)
    }
}

pub struct CertManager {
    controller: Supervised,
    cainjector: Supervised,
    dir: tempfile::TempDir,
}

impl CertManager {
    /// Installs cert-manager's CRDs and starts its controller and cainjector.
    pub fn start(cp: &ControlPlane) -> Result<Self> {
        let binaries = CertManagerBinaries::locate()?;
        install_crds(cp, &binaries.crds)?;
        let dir = tempfile::Builder::new()
            .prefix("raygate-cert-manager-")
            .tempdir()
            .context("creating cert-manager's temp dir")?;
        let kubeconfig = format!("--kubeconfig={}", cp.kubeconfig_path().display());
        let mut controller = Command::new(&binaries.controller);
        controller.arg(&kubeconfig).arg("--v=2");
        let controller = Supervised::spawn(
            "cert-manager controller",
            controller,
            &dir.path().join("controller.log"),
        )?;
        let mut cainjector = Command::new(&binaries.cainjector);
        cainjector.arg(&kubeconfig).arg("--v=2");
        let cainjector = Supervised::spawn(
            "cert-manager cainjector",
            cainjector,
            &dir.path().join("cainjector.log"),
        )?;
        let mut manager = Self {
            controller,
            cainjector,
            dir,
        };
        // A bad flag or kubeconfig ends them at once; say so now rather than at a timeout.
        std::thread::sleep(Duration::from_millis(500));
        if manager.controller.exit_status().is_some() || manager.cainjector.exit_status().is_some()
        {
            bail!("cert-manager exited at start:\n{}", manager.logs());
        }
        Ok(manager)
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Both processes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| {
            let text = std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
            // The tail is what explains a failure.
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(60)..].join("\n")
        };
        format!(
            "--- cert-manager controller (last lines)\n{}\n--- cert-manager cainjector (last lines)\n{}",
            read("controller.log"),
            read("cainjector.log")
        )
    }

    /// Whether both processes still run.
    pub fn running(&mut self) -> bool {
        self.controller.exit_status().is_none() && self.cainjector.exit_status().is_none()
    }
}

impl Drop for CertManager {
    fn drop(&mut self) {
        self.cainjector.terminate(Duration::from_secs(5));
        self.controller.terminate(Duration::from_secs(5));
    }
}

/// cert-manager's CRDs from `dir`, Established.
pub fn install_crds(cp: &ControlPlane, dir: &Path) -> Result<()> {
    crate::crd_dir::install_crd_dir(
        cp,
        "cert-manager",
        dir,
        &[
            "certificates.cert-manager.io",
            "issuers.cert-manager.io",
            "clusterissuers.cert-manager.io",
            "certificaterequests.cert-manager.io",
        ],
    )
}
