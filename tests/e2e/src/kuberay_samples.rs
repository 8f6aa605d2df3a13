//! KubeRay's sample manifests (`../shared/kuberay/samples`), the compatibility fixtures.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::control_plane::workspace_root;

pub fn samples_dir() -> PathBuf {
    workspace_root().join("../shared/kuberay/samples")
}

/// One sample file's text.
pub fn sample_text(name: &str) -> Result<String> {
    let path = samples_dir().join(name);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// Every RayCluster, RayJob and RayService document among the samples, with its file name.
pub fn ray_objects() -> Result<Vec<(String, Value)>> {
    let dir = samples_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading KubeRay samples at {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut objects = Vec::new();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {name}"))?;
        let documents = raygate_api::manifest::parse_documents(&text)
            .with_context(|| format!("{name} is not YAML"))?;
        objects.extend(
            documents
                .into_iter()
                .filter(|d| {
                    d["apiVersion"] == "ray.io/v1"
                        && raygate_api::admission::RAY_KINDS
                            .contains(&d["kind"].as_str().unwrap_or(""))
                })
                .map(|d| (name.clone(), d)),
        );
    }
    Ok(objects)
}
