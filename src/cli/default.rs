//! `raygate default`: prints objects as the cluster would store them, with the CRD's and
//! raygate's defaults filled in. Documents of other kinds pass through unchanged.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use raygate_api::defaults::normalize;
use raygate_api::manifest::to_yaml;
use raygate_api::schema_defaults::apply_crd_defaults;

use super::manifests::{is_ray_object, read_all};

#[derive(Debug, Args)]
pub struct DefaultArgs {
    /// Manifest files (YAML or JSON, several documents each); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<String>,
}

impl DefaultArgs {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let mut out = String::new();
        for document in read_all(&self.files)? {
            let mut object = document.value;
            if is_ray_object(&object) {
                apply_crd_defaults(&mut object);
                for warning in normalize(&mut object) {
                    eprintln!("{}: warning: {warning}", document.file);
                }
            }
            out.push_str("---\n");
            out.push_str(&to_yaml(&object).context("printing YAML")?);
        }
        print!("{out}");
        Ok(ExitCode::SUCCESS)
    }
}
