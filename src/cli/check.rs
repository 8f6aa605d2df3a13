//! `raygate check`: the admission pipeline offline, for CI and GitOps. Exit code 0 when every
//! Ray object is admitted, 1 when any is denied, 2 when input can't be read.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use raygate_api::admission::admit;
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
    /// Manifest files (YAML or JSON, several documents each); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<String>,
}

impl CheckArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let documents = read_all(&self.files)?;
        let mut reports = Vec::new();
        let mut denied = false;
        let mut text = String::new();
        for document in documents.iter().filter(|d| is_ray_object(&d.value)) {
            // The API server applies the CRD's schema defaults before it calls webhooks.
            let mut object = document.value.clone();
            apply_crd_defaults(&mut object);
            let verdict = admit(&object, None);
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
            reports.push(json!({
                "file": document.file,
                "kind": object.get("kind"),
                "namespace": object.pointer("/metadata/namespace").unwrap_or(&Value::Null),
                "name": object.pointer("/metadata/name").unwrap_or(&Value::Null),
                "allowed": verdict.allowed(),
                "errors": verdict.errors,
                "warnings": verdict.warnings,
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
