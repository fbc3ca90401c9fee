//! `hcp up --root DIR --hosts DIR`: the observer, supervisor, executor, UI and a local node
//! agent in one process, on one tokio runtime with one shutdown token: a laptop, a demo, a first
//! look. Each daemon reads the same environment variables as its own binary (`LISTEN`,
//! `NODE_NAME`, `LISTEN_PORT`, `EXECUTOR_DRY_RUN`, …): its configuration is parsed by its own
//! `Config` from the flags given here plus the environment.
//!
//! A daemon that stops stops the others, so none may stop for a failing write: on a full or
//! read-only data root each one keeps running, retries with backoff and reports `write_errors`
//! and `last_write_error` in its heartbeat (`homelab_store::WriteErrors`); only a startup or
//! configuration error (a port in use, a missing hosts folder) ends `hcp up`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{FromArgMatches, Parser};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, clap::Args)]
#[command(after_help = environment_help())]
pub struct UpArgs {
    /// The data root: the global --root (created when missing).
    #[arg(skip)]
    pub root: PathBuf,
    /// The desired state: `<DIR>/<node>/services.yaml`.
    #[arg(long, env = "HOSTS_DIR", default_value = "./hosts", value_name = "DIR")]
    pub hosts: PathBuf,
    /// Run without the local node agent (when a real agent already reports for this host).
    #[arg(long)]
    pub no_agent: bool,
}

/// The daemons `hcp up` runs, each with the clap command of its own `Config`.
fn daemon_commands() -> Vec<(&'static str, clap::Command)> {
    fn command<C: clap::Args>(name: &'static str) -> clap::Command {
        C::augment_args(clap::Command::new(name))
    }
    vec![
        ("observer", command::<control_plane_observer::Config>("control-plane-observer")),
        ("supervisor", command::<control_plane_supervisor::Config>("control-plane-supervisor")),
        ("executor", command::<control_plane_executor::Config>("control-plane-executor")),
        ("ui", command::<control_plane_ui::Config>("control-plane-ui")),
        ("node-agent", command::<node_agent::Config>("node-agent")),
    ]
}

/// What `hcp up` itself sets when the variable is unset (loopback: a first look is not
/// served to the LAN until the operator says so).
const UP_DEFAULTS: &[(&str, &str)] = &[("LISTEN", "127.0.0.1:18180"), ("LISTEN_ADDR", "127.0.0.1"), ("NODE_NAME", "this host's name")];

/// Variables read outside clap (Telegram's own configuration, logging).
const OTHER_ENV: &[(&str, &str)] = &[
    ("TELEGRAM_BOT_TOKEN", "Telegram approvals: the bot token (with TELEGRAM_CHAT_IDS; see docs/telegram.md)"),
    ("TELEGRAM_CHAT_IDS", "Telegram approvals: chats to send to and accept presses from (comma-separated)"),
    ("TELEGRAM_USER_IDS", "Telegram approvals: only these users' presses count"),
    (
        "TELEGRAM_MODE",
        "polling (default) or webhook; also TELEGRAM_WEBHOOK_SECRET, TELEGRAM_WEBHOOK_URL, TELEGRAM_API_BASE, TELEGRAM_POLL_TIMEOUT, TELEGRAM_CALL_TIMEOUT, TELEGRAM_RESCAN",
    ),
    ("RUST_LOG", "log filter (default info; e.g. debug, control_plane_executor=debug)"),
    ("LOG_FORMAT", "text (default; coloured only on a terminal, NO_COLOR turns colour off) or json (one object per line)"),
];

