//! `raygate webhook --cert-mode self-managed` as its own process on 127.0.0.1: it issues its
//! certificates into a Secret and patches the `caBundle` itself, so the webhooks are
//! registered without one. Stopped when dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::control_plane::{ControlPlane, Supervised, free_loopback_ports, http_get_loopback};
use crate::webhook::raygate_binary;

/// raygate's namespace in these tests.
pub const NAMESPACE: &str = "raygate-system";
pub const SECRET_NAME: &str = "raygate-webhook-tls";

/// Flags beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct SelfManagedOptions {
    /// `--serving-cert-lifetime`, e.g. `30s`.
    pub serving_cert_lifetime: Option<String>,
    /// `--ca-lifetime`, e.g. `90s`.
    pub ca_lifetime: Option<String>,
    /// Kubeconfig to run with (e.g. one impersonating raygate's ServiceAccount); default:
    /// the control plane's admin kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// `--cert-mode`; default `self-managed`.
    pub cert_mode: Option<String>,
}

pub struct SelfManagedWebhook {
    process: Supervised,
    port: u16,
    admin_port: u16,
    dir: tempfile::TempDir,
}

impl SelfManagedWebhook {
    /// Starts the process without waiting for it (see [`SelfManagedWebhook::wait_ready`]), so
    /// several replicas can race for the Secret.
    pub fn spawn(cp: &ControlPlane, options: &SelfManagedOptions) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("raygate-self-managed-")
            .tempdir()
            .context("creating the webhook's temp dir")?;
        let [port, admin_port] = free_loopback_ports::<2>()?;
        let mut command = Command::new(raygate_binary()?);
        command
            .arg("webhook")
            .arg(format!(
                "--cert-mode={}",
                options.cert_mode.as_deref().unwrap_or("self-managed")
            ))
            .arg(format!(
                "--kubeconfig={}",
                options
                    .kubeconfig
                    .as_deref()
                    .unwrap_or(cp.kubeconfig_path())
                    .display()
            ))
            .arg(format!("--namespace={NAMESPACE}"))
            .arg(format!("--secret-name={SECRET_NAME}"))
            // The API server calls the webhook by URL on loopback (the network rule).
            .arg("--ip=127.0.0.1")
            .arg(format!("--listen=127.0.0.1:{port}"))
            .arg(format!("--admin-listen=127.0.0.1:{admin_port}"))
            .arg(format!(
                "--cert-dir={}",
                dir.path().join("serving").display()
            ))
            .env("RUST_LOG", "info");
        if let Some(lifetime) = &options.serving_cert_lifetime {
            command.arg(format!("--serving-cert-lifetime={lifetime}"));
        }
        if let Some(lifetime) = &options.ca_lifetime {
            command.arg(format!("--ca-lifetime={lifetime}"));
        }
        let log = dir.path().join("webhook.log");
        let process = Supervised::spawn("raygate webhook (self-managed)", command, &log)?;
        Ok(Self {
            process,
            port,
            admin_port,
            dir,
        })
    }

    /// Waits for `/readyz`.
    pub fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(answer) = http_get_loopback(self.admin_port, "/readyz")
                && answer.split_whitespace().nth(1) == Some("200")
            {
                return Ok(());
            }
            if self.process.exit_status().is_some() || Instant::now() > deadline {
                bail!(
                    "raygate webhook (self-managed) did not become ready:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts one replica and waits until it is ready.
    pub fn start(cp: &ControlPlane, options: &SelfManagedOptions) -> Result<Self> {
        let mut webhook = Self::spawn(cp, options)?;
        webhook.wait_ready()?;
        Ok(webhook)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("webhook.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The admin port's `/metrics` text.
    pub fn metrics(&self) -> Result<String> {
        http_get_loopback(self.admin_port, "/metrics")
    }

    pub fn stop(&mut self) {
        self.process.terminate(Duration::from_secs(10));
    }
}

impl Drop for SelfManagedWebhook {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates raygate's namespace (the Secret lives there).
pub fn create_namespace(cp: &ControlPlane) -> Result<()> {
    let out = cp.kubectl(["create", "namespace", NAMESPACE], None)?;
    if !out.success() {
        bail!("creating namespace {NAMESPACE}:\n{out}");
    }
    Ok(())
}

/// Applies `raygate webhook-config --url https://127.0.0.1:<port>` with no `caBundle`: the
/// self-managed webhook fills it in.
pub fn register_without_ca_bundle(cp: &ControlPlane, port: u16) -> Result<()> {
    let output = Command::new(raygate_binary()?)
        .arg("webhook-config")
        .arg(format!("--url=https://127.0.0.1:{port}"))
        .output()
        .context("running raygate webhook-config")?;
    if !output.status.success() {
        bail!(
            "raygate webhook-config failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let yaml = String::from_utf8(output.stdout).context("webhook-config output is UTF-8")?;
    if yaml.contains("caBundle") {
        bail!("webhook-config without --ca-bundle-file printed a caBundle:\n{yaml}");
    }
    let applied = cp.kubectl(["apply", "-f", "-"], Some(&yaml))?;
    if !applied.success() {
        bail!("registering the webhooks failed:\n{applied}");
    }
    Ok(())
}

/// The PEM `caBundle` of raygate's ValidatingWebhookConfiguration as the API server holds it
/// (`None` while unset).
pub fn validating_ca_bundle(cp: &ControlPlane) -> Result<Option<String>> {
    let out = cp
        .kubectl(
            [
                "get",
                "validatingwebhookconfiguration",
                "raygate",
                "-o",
                "jsonpath={.webhooks[0].clientConfig.caBundle}",
            ],
            None,
        )?
        .into_stdout()?;
    let b64 = out.trim();
    if b64.is_empty() {
        return Ok(None);
    }
    let bytes: k8s_openapi::ByteString =
        serde_json::from_value(serde_json::Value::String(b64.to_owned()))
            .context("caBundle is base64")?;
    Ok(Some(
        String::from_utf8(bytes.0).context("caBundle is PEM text")?,
    ))
}

/// A TLS client for 127.0.0.1 that trusts only `trusted_pem` (the CA in a webhook's
/// caBundle) and checks the IP SAN, as the API server does.
pub fn loopback_tls_client(trusted_pem: &str) -> Result<rustls::ClientConnection> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(trusted_pem.as_bytes()) {
        roots.add(cert.context("trusted PEM")?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
    Ok(rustls::ClientConnection::new(Arc::new(config), name)?)
}

/// Connects to `127.0.0.1:<port>` as the API server does — verifying the served certificate
/// against `trusted_pem` for the IP SAN 127.0.0.1 — and returns the served leaf (DER).
pub fn served_certificate(port: u16, trusted_pem: &str) -> Result<Vec<u8>> {
    let mut connection = loopback_tls_client(trusted_pem)?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut tls = rustls::Stream::new(&mut connection, &mut tcp);
    // A request completes the handshake; the answer itself doesn't matter.
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .context("TLS handshake with the webhook")?;
    let mut sink = [0u8; 256];
    let _ = tls.read(&mut sink);
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .context("the webhook presented no certificate")?;
    Ok(leaf.as_ref().to_vec())
}
