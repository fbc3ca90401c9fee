//! `control-plane-executor`: parses flags and environment, then runs the executor until
//! SIGTERM/Ctrl-C (or, with `--once`, until every runnable approved action has ended).

homelab_store::daemon_main!(
    "control-plane-executor",
    "Claims approved actions and runs them: container restarts, compose redeploys, disk cleanups.",
    control_plane_executor::Config,
    control_plane_executor::run
);
