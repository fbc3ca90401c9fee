//! `control-plane-observer`: folds event files into world state.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "control-plane-observer", version, about = "Folds event files into world state (world/services.json, world/nodes.json).")]
struct Cli {
    #[command(flatten)]
    config: control_plane_observer::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    homelab_store::daemon::main("control-plane-observer", |shutdown| control_plane_observer::run(cli.config, shutdown)).await
}
