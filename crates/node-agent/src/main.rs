//! `node-agent`: parses flags and environment, sets up logging, runs the agent until SIGTERM.

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "node-agent", version, about = "Runs a node's health checks and reports them as events to the homelab control plane.")]
struct Cli {
    #[command(flatten)]
    config: node_agent::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    homelab_store::daemon::main("node-agent", |shutdown| node_agent::run(cli.config, shutdown)).await
}
