//! A control plane with raygate's webhook and controller, a real Ray head, and a stand-in
//! kubelet: what the RayJob and RayService tests run against. The controller reaches the
//! local Ray head through `--dashboard-url-override`; the kubelet marks every Ray pod Running
//! and Ready with a loopback IP soon after it is created.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client};
use serde_json::Value;

use crate::kubelet::mark_all_ready;
use crate::ray_head::RayHead;
use crate::{ControlPlane, Controller, Webhook, install_ray_crds};

pub struct RayEnv {
    pub cp: ControlPlane,
    pub head: &'static RayHead,
    pub client: Client,
    _webhook: Webhook,
    controller: Controller,
    kubelet: tokio::task::JoinHandle<()>,
}

impl Drop for RayEnv {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

impl RayEnv {
    /// Everything up, with one Ray head shared by the whole test binary.
    pub async fn start(namespace: &str) -> Result<Self> {
        let head = RayHead::shared().context("starting a local Ray head")?;
        let cp = ControlPlane::start_async().await?;
        install_ray_crds(&cp)?;
        let webhook = Webhook::start(&cp)?;
        let controller =
            Controller::start_with(&cp, &["--dashboard-url-override", &head.dashboard_url()])?;
        let client = cp.client().await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let kubelet = tokio::spawn(async move {
            loop {
                let _ = mark_all_ready(&pods, "ray.io/cluster").await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Ok(Self {
            cp,
            head,
            client,
            _webhook: webhook,
            controller,
            kubelet,
        })
    }

    /// The controller's `/metrics` text.
    pub fn controller_metrics(&self) -> Result<String> {
        self.controller.metrics()
    }

    /// `kubectl <args>`, which must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.cp.kubectl(args, stdin)?;
        ensure!(out.success(), "kubectl {args:?} failed:\n{out}");
        Ok(out.stdout)
    }

    pub fn apply(&self, yaml: &str) -> Result<()> {
        self.kubectl_ok(&["apply", "-f", "-"], Some(yaml)).map(drop)
    }

    /// `kubectl get events` about one object: (type, reason, message).
    pub fn events(&self, kind: &str, name: &str) -> Result<Vec<(String, String, String)>> {
        let out = self.kubectl_ok(&["get", "events", "-o", "json"], None)?;
        let list: Value = serde_json::from_str(&out)?;
        Ok(list["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
            .map(|e| {
                let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (text("type"), text("reason"), text("message"))
            })
            .collect())
    }

    /// Panics unless every one of `reasons` appears among the events about the object.
    /// Events are written after the action they report, so they are awaited (15 s at most).
    pub fn expect_event_reasons(&self, kind: &str, name: &str, reasons: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let seen: Vec<String> = self
                .events(kind, name)
                .expect("kubectl get events")
                .into_iter()
                .map(|(_, reason, _)| reason)
                .collect();
            let missing: Vec<&&str> = reasons
                .iter()
                .filter(|wanted| !seen.iter().any(|r| r == **wanted))
                .collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {missing:?} event about {kind} {name} within 15 s; seen {seen:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}
