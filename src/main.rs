//! raygate: admission-first Ray on Kubernetes. Wiring only; each subcommand lives in `cli/`.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::Cli::parse().run()
}
