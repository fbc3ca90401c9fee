//! `hcp`: the thin binary around [`hcp::run`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = hcp::Cli::parse();
    homelab_store::daemon::init_tracing();
    match hcp::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
