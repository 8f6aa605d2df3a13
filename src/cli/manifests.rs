//! Reading the manifest files named on the command line (`-` is stdin).

use std::io::Read;

use anyhow::{Context, bail};
use serde_json::Value;

/// One document of one input file.
pub struct Document {
    pub file: String,
    pub value: Value,
}

/// Every document of every file, in order. Unreadable or unparsable input is an error that
/// names the file, line and column.
pub fn read_all(files: &[String]) -> anyhow::Result<Vec<Document>> {
    let mut documents = Vec::new();
    for file in files {
        let text = if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading standard input")?;
            text
        } else {
            std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?
        };
        let values = match raygate_api::manifest::parse_documents(&text) {
            Ok(values) => values,
            Err(error) => match (error.line, error.column) {
                (Some(line), Some(column)) => bail!("{file}:{line}:{column}: {error}"),
                _ => bail!("{file}: {error}"),
            },
        };
        documents.extend(values.into_iter().map(|value| Document {
            file: file.clone(),
            value,
        }));
    }
    Ok(documents)
}

/// Whether raygate admits this document (the Ray kinds of `ray.io/v1`).
pub fn is_ray_object(value: &Value) -> bool {
    value.get("apiVersion").and_then(Value::as_str) == Some("ray.io/v1")
        && value
            .get("kind")
            .and_then(Value::as_str)
            .is_some_and(|kind| raygate_api::admission::RAY_KINDS.contains(&kind))
}

/// `Kind/name` as kubectl prints it.
pub fn display_name(value: &Value) -> String {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("?");
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    format!("{kind}/{name}")
}
