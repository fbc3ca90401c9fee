//! `hcp`: the operator's command line. Every subcommand works on the data root and hosts/
//! directly (through `homelab-store`), so it needs no running daemon, except `mirror`, which
//! polls another control plane's `/summary`, and `up`, which runs the daemons itself.

pub mod actions;
pub mod alertmanager;
pub mod audit;
pub mod check;
pub mod check_now;
pub mod deploys;
pub mod health;
pub mod init;
pub mod mirror;
pub mod schema;
pub mod silence;
pub mod table;
pub mod up;
pub mod users;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The default data root, as in the deployment. One rule for every subcommand: `--root DIR`,
/// else `HOMELAB_ROOT`, else this.
pub use homelab_store::daemon::DEFAULT_ROOT;

/// The daemons' `--root`, global here: it goes anywhere on the line and names the subcommands it serves.
fn root_help(arg: clap::Arg) -> clap::Arg {
    arg.global(true)
        .value_name("DIR")
        .help(format!("The data root (init, actions, drift, health, up, mirror, alertmanager): --root, else $HOMELAB_ROOT, else {DEFAULT_ROOT}"))
}

#[derive(Debug, Parser)]
#[command(
    name = "hcp",
    version,
    about = "The homelab control plane's command line",
    propagate_version = true,
    after_help = "Global flags (--root, -h) go anywhere on the line: `hcp actions list --root DIR` works.\nThe data root is --root DIR, else $HOMELAB_ROOT, else /opt/homelab (the deployment's).",
    mut_arg("root", root_help)
)]
pub struct Cli {
    /// The data root (init, actions, drift, health, up, mirror, alertmanager): --root, else
    /// $HOMELAB_ROOT, else /opt/homelab; global (see `root_help`).
    #[command(flatten)]
    pub common: homelab_store::daemon::CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The data root a subcommand works on: the global `--root` (see [`Cli::root`]), filled in
/// by [`run`].
#[derive(Debug, Clone, Default)]
pub struct RootArg {
    pub root: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data root with every folder and safe permissions.
    Init(init::InitArgs),
    /// Validate every hosts/<node>/services.yaml: all errors with file:line:column, exit 1 on any.
    Check(check::CheckArgs),
    /// List, show, approve, reject and retry actions.
    Actions(actions::ActionsArgs),
    /// What is wrong and what happens next, as the supervisor reported it (world/drift.json).
    Drift(actions::DriftArgs),
    /// Mirror another control plane's world state by polling its /summary.
    Mirror(mirror::MirrorArgs),
    /// Exit 0 when a daemon's heartbeat is fresh (or a URL answers 2xx), else 1: for healthchecks.
    Health(health::HealthArgs),
    /// Run observer, supervisor, executor, UI and a local node agent in one process.
    Up(up::UpArgs),
    /// Receive Alertmanager webhooks and write them into the data root as events.
    Alertmanager(alertmanager::AlertmanagerArgs),
    /// Print the JSON Schemas of the data root's files (or write them with --out DIR).
    Schema(schema::SchemaArgs),
    /// Local users of the UI: add, passwd, set, remove, logout, list (state/secrets/users.json).
    User(users::UserArgs),
    /// Per-user API tokens: create (shown once), revoke, list.
    Token(users::TokenArgs),
    /// Print the audit log (logins, decisions, user and token changes).
    Audit(audit::AuditArgs),
    /// Mute a node, a service or an action type for a while: add, list, expire.
    Silence(silence::SilenceArgs),
    /// Ask a node's agent to run a service's checks now (the result shows as fresh events).
    CheckNow(check_now::CheckNowArgs),
    /// A service's deploy history and held generations (what it can be rolled back to).
    Deploys(deploys::DeploysArgs),
    /// Propose rolling a service back to a held generation (a person approves it).
    Rollback(deploys::RollbackArgs),
}

/// Runs a parsed command line. Errors are for people: the caller prints them and exits 1.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = RootArg { root: cli.common.root };
    match cli.command {
        Command::Init(_) => init::run(&init::InitArgs { root }),
        Command::Check(a) => check::run(&a),
        Command::Actions(a) => actions::run(&actions::ActionsArgs { root, ..a }),
        Command::Drift(a) => actions::run_drift(&actions::DriftArgs { root, ..a }),
        Command::Mirror(a) => mirror::run(mirror::MirrorArgs { root: root.root, ..a }, homelab_store::daemon::shutdown_token()).await,
        Command::Health(a) => health::run(&health::HealthArgs { root, ..a }).await,
        Command::Up(a) => up::run(up::UpArgs { root: root.root, ..a }, homelab_store::daemon::shutdown_token()).await,
        Command::Alertmanager(a) => alertmanager::run(alertmanager::AlertmanagerArgs { root, ..a }, homelab_store::daemon::shutdown_token()).await,
        Command::Schema(a) => schema::run(&a),
        Command::User(a) => users::run_user(&users::UserArgs { root, ..a }),
        Command::Token(a) => users::run_token(&users::TokenArgs { root, ..a }),
        Command::Audit(a) => audit::run(&audit::AuditArgs { root, ..a }),
        Command::Silence(a) => silence::run(&silence::SilenceArgs { root, ..a }),
        Command::CheckNow(a) => check_now::run(&check_now::CheckNowArgs { root, ..a }),
        Command::Deploys(a) => deploys::run_deploys(&deploys::DeploysArgs { root, ..a }),
        Command::Rollback(a) => deploys::run_rollback(&deploys::RollbackArgs { root, ..a }),
    }
}
