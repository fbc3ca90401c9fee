//! `control-plane-supervisor`: parse flags and env, set up logging, run, map to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "control-plane-supervisor", version, about = "Diffs world state against desired state, writes pending actions, auto-cancels.")]
struct Cli {
    #[command(flatten)]
    config: control_plane_supervisor::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    homelab_store::daemon::main("control-plane-supervisor", |shutdown| control_plane_supervisor::run(cli.config, shutdown)).await
}
