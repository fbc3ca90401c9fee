//! `hcp actions list|show|approve|reject|retry` and `hcp drift`: the same moves the UI makes,
//! straight on the data root, recorded in the action's history as `cli:<user>`; drift as the
//! supervisor reported it in `world/drift.json`.

use std::process::ExitCode;

use anyhow::Context;
use homelab_core::words::{ago, until};
use homelab_core::{Action, ActionId, ActionState};
use homelab_ops::{Actor, DecideError, Decision, Ops, RetryError};
use homelab_store::DataRoot;

use crate::RootArg;
use crate::table::render;

#[derive(Debug, clap::Args)]
pub struct ActionsArgs {
    #[arg(skip)]
    pub root: RootArg,
    #[command(subcommand)]
    pub command: ActionsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ActionsCommand {
    /// A table of actions: active ones first, then finished ones, newest first.
    List {
        /// Only this state: pending, approved, running, completed, failed, rejected, cancelled.
        #[arg(long, value_parser = parse_state, value_name = "STATE")]
        state: Option<ActionState>,
        /// Only this node.
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
    },
    /// One action: what, why, its history and the executor's result.
    Show {
        /// The action's id, e.g. redeploy-edge-1-web (see `hcp actions list`).
        #[arg(value_name = "ID")]
        id: String,
        /// Print the action file as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Approve a pending action (the executor then runs it).
    Approve {
        /// The pending action's id (see `hcp actions list --state pending`).
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Reject a pending action, saying why.
    Reject {
        /// The pending action's id (see `hcp actions list --state pending`).
        #[arg(value_name = "ID")]
        id: String,
        /// Why, in a few words: kept in the action's history (and snoozes the proposal).
        #[arg(long, value_name = "TEXT")]
        reason: String,
    },
    /// Take back a pending action, or an approved one the executor has not started. Unlike
    /// reject it snoozes nothing: while the drift holds, the supervisor proposes it again.
    Cancel {
        /// The pending or approved action's id.
        #[arg(value_name = "ID")]
        id: String,
        /// Why, in a few words: kept in the action's history.
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Propose an action again (after remediation_exhausted or a rejection snooze): writes a
    /// fresh pending action with this id while its drift holds (see `hcp drift`).
    Retry {
        /// The action's id as `hcp drift` shows it.
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// `hcp drift`: what is wrong and what happens next, as the supervisor reported it.
#[derive(Debug, clap::Args)]
pub struct DriftArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// Only this node.
    #[arg(long)]
    pub node: Option<String>,
    /// Print world/drift.json as it is instead.
    #[arg(long)]
    pub json: bool,
}

fn parse_state(s: &str) -> Result<ActionState, String> {
    ActionState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = ActionState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state {s:?}; one of {}", all.join(", "))
    })
}

/// Who the history records: `cli:<user name>`: `$USER` (or `$LOGNAME`), else the name of the
/// process's uid in /etc/passwd (`cli:root` for root in a container without `$USER`), else
/// `cli:uid<N>`.
pub fn operator() -> String {
    let clean = |user: &str| -> String { user.chars().filter(|c| c.is_ascii_alphanumeric() || "._-@".contains(*c)).take(64).collect() };
    let env = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_default();
    let user = clean(&env);
    if !user.is_empty() {
        return format!("cli:{user}");
    }
    let uid = current_uid();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    match user_name(&passwd, uid).map(|n| clean(&n)).filter(|n| !n.is_empty()) {
        Some(name) => format!("cli:{name}"),
        None => format!("cli:uid{uid}"),
    }
}

/// The operations layer on `root`, and the local user as its actor (an admin: the CLI acts with
/// the data root's own file permissions).
pub fn local_operator(root: &DataRoot) -> (Ops, Actor) {
    (Ops::new(root.clone()), Actor::cli(&operator()))
}

/// The name of `uid` in an /etc/passwd text (`name:x:uid:gid:...`).
pub fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let _password = f.next()?;
        (f.next()?.parse::<u32>().ok()? == uid && !name.is_empty()).then(|| name.to_owned())
    })
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
        ActionsCommand::Approve { id } => decide(&root, &parse_id(id)?, Decision::APPROVE),
        ActionsCommand::Reject { id, reason } => {
            let id = parse_id(id)?;
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why (it goes into the action's history)");
            }
            decide(&root, &id, Decision::Reject { reason: Some(reason.trim().to_owned()) })
        }
        ActionsCommand::Cancel { id, reason } => decide(&root, &parse_id(id)?, Decision::Cancel { reason: reason.clone() }),
        ActionsCommand::Retry { id } => retry(&root, &parse_id(id)?),
    }
}

