//! `cargo run -p control-plane-supervisor --example chaos`: runs the chaos scenarios of
//! `homelab_core::chaos` (scripted fleets on a simulated clock through the real plan) and prints
//! the table: scenario → actions proposed → notifications → withdrawn → executed → expected →
//! pass. Exits 1 when a scenario fails. `scripts/chaos.sh` runs it.

fn main() -> std::process::ExitCode {
    let (table, all) = homelab_core::chaos::table();
    print!("{table}");
    if all { std::process::ExitCode::SUCCESS } else { std::process::ExitCode::FAILURE }
}
