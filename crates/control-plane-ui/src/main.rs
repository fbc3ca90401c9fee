//! `control-plane-ui`: the operator UI and HTTP API. Thin: flags, logging, run.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "control-plane-ui", about = "Operator UI and HTTP API: approvals, /summary, event ingest, metrics")]
struct Cli {
    #[command(flatten)]
    config: control_plane_ui::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    homelab_store::daemon::main("control-plane-ui", |shutdown| control_plane_ui::run(cli.config, shutdown)).await
}
