//! Starts a local etcd + kube-apiserver (loopback only) and keeps it up until Ctrl-C or SIGTERM.
//!
//! Build the binaries first with `tests/controlplane/build.sh`, then:
//! `cargo run -p raygate-e2e --bin raygate-controlplane`

use anyhow::{Context, Result};
use raygate_e2e::ControlPlane;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<()> {
    let started = std::time::Instant::now();
    let cp = ControlPlane::start_async().await?;
    println!(
        "control plane ready in {:.1}s at {}",
        started.elapsed().as_secs_f64(),
        cp.server_url()
    );
    println!("etcd: {}", cp.etcd_url());
    println!("kubeconfig: {}", cp.kubeconfig_path().display());
    println!(
        "logs: {} {}",
        cp.etcd_log_path().display(),
        cp.apiserver_log_path().display()
    );
    println!("export KUBECONFIG={}", cp.kubeconfig_path().display());
    println!("kubectl: {}", cp.binaries().kubectl.display());
    println!("press Ctrl-C to stop");

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
        _ = term.recv() => {}
    }
    println!("stopping");
    drop(cp);
    Ok(())
}