/// Every environment variable the daemons under `hcp up` read, derived from their clap
/// `env` attributes (first help line, default), plus Telegram and logging.
pub fn environment_help() -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut rows: Vec<(String, String)> = Vec::new();
    for (daemon, cmd) in daemon_commands() {
        for arg in cmd.get_arguments() {
            let Some(var) = arg.get_env().and_then(|v| v.to_str()) else { continue };
            if !seen.insert(var.to_owned()) {
                continue;
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let help = help.lines().next().unwrap_or("").trim_end_matches('.').to_owned();
            let default = match UP_DEFAULTS.iter().find(|(v, _)| *v == var) {
                Some((_, d)) => format!(" [hcp up: {d}]"),
                None if matches!(var, "HOMELAB_ROOT" | "HOSTS_DIR") => String::new(),
                None => match arg.get_default_values() {
                    vals if vals.iter().all(|v| v.is_empty()) => String::new(),
                    vals => format!(" [default: {}]", vals.iter().map(|v| v.to_string_lossy()).collect::<Vec<_>>().join(",")),
                },
            };
            rows.push((var.to_owned(), format!("{daemon}: {help}{default}")));
        }
    }
    rows.extend(OTHER_ENV.iter().map(|(v, h)| (v.to_string(), h.to_string())));
    let width = rows.iter().map(|(v, _)| v.len()).max().unwrap_or(0);
    let mut out =
        String::from("Environment (each daemon reads its variables as its own binary does; flags given here win; docs/configuration.md has them all):\n");
    for (var, help) in rows {
        out.push_str(&format!("  {var:<width$}  {help}\n"));
    }
    out.push_str("\nListeners: the UI on LISTEN and the agent's readiness endpoint on LISTEN_ADDR:LISTEN_PORT bind to\nloopback under hcp up unless those are set (LISTEN=0.0.0.0:18180 serves the LAN).");
    out
}

/// Parses one daemon's `Config` as its binary would: from `args` and the environment.
fn config<C: clap::Args + FromArgMatches>(name: &str, args: &[String]) -> anyhow::Result<C> {
    #[derive(Parser)]
    struct Wrap<C: clap::Args> {
        #[command(flatten)]
        config: C,
    }
    let argv = std::iter::once(name.to_owned()).chain(args.iter().cloned());
    Wrap::<C>::try_parse_from(argv).map(|w| w.config).map_err(|e| anyhow::anyhow!("{name}: {}", e.to_string().trim()))
}

