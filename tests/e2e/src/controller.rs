//! `raygate controller` running as its own process against the local control plane, its
//! admin port on 127.0.0.1. Stopped when dropped; [`Controller::kill`] plays a crash.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::control_plane::{ControlPlane, Supervised, free_loopback_ports, http_get_loopback};
use crate::webhook::raygate_binary;

pub struct Controller {
    process: Supervised,
    admin_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Controller {
    /// Starts a controller watching every namespace and waits until `/readyz` answers 200.
    pub fn start(cp: &ControlPlane) -> Result<Self> {
        Self::start_with(cp, &[])
    }

    /// Same, with extra flags (`--leader-elect`, `--namespace=...`).
    pub fn start_with(cp: &ControlPlane, extra: &[&str]) -> Result<Self> {
        Self::start_as(cp.kubeconfig_path(), extra)
    }

    /// Same, with another kubeconfig (e.g. one impersonating raygate's ServiceAccount).
    pub fn start_as(kubeconfig: &Path, extra: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("raygate-controller-")
            .tempdir()
            .context("creating the controller's temp dir")?;
        let [admin_port] = free_loopback_ports::<1>()?;
        let mut command = Command::new(raygate_binary()?);
        command
            .arg("controller")
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
            .args(extra)
            .env("RUST_LOG", "info,raygate_controller=debug");
        let log = dir.path().join("controller.log");
        let mut process = Supervised::spawn("raygate controller", command, &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = http_get_loopback(admin_port, "/readyz")
                && answer.split_whitespace().nth(1) == Some("200")
            {
                break;
            }
            if process.exit_status().is_some() || Instant::now() > deadline {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("raygate controller did not become ready:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Controller {
            process,
            admin_port,
            log,
            _dir: dir,
        })
    }

    /// The admin port's `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        http_get_loopback(self.admin_port, "/metrics")
    }

    /// Whether this replica reports holding the leader lease.
    pub fn is_leader(&self) -> bool {
        self.metrics()
            .map(|m| {
                m.lines()
                    .any(|l| l.trim() == "raygate_controller_is_leader 1")
            })
            .unwrap_or(false)
    }

    /// The process id, for reading its RSS and CPU time from /proc.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn exited(&mut self) -> bool {
        self.process.exit_status().is_some()
    }

    /// SIGKILL, like a node failure: no cleanup, no lease release.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(10));
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- raygate controller log\n{}", self.log());
        }
    }
}
