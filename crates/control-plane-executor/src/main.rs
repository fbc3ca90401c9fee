//! `control-plane-executor`: not built yet.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("control-plane-executor: not implemented yet in this version of the control plane (see README.md)");
    ExitCode::from(2)
}