/// This host's name as a node name: `NODE_NAME`, else the kernel's host name, lowercased and
/// cut to the characters node names allow.
pub fn local_node_name() -> String {
    if let Ok(n) = std::env::var("NODE_NAME") {
        return n;
    }
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let short = raw.trim().split('.').next().unwrap_or("").to_lowercase();
    let name: String = short.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).take(63).collect();
    let name = name.trim_start_matches(['-', '_']).to_owned();
    if name.is_empty() { "localhost".into() } else { name }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<ExitCode> {
    crate::init::init_root(&args.root).map_err(|e| {
        e.context(format!(
            "hcp up keeps its data in --root (else $HOMELAB_ROOT, else {}); for a first look on this machine pass --root ./var/homelab",
            crate::DEFAULT_ROOT
        ))
    })?;
    let root = std::path::absolute(&args.root).context("cannot resolve --root")?;
    let data_root = homelab_store::DataRoot::at(&root);
    let hosts = std::path::absolute(&args.hosts).context("cannot resolve --hosts")?;
    let report = crate::check::check_hosts(&hosts)?;
    for e in &report.errors {
        eprintln!("{e}");
    }
    for w in &report.warnings {
        eprintln!("{}", crate::check::warning_line(w));
    }
    let unset = |var: &str| std::env::var_os(var).is_none_or(|v| v.is_empty());
    let node = local_node_name();
    let common = vec!["--root".to_owned(), s(&root), "--hosts".to_owned(), s(&hosts)];

    let observer: control_plane_observer::Config = config("control-plane-observer", &common)?;
    let supervisor: control_plane_supervisor::Config = config("control-plane-supervisor", &common)?;
    let executor: control_plane_executor::Config = config("control-plane-executor", &common)?;
    // Loopback unless the operator gave an address: a first look is not served to the LAN.
    let mut ui_args = common.clone();
    if unset("LISTEN") {
        ui_args.extend(["--listen".to_owned(), "127.0.0.1:18180".to_owned()]);
    }
    let ui: control_plane_ui::Config = config("control-plane-ui", &ui_args)?;
    let mut agent_args = common.clone();
    agent_args.extend(["--node".to_owned(), node.clone(), "--spool-dir".to_owned(), s(&data_root.agent_spool_dir())]);
    if unset("LISTEN_ADDR") {
        agent_args.extend(["--listen-addr".to_owned(), "127.0.0.1".to_owned()]);
    }
    let agent: node_agent::Config = config("node-agent", &agent_args)?;

    let port = ui.listen.port();
    let host = if ui.listen.ip().is_unspecified() { "127.0.0.1".to_owned() } else { ui.listen.ip().to_string() };
    let token_note = if ui.ui_token.as_deref().is_some_and(|t| !t.trim().is_empty()) {
        "UI_TOKEN from the environment".to_owned()
    } else {
        s(&data_root.display_path(homelab_store::Doc::UiToken))
    };
    let described = report.desired.hosts.contains_key(&node);
    println!("hcp up: the control plane is starting");
    let everywhere = if ui.listen.ip().is_unspecified() { format!(" (listening on {}: every address of this host)", ui.listen) } else { String::new() };
    println!("  UI         http://{host}:{port}{}/{everywhere}", ui.base_path.trim_end_matches('/'));
    println!("  token      {token_note}");
    println!("  data root  {}", root.display());
    println!(
        "  hosts      {} ({})",
        hosts.display(),
        if report.errors.is_empty() { report.summary() } else { format!("{} errors, see above", report.errors.len()) }
    );
    if args.no_agent {
        println!("  agent      not started (--no-agent)");
    } else {
        println!(
            "  agent      node {node}, readiness on {}{}",
            std::net::SocketAddr::new(agent.listen_addr, agent.listen_port),
            if described { String::new() } else { format!(" (hosts/ has no {node}/services.yaml: it reports only heartbeats)") }
        );
    }
    println!("  stop       Ctrl-C");

    let token = shutdown.child_token();
    let mut set = tokio::task::JoinSet::new();
    let spawn = |set: &mut tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
                 name: &'static str,
                 fut: std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>>| {
        set.spawn(async move { (name, fut.await) });
    };
    spawn(&mut set, "observer", Box::pin(control_plane_observer::run(observer, token.clone())));
    spawn(&mut set, "supervisor", Box::pin(control_plane_supervisor::run(supervisor, token.clone())));
    spawn(&mut set, "executor", Box::pin(control_plane_executor::run(executor, token.clone())));
    spawn(&mut set, "ui", Box::pin(control_plane_ui::run(ui, token.clone())));
    if !args.no_agent {
        spawn(&mut set, "node-agent", Box::pin(node_agent::run(agent, token.clone())));
    }

    // The first daemon to stop stops the others: a half-running control plane misleads.
    let mut failure: Option<anyhow::Error> = None;
    let mut record = |name: &str, result: Result<anyhow::Result<()>, tokio::task::JoinError>, token: &CancellationToken| {
        let err = match result {
            Ok(Ok(())) if token.is_cancelled() => None,
            Ok(Ok(())) => Some(anyhow::anyhow!("{name} stopped on its own")),
            Ok(Err(e)) => Some(e.context(format!("{name} failed"))),
            Err(e) => Some(anyhow::anyhow!("{name} panicked: {e}")),
        };
        if let Some(e) = err {
            tracing::error!(daemon = name, error = %format!("{e:#}"), "stopping the other daemons");
            failure.get_or_insert(e);
        }
        token.cancel();
    };
    if let Some(joined) = set.join_next().await {
        let (name, result) = match joined {
            Ok((name, r)) => (name, Ok(r)),
            Err(e) => ("a daemon", Err(e)),
        };
        record(name, result, &token);
    }
    // Give the others a bounded time to finish their current step.
    let rest = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = set.join_next().await {
            match joined {
                Ok((name, r)) => record(name, Ok(r), &token),
                Err(e) => record("a daemon", Err(e), &token),
            }
        }
    })
    .await;
    if rest.is_err() {
        set.abort_all();
        failure.get_or_insert(anyhow::anyhow!("some daemons did not stop within 30 s"));
    }
    match failure {
        Some(e) => Err(e),
        None => {
            println!("hcp up: stopped");
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_daemon_config_parses_from_the_flags_hcp_up_passes() {
        let common: Vec<String> = ["--root", "/tmp/r", "--hosts", "/tmp/h"].iter().map(|s| s.to_string()).collect();
        let o: control_plane_observer::Config = config("control-plane-observer", &common).unwrap();
        assert_eq!(o.common.root, PathBuf::from("/tmp/r"));
        let _: control_plane_supervisor::Config = config("control-plane-supervisor", &common).unwrap();
        let e: control_plane_executor::Config = config("control-plane-executor", &common).unwrap();
        assert_eq!(e.hosts, PathBuf::from("/tmp/h"));
        let _: control_plane_ui::Config = config("control-plane-ui", &common).unwrap();
        let mut a = common.clone();
        a.extend(["--node".into(), "laptop".into()]);
        let agent: node_agent::Config = config("node-agent", &a).unwrap();
        assert_eq!(agent.node, "laptop");
    }
}
