//! RayPolicy YAML files: `raygate webhook --policy-dir` and `raygate check --policy` read them
//! the same way, so a GitOps pipeline's verdict is the cluster's.

use std::path::{Path, PathBuf};

use raygate_api::manifest::parse_documents;
use raygate_api::policy::{PolicyLoadError, PolicySet};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum PolicyFilesError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{}", list(.0))]
    Invalid(Vec<PolicyLoadError>),
}

fn list(errors: &[PolicyLoadError]) -> String {
    let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// The RayPolicy documents of the given files and directories (a directory's `*.yaml`,
/// `*.yml` and `*.json` files, sorted by name; other kinds of documents are skipped). One
/// invalid policy fails the whole load, so a broken file is never half-applied.
pub fn load(paths: &[PathBuf]) -> Result<PolicySet, PolicyFilesError> {
    let mut documents: Vec<(String, Value)> = Vec::new();
    for path in paths {
        for file in files(path)? {
            let text = std::fs::read_to_string(&file).map_err(|source| PolicyFilesError::Read {
                path: file.clone(),
                source,
            })?;
            let values = parse_documents(&text).map_err(|error| PolicyFilesError::Parse {
                path: file.clone(),
                message: match (error.line, error.column) {
                    (Some(line), Some(column)) => format!("{line}:{column}: {error}"),
                    _ => error.to_string(),
                },
            })?;
            let name = file.display().to_string();
            documents.extend(values.into_iter().map(|v| (name.clone(), v)));
        }
    }
    PolicySet::from_documents(
        documents
            .iter()
            .map(|(source, value)| (source.as_str(), value)),
    )
    .map_err(PolicyFilesError::Invalid)
}

fn files(path: &Path) -> Result<Vec<PathBuf>, PolicyFilesError> {
    let metadata = std::fs::metadata(path).map_err(|source| PolicyFilesError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let entries = std::fs::read_dir(path).map_err(|source| PolicyFilesError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PolicyFilesError::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = entry.path();
        let manifest = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
        if manifest && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    Ok(files)
}
