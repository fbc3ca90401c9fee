//! `control-plane-supervisor`: not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("control-plane-supervisor: not implemented yet in this version of the control plane (see README.md)");
    ExitCode::from(2)
}