/// An action id typed on the command line, parsed once here.
fn parse_id(id: &str) -> anyhow::Result<ActionId> {
    ActionId::parse(id).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Proposes `id` again through the operations layer, as the UI and the API do.
pub fn retry(root: &DataRoot, id: &ActionId) -> anyhow::Result<ExitCode> {
    let (ops, actor) = local_operator(root);
    match ops.retry(&actor, id) {
        Ok(a) => {
            println!("{} proposed again by {}: pending (approve with: hcp actions approve {})", a.id, actor.by, a.id);
            Ok(ExitCode::SUCCESS)
        }
        Err(RetryError::Active { state, .. }) => {
            println!("{id} is already {state}: nothing changed");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ (RetryError::NoDrift { .. } | RetryError::NotReported { .. } | RetryError::DriftUnreadable { .. })) => {
            println!("{e}; nothing changed (hint: hcp drift)");
            Ok(ExitCode::FAILURE)
        }
        Err(e @ RetryError::Store(_)) => Err(anyhow::Error::new(e).context(format!("cannot write action {id}"))),
        // The CLI acts as an admin: nothing is refused by role.
        Err(e @ RetryError::Forbidden(_)) => Err(anyhow::Error::new(e)),
    }
}

/// `hcp drift`.
pub fn run_drift(args: &DriftArgs) -> anyhow::Result<ExitCode> {
    let root = open(&args.root)?;
    let file: Option<homelab_core::drift::DriftFile> = match root.read_drift() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            println!("{e}\n(the supervisor rewrites it at its next reconcile; nothing is shown rather than something recomputed)");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("cannot read {}", homelab_store::Doc::Drift))),
    };
    let Some(file) = file else {
        println!("the supervisor has not reported yet (no {}): is control-plane-supervisor running?", homelab_store::Doc::Drift);
        return Ok(ExitCode::SUCCESS);
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&file)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", drift_table(&file, args.node.as_deref(), chrono::Utc::now()));
    Ok(ExitCode::SUCCESS)
}

/// The `hcp drift` table: one row per drift with what happens next, the time that decision
/// ends and the action it is about.
pub fn drift_table(file: &homelab_core::drift::DriftFile, node: Option<&str>, now: homelab_core::Timestamp) -> String {
    let mut out = format!("as reported by the supervisor {}\n", ago(file.generated_at, now));
    let rows: Vec<Vec<String>> = file
        .drifts
        .iter()
        .filter(|d| node.is_none_or(|n| d.node == n))
        .map(|d| {
            let mut what = format!("{} ({})", d.kind, d.trigger);
            if let Some(rc) = &d.root_cause {
                what.push_str(&format!(", root cause {rc}"));
            }
            vec![
                d.node.clone(),
                d.service.clone().unwrap_or_else(|| "-".into()),
                what,
                d.since.map(|t| ago(t, now)).unwrap_or_else(|| "-".into()),
                d.decision.as_str().to_owned(),
                d.until.map(|t| until(t, now)).unwrap_or_else(|| "-".into()),
                d.action_id.clone().unwrap_or_else(|| "-".into()),
                d.reason.clone(),
            ]
        })
        .collect();
    if rows.is_empty() {
        out.push_str("no drift: world state matches desired state\n");
        return out;
    }
    out.push_str(&render(&["NODE", "SERVICE", "DRIFT", "SINCE", "NEXT", "UNTIL", "ACTION", "REASON"], &rows));
    if file.drifts.iter().any(|d| matches!(d.decision, homelab_core::drift::NextStep::RemediationExhausted | homelab_core::drift::NextStep::RejectedSnoozed)) {
        out.push_str("\npropose an exhausted or snoozed action again with: hcp actions retry ACTION\n");
    }
    out
}

fn open(root: &RootArg) -> anyhow::Result<DataRoot> {
    if !DataRoot::is_data_root(&root.root) {
        anyhow::bail!("{} is not a data root (no actions/ folder); pass --root DIR or set HOMELAB_ROOT", root.root.display());
    }
    DataRoot::open(&root.root).with_context(|| format!("cannot open the data root {}", root.root.display()))
}

/// Approves, rejects or cancels an action through the operations layer. Someone else deciding
/// first is not a crash: exit 1 and say what state it is in now, changing nothing.
pub fn decide(root: &DataRoot, id: &ActionId, decision: Decision) -> anyhow::Result<ExitCode> {
    let (ops, actor) = local_operator(root);
    match ops.decide(&actor, id, decision) {
        Ok(a) => {
            println!("{} {} by {}", a.id, a.state, actor.by);
            Ok(ExitCode::SUCCESS)
        }
        Err(DecideError::NotPending { state, .. }) => {
            println!("{id} is {state}, not pending: nothing changed");
            Ok(ExitCode::FAILURE)
        }
        Err(DecideError::TooLate { state, .. }) => {
            println!("{id} is {state}: too late to cancel, nothing changed");
            Ok(ExitCode::FAILURE)
        }
        Err(DecideError::NotFound(_)) => {
            println!("no action {id} (hint: hcp actions list --state pending)");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("cannot decide on {id}"))),
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
    kv(
        "target",
        match &a.service {
            Some(s) => format!("{s} on {}", a.node),
            None => a.node.clone(),
        },
    );
    kv("why", why(a));
    kv("created", format!("{} ({})", homelab_core::rfc3339(a.created_at), ago(a.created_at, now)));
    out.push_str("\nhistory\n");
    let rows: Vec<Vec<String>> =
        a.history.iter().map(|h| vec![homelab_core::rfc3339(h.at), h.state.to_string(), h.by.clone(), h.note.clone().unwrap_or_default()]).collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_name(passwd, 42), None);
    }
}
