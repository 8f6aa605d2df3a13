//! `raygate check`: the admission pipeline offline, for CI and GitOps. Exit code 0 when every
//! Ray object is admitted, 1 when any is denied, 2 when input (or a policy) can't be read.
//!
//! With `--policy`, RayPolicies apply as in the cluster. A policy's namespaceSelector sees the
//! labels of the Namespace manifests among the inputs (and, as in the cluster, every namespace's
//! `kubernetes.io/metadata.name`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use raygate_api::admission::admit_with_policies;
use raygate_api::policy::PolicySet;
use raygate_api::schema_defaults::apply_crd_defaults;
use serde_json::{Value, json};

use super::manifests::{display_name, is_ray_object, read_all};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Output format.
    #[arg(
        long,
        short,
        value_enum,
        default_value = "text",
        env = "RAYGATE_CHECK_OUTPUT"
    )]
    output: Output,
    /// RayPolicy file, or directory of them (`*.yaml`, `*.yml`, `*.json`); repeatable.
    #[arg(long = "policy", value_name = "DIR|FILE")]
    policies: Vec<PathBuf>,
    /// Manifest files (YAML or JSON, several documents each); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<String>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let policies = if self.policies.is_empty() {
            PolicySet::default()
        } else {
            raygate_webhook::policy_files::load(&self.policies).context("loading policies")?
        };
        let documents = read_all(&self.files)?;
        let namespaces = namespace_labels(documents.iter().map(|d| &d.value));
        let no_labels = BTreeMap::new();
        let mut reports = Vec::new();
        let mut denied = false;
        let mut text = String::new();
        for document in documents.iter().filter(|d| is_ray_object(&d.value)) {
            // The API server applies the CRD's schema defaults before it calls webhooks.
            let mut object = document.value.clone();
            apply_crd_defaults(&mut object);
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned();
            let labels = namespaces.get(&namespace).unwrap_or(&no_labels);
            let verdict = admit_with_policies(&object, None, &policies, &namespace, labels);
            let name = display_name(&object);
            if verdict.allowed() {
                text.push_str(&format!("{}: {name} admitted\n", document.file));
            } else {
                denied = true;
                text.push_str(&format!("{}: {name} denied:\n", document.file));
                for error in &verdict.errors {
                    text.push_str(&format!("  {}: {}\n", error.path, error.message));
                }
            }
            for warning in &verdict.warnings {
                text.push_str(&format!("{}: {name} warning: {warning}\n", document.file));
            }
            for (key, value) in verdict.audit_annotations() {
                text.push_str(&format!(
                    "{}: {name} audit: {key}: {value}\n",
                    document.file
                ));
            }
            reports.push(json!({
                "file": document.file,
                "kind": object.get("kind"),
                "namespace": object.pointer("/metadata/namespace").unwrap_or(&Value::Null),
                "name": object.pointer("/metadata/name").unwrap_or(&Value::Null),
                "allowed": verdict.allowed(),
                "errors": verdict.errors,
                "warnings": verdict.warnings,
                "violations": verdict.violations,
                "auditAnnotations": verdict.audit_annotations(),
                "patch": verdict.patch,
            }));
        }
        match self.output {
            Output::Text => print!("{text}"),
            Output::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        }
        Ok(if denied {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    }
}

/// Labels of the Namespace manifests among the inputs, by namespace name.
fn namespace_labels<'a>(
    documents: impl Iterator<Item = &'a Value>,
) -> HashMap<String, BTreeMap<String, String>> {
    documents
        .filter(|d| {
            d.get("kind").and_then(Value::as_str) == Some("Namespace")
                && d.get("apiVersion").and_then(Value::as_str) == Some("v1")
        })
        .filter_map(|d| {
            let name = d.pointer("/metadata/name").and_then(Value::as_str)?;
            let labels = d
                .pointer("/metadata/labels")
                .and_then(Value::as_object)
                .map(|labels| {
                    labels
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default();
            Some((name.to_owned(), labels))
        })
        .collect()
}
