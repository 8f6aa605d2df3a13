//! The `raygate` command line: one module per subcommand.

mod crd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Admission-first Ray on Kubernetes, serving KubeRay's ray.io/v1 API.
#[derive(Debug, Parser)]
#[command(name = "raygate", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions for RayCluster, RayJob and RayService.
    Crd(crd::CrdArgs),
}

impl Cli {
    pub fn run(self) -> ExitCode {
        let result = match self.command {
            Command::Crd(args) => args.run(),
        };
        match result {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(2)
            }
        }
    }
}
