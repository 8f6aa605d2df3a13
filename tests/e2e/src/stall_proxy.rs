//! A loopback TCP relay in front of the API server that can be stalled: bytes stop moving both
//! ways while every connection stays open, as when an API server hangs or a network partition
//! cuts off one client only. The TLS session runs through it untouched (the API server's
//! certificate names 127.0.0.1, whatever the port).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ControlPlane;

pub struct StallProxy {
    port: u16,
    stalled: watch::Sender<bool>,
    accept: JoinHandle<()>,
}

impl StallProxy {
    /// Relays 127.0.0.1:<new port> to the control plane's API server.
    pub async fn start(cp: &ControlPlane) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the relay")?;
        let port = listener.local_addr()?.port();
        let target = cp.apiserver_port();
        let (stalled, _) = watch::channel(false);
        let gate = stalled.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(pump(client_read, server_write, gate.subscribe()));
                tokio::spawn(pump(server_read, client_write, gate.subscribe()));
            }
        });
        Ok(Self {
            port,
            stalled,
            accept,
        })
    }

    /// From now on no byte moves through the relay, on old or new connections.
    pub fn stall(&self) {
        self.stalled.send_replace(true);
    }

    /// A copy of the control plane's kubeconfig whose server is this relay, written in `dir`.
    pub fn kubeconfig(&self, cp: &ControlPlane, dir: &Path) -> Result<PathBuf> {
        let text = std::fs::read_to_string(cp.kubeconfig_path()).context("reading kubeconfig")?;
        let relayed = text.replace(
            &cp.server_url(),
            &format!("https://127.0.0.1:{}", self.port),
        );
        anyhow::ensure!(
            relayed != text,
            "the kubeconfig does not name {}",
            cp.server_url()
        );
        let path = dir.join("relayed-kubeconfig");
        std::fs::write(&path, relayed).context("writing the relayed kubeconfig")?;
        Ok(path)
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to` until either side closes, holding each chunk while stalled.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
