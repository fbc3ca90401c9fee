//! `hcp`: the thin binary around [`hcp::run`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = hcp::Cli::parse();
    // Daemons log what they do; a one-shot command says it on stdout and logs only warnings.
    let daemon = matches!(cli.command, hcp::Command::Up(_) | hcp::Command::Mirror(_));
    homelab_store::daemon::init_tracing_at(if daemon { "info" } else { "warn" });
    match hcp::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("hcp: {e:#}");
            ExitCode::FAILURE
        }
    }
}
