//! `hcp actions list|show|approve|reject`: the same moves the UI makes, straight on the data
//! root, recorded in the action's history as `cli:<user>`.

use std::process::ExitCode;

use anyhow::Context;
use homelab_core::{Action, ActionState};
use homelab_store::{DataRoot, TransitionError};

use crate::RootArg;
use crate::table::{ago, render};

#[derive(Debug, clap::Args)]
pub struct ActionsArgs {
    #[command(flatten)]
    pub root: RootArg,
    #[command(subcommand)]
    pub command: ActionsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ActionsCommand {
    /// A table of actions: active ones first, then finished ones, newest first.
    List {
        /// Only this state: pending, approved, running, completed, failed, rejected, cancelled.
        #[arg(long, value_parser = parse_state)]
        state: Option<ActionState>,
        /// Only this node.
        #[arg(long)]
        node: Option<String>,
    },
    /// One action: what, why, its history and the executor's result.
    Show {
        id: String,
        /// Print the action file as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending action (the executor then runs it).
    Approve { id: String },
    /// Reject a pending action, saying why.
    Reject {
        id: String,
        #[arg(long)]
        reason: String,
    },
}

fn parse_state(s: &str) -> Result<ActionState, String> {
    ActionState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {s:?}; one of {}", all.join(", "))
    })
}

/// Who the history records: `cli:<login>`.
pub fn operator() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    let user: String = user.chars().filter(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c)).take(64).collect();
    if user.is_empty() { format!("cli:uid{}", current_uid()) } else { format!("cli:{user}") }
}

fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    // The owner of /proc/self is the process's uid, without libc.
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

pub fn run(args: &ActionsArgs) -> anyhow::Result<ExitCode> {
    let root = open(&args.root)?;
    match &args.command {
        ActionsCommand::List { state, node } => {
            print!("{}", list(&root, *state, node.as_deref(), chrono::Utc::now())?);
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Show { id, json } => {
            let Some(found) = root.find_action(id).with_context(|| format!("cannot read action {id}"))? else {
                println!("no action {id} (hint: hcp actions list)");
                return Ok(ExitCode::FAILURE);
            };
            if *json {
                println!("{}", serde_json::to_string_pretty(&found.action)?);
            } else {
                print!("{}", show(&found.action, chrono::Utc::now()));
            }
            Ok(ExitCode::SUCCESS)
        }
        ActionsCommand::Approve { id } => decide(&root, id, ActionState::Approved, None),
        ActionsCommand::Reject { id, reason } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why (it goes into the action's history)");
            }
            decide(&root, id, ActionState::Rejected, Some(reason.trim().to_owned()))
        }
    }
}

fn open(root: &RootArg) -> anyhow::Result<DataRoot> {
    if !root.root.join("actions").is_dir() {
        anyhow::bail!("{} is not a data root (no actions/ folder); pass --root DIR or set HOMELAB_ROOT", root.root.display());
    }
    DataRoot::open(&root.root).with_context(|| format!("cannot open the data root {}", root.root.display()))
}

/// Moves a pending action to `to`. Someone else deciding first is not a crash: exit 1 and say
/// what state it is in now, changing nothing.
pub fn decide(root: &DataRoot, id: &str, to: ActionState, note: Option<String>) -> anyhow::Result<ExitCode> {
    homelab_core::validate_action_id(id).map_err(|e| anyhow::anyhow!("{e}"))?;
    let by = operator();
    match root.transition(id, ActionState::Pending, to, chrono::Utc::now(), &by, note, |_| {}) {
        Ok(a) => {
            println!("{} {} by {by}", a.id, to);
            Ok(ExitCode::SUCCESS)
        }
        Err(TransitionError::NotInState { current: Some(current), .. }) => {
            println!("{id} is {current}, not pending: nothing changed");
            Ok(ExitCode::FAILURE)
        }
        Err(TransitionError::NotInState { current: None, .. }) => {
            println!("no action {id} (hint: hcp actions list --state pending)");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot move {id} to {to}"))),
    }
}

/// The `actions list` table.
pub fn list(root: &DataRoot, state: Option<ActionState>, node: Option<&str>, now: homelab_core::Timestamp) -> anyhow::Result<String> {
    let states: Vec<ActionState> = match state {
        Some(s) => vec![s],
        None => ActionState::ALL.to_vec(),
    };
    let mut rows = Vec::new();
    for s in states {
        let mut found = root.list_actions(s).with_context(|| format!("cannot list actions/{s}"))?;
        found.retain(|a| node.is_none_or(|n| a.action.node == n));
        found.sort_by_key(|a| std::cmp::Reverse(a.action.updated_at));
        for a in found {
            let a = a.action;
            rows.push(vec![
                a.id.clone(),
                a.state.to_string(),
                a.kind.to_string(),
                format!("{:?}", a.risk).to_lowercase(),
                a.node.clone(),
                a.service.clone().unwrap_or_else(|| "-".into()),
                why(&a),
                ago(a.updated_at, now),
            ]);
        }
    }
    if rows.is_empty() {
        return Ok("no actions\n".into());
    }
    Ok(render(&["ID", "STATE", "TYPE", "RISK", "NODE", "SERVICE", "WHY", "UPDATED"], &rows))
}

fn why(a: &Action) -> String {
    let mut s = format!("{} ({})", a.drift, a.trigger);
    if let Some(rc) = &a.root_cause {
        s.push_str(&format!(", root cause {rc}"));
    }
    s
}

/// The `actions show` text.
pub fn show(a: &Action, now: homelab_core::Timestamp) -> String {
    let mut out = String::new();
    let mut kv = |k: &str, v: String| out.push_str(&format!("{k:<11}{v}\n"));
    kv("id", a.id.clone());
    kv("state", a.state.to_string());
    kv("type", format!("{} (risk {})", a.kind, format!("{:?}", a.risk).to_lowercase()));
    kv("target", match &a.service {
        Some(s) => format!("{s} on {}", a.node),
        None => a.node.clone(),
    });
    kv("why", why(a));
    kv("created", format!("{} ({})", homelab_core::rfc3339(a.created_at), ago(a.created_at, now)));
    out.push_str("\nhistory\n");
    let rows: Vec<Vec<String>> = a
        .history
        .iter()
        .map(|h| vec![homelab_core::rfc3339(h.at), h.state.to_string(), h.by.clone(), h.note.clone().unwrap_or_default()])
        .collect();
    for line in render(&["AT", "STATE", "BY", "NOTE"], &rows).lines() {
        out.push_str(&format!("  {line}\n"));
    }
    if let Some(r) = &a.result {
        out.push_str("\nresult\n");
        out.push_str(&format!("  ok         {}{}\n", r.ok, if r.dry_run { " (dry run)" } else { "" }));
        if let Some(code) = r.exit_status {
            out.push_str(&format!("  exit       {code}\n"));
        }
        if let Some(e) = &r.error {
            out.push_str(&format!("  error      {e}\n"));
        }
        if let Some(b) = r.bytes_reclaimed {
            out.push_str(&format!("  reclaimed  {b} bytes\n"));
        }
        out.push_str(&format!(
            "  verified   {}\n",
            match r.verified {
                Some(true) => "yes: the service reported healthy afterwards",
                Some(false) => "no: the service did not report healthy in time",
                None => "not checked",
            }
        ));
        if !r.output.is_empty() {
            out.push_str("  output\n");
            for line in r.output.lines() {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}
