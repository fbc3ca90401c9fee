//! `hcp up --root DIR --hosts DIR`: every daemon in one process. Wired to the daemon crates as
//! they land.

use std::path::PathBuf;
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    #[arg(long, env = "HOMELAB_ROOT", default_value = "./var/homelab", value_name = "DIR")]
    pub root: PathBuf,
    #[arg(long, env = "HOSTS_DIR", default_value = "./hosts", value_name = "DIR")]
    pub hosts: PathBuf,
}

pub async fn run(_args: UpArgs, _shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    anyhow::bail!("hcp up: the daemons are not wired in yet")
}
