//! `raygate webhook` running as its own process on 127.0.0.1 with a fresh self-signed CA,
//! registered with the API server by URL (never by Service: the API server would dial a
//! ClusterIP). Stopped when dropped.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::control_plane::{
    ControlPlane, Supervised, free_loopback_ports, http_get_loopback, workspace_root,
};

/// The `raygate` binary: `RAYGATE_BIN`, else the workspace's debug build.
pub fn raygate_binary() -> Result<PathBuf> {
    let path = std::env::var_os("RAYGATE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/debug/raygate"));
    if !path.is_file() {
        bail!(
            "the raygate binary is missing at {} (run `cargo build --bin raygate` or set RAYGATE_BIN)",
            path.display()
        );
    }
    Ok(path)
}

pub struct Webhook {
    process: Supervised,
    port: u16,
    admin_port: u16,
    dir: tempfile::TempDir,
}

/// How to run the webhook beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct WebhookOptions {
    /// Give the webhook the control plane's kubeconfig, so it watches RayPolicies and
    /// Namespaces (the RayPolicy CRD must be installed first).
    pub watch_cluster: bool,
    /// `--policy-dir`.
    pub policy_dir: Option<PathBuf>,
    /// `--log-format=json`.
    pub json_logs: bool,
}

impl Webhook {
    /// Starts the webhook, waits until it is ready, and registers it with the control plane.
    pub fn start(cp: &ControlPlane) -> Result<Self> {
        Self::start_with(cp, &WebhookOptions::default())
    }

    /// [`Webhook::start`] with options.
    pub fn start_with(cp: &ControlPlane, options: &WebhookOptions) -> Result<Self> {
        let webhook = Self::spawn(Some(cp), options)?;
        webhook.register(cp)?;
        Ok(webhook)
    }

    /// Starts the webhook and waits until it is ready, without registering it anywhere: for
    /// tests of the process itself. `cp` gives the kubeconfig `options.watch_cluster` needs.
    pub fn spawn(cp: Option<&ControlPlane>, options: &WebhookOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("raygate-webhook-")
            .tempdir()
            .context("creating the webhook's temp dir")?;
        let certificate = raygate_certs::self_signed(
            &["localhost".to_string()],
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            1,
        )?;
        certificate.write_to(dir.path())?;
        let [port, admin_port] = free_loopback_ports::<2>()?;
        let binary = raygate_binary()?;
        let mut command = Command::new(&binary);
        command
            .arg("webhook")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
            .arg(format!(
                "--tls-cert={}",
                dir.path().join("tls.crt").display()
            ))
            .arg(format!(
                "--tls-key={}",
                dir.path().join("tls.key").display()
            ))
            .env("RUST_LOG", "info");
        if options.watch_cluster {
            let cp = cp.context("watch_cluster needs a control plane")?;
            command.arg(format!("--kubeconfig={}", cp.kubeconfig_path().display()));
        }
        if options.json_logs {
            command.arg("--log-format=json");
        }
        if let Some(policy_dir) = &options.policy_dir {
            command.arg(format!("--policy-dir={}", policy_dir.display()));
        }
        let log = dir.path().join("webhook.log");
        let mut process = Supervised::spawn("raygate webhook", command, &log)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(answer) = http_get_loopback(admin_port, "/readyz")
                && answer.split_whitespace().nth(1) == Some("200")
            {
                break;
            }
            if process.exit_status().is_some() || Instant::now() > deadline {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                bail!("raygate webhook did not become ready:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Webhook {
            process,
            port,
            admin_port,
            dir,
        })
    }

    /// Applies the Mutating/ValidatingWebhookConfiguration from `raygate webhook-config`.
    pub fn register(&self, cp: &ControlPlane) -> Result<()> {
        let output = Command::new(raygate_binary()?)
            .arg("webhook-config")
            .arg(format!("--url=https://127.0.0.1:{}", self.port))
            .arg(format!("--ca-bundle-file={}", self.ca_path().display()))
            .output()
            .context("running raygate webhook-config")?;
        if !output.status.success() {
            bail!(
                "raygate webhook-config failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let yaml = String::from_utf8(output.stdout).context("webhook-config output is UTF-8")?;
        let applied = cp.kubectl(["apply", "-f", "-"], Some(&yaml))?;
        if !applied.success() {
            bail!("registering the webhooks failed:\n{applied}");
        }
        Ok(())
    }

    /// The TLS port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// How the process ended, once it has.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exit_status()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("webhook.log")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin port's `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        http_get_loopback(self.admin_port, "/metrics")
    }

    /// Stops the process (SIGTERM, then SIGKILL); the registration stays, as after a crash.
    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(10));
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop();
    }
}
