//! `raygate audit`: the Ray objects already in a cluster that break the RayPolicies in force —
//! what an admin checks before switching a rule from Warn to Deny. Exit code 0 when nothing
//! breaks a policy, 1 when something does, 2 when the cluster can't be read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PartialObjectMeta};
use raygate_api::policy::{CompiledPolicy, PolicySet, RayPolicy, compile};
use raygate_api::{RayCluster, RayCronJob, RayJob, RayService};
use serde_json::json;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kubeconfig of the cluster to audit (default: in-cluster, else $KUBECONFIG, else
    /// ~/.kube/config).
    #[arg(long, env = "RAYGATE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Also apply these RayPolicy files or directories (e.g. a policy not yet applied);
    /// repeatable.
    #[arg(long = "policy", value_name = "DIR|FILE")]
    policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    output: Output,
}

impl AuditArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        raygate_webhook::install_crypto_provider();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(self.audit())
    }

    async fn audit(self) -> anyhow::Result<ExitCode> {
        let mut policies: Vec<CompiledPolicy> = if self.policies.is_empty() {
            Vec::new()
        } else {
            raygate_webhook::policy_files::load(&self.policies)
                .context("loading policies")?
                .policies()
                .to_vec()
        };
        let client = super::kube_client::kube_client(self.kubeconfig.as_deref()).await?;
        let params = ListParams::default();
        let stored: Api<DynamicObject> =
            Api::all_with(client.clone(), &ApiResource::erase::<RayPolicy>(&()));
        let mut broken = Vec::new();
        for object in stored.list(&params).await.context("listing RayPolicies")? {
            let name = object.metadata.name.clone().unwrap_or_default();
            match compile(&serde_json::to_value(&object)?) {
                Ok(policy) => policies.push(policy),
                Err(errors) => broken.push((name, errors)),
            }
        }
        let policies = PolicySet::new(policies);
        let namespaces: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
        let labels: BTreeMap<String, BTreeMap<String, String>> = namespaces
            .list_metadata(&params)
            .await
            .context("listing Namespaces")?
            .into_iter()
            .filter_map(|n| Some((n.metadata.name?, n.metadata.labels.unwrap_or_default())))
            .collect();

        let mut text = String::new();
        for (name, errors) in &broken {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            text.push_str(&format!(
                "RayPolicy/{name} is invalid and not enforced: {}\n",
                errors.join("; ")
            ));
        }
        let no_labels = BTreeMap::new();
        let mut reports = Vec::new();
        let mut violating = 0;
        let kinds = [
            ApiResource::erase::<RayCluster>(&()),
            ApiResource::erase::<RayJob>(&()),
            ApiResource::erase::<RayService>(&()),
            ApiResource::erase::<RayCronJob>(&()),
        ];
        for resource in &kinds {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
            let list = api
                .list(&params)
                .await
                .with_context(|| format!("listing {}s", resource.kind))?;
            for object in list {
                let mut value = serde_json::to_value(&object)?;
                // Listed items carry no apiVersion/kind of their own.
                value["apiVersion"] = json!(resource.api_version);
                value["kind"] = json!(resource.kind);
                let namespace = object.metadata.namespace.clone().unwrap_or_default();
                let name = object.metadata.name.clone().unwrap_or_default();
                let ns_labels = labels.get(&namespace).unwrap_or(&no_labels);
                let evaluation = policies.evaluate(&value, &namespace, ns_labels);
                if evaluation.violations.is_empty() {
                    continue;
                }
                violating += 1;
                text.push_str(&format!("{namespace}/{}/{name}:\n", resource.kind));
                for violation in &evaluation.violations {
                    text.push_str(&format!("  {violation}\n"));
                }
                reports.push(json!({
                    "kind": resource.kind,
                    "namespace": namespace,
                    "name": name,
                    "violations": evaluation.violations,
                }));
            }
        }
        if violating == 0 {
            text.push_str(&format!(
                "no Ray object breaks the {} RayPolicies in force\n",
                policies.len()
            ));
        }
        match self.output {
            Output::Text => print!("{text}"),
            Output::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        }
        Ok(if violating > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}
