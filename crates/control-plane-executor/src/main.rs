//! `control-plane-executor`: parses flags and environment, then runs the executor until
//! SIGTERM/Ctrl-C (or, with `--once`, until every runnable approved action has ended).

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "control-plane-executor", version, about = "Claims approved actions and runs them: container restarts, compose redeploys, disk cleanups.")]
struct Cli {
    #[command(flatten)]
    config: control_plane_executor::Config,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    homelab_store::daemon::main("control-plane-executor", |shutdown| control_plane_executor::run(cli.config, shutdown)).await
}
