//! raygate: admission-first Ray on Kubernetes. Wiring only; each subcommand lives in `cli/`.

mod cli;

// Admission is allocation-heavy (many small JSON nodes); mimalloc halves its time over glibc's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::Cli::parse().run()
}
