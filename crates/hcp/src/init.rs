//! `hcp init --root DIR`: every folder of the data root, with private state.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

use crate::RootArg;

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    #[arg(skip)]
    pub root: RootArg,
}

pub fn run(args: &InitArgs) -> anyhow::Result<ExitCode> {
    let root = &args.root.root;
    init_root(root)?;
    println!("data root ready at {}", root.display());
    println!("  {} folders; state/ and state/secrets/ are 0700", homelab_store::FOLDERS.len());
    println!("  next: hcp check --hosts DIR, then start the daemons (see docs/deployment.md)");
    Ok(ExitCode::SUCCESS)
}

/// Creates every folder of the data root and tightens the private ones. Idempotent.
pub fn init_root(root: &Path) -> anyhow::Result<()> {
    let root = homelab_store::DataRoot::open(root).with_context(|| format!("cannot create the data root {}", root.display()))?;
    // Only the control plane's user may enter: checkpoints, tokens and secrets live there.
    for dir in root.private_dirs() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("cannot set permissions on {}", dir.display()))?;
    }
    Ok(())
}
