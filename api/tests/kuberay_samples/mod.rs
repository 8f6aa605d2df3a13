//! KubeRay's sample manifests (`../shared/kuberay/samples`), the compatibility fixtures.

use std::path::PathBuf;

use serde_json::Value;

/// Every YAML document of every sample file, with the file's name, in file order.
pub fn sample_documents() -> Vec<(String, Value)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/kuberay/samples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("KubeRay samples at {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    let mut documents = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable sample");
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parsed = raygate_api::manifest::parse_documents(&text)
            .unwrap_or_else(|e| panic!("{name}: not YAML: {e}"));
        documents.extend(parsed.into_iter().map(|value| (name.clone(), value)));
    }
    documents
}

/// The RayCluster, RayJob and RayService documents among the samples.
#[allow(dead_code)] // not every test binary that includes this module needs both functions
pub fn ray_objects() -> Vec<(String, Value)> {
    sample_documents()
        .into_iter()
        .filter(|(_, d)| {
            d["apiVersion"] == "ray.io/v1"
                && raygate_api::admission::RAY_KINDS.contains(&d["kind"].as_str().unwrap_or(""))
        })
        .collect()
}
