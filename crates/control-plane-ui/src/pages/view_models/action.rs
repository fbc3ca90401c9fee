//! The actions list and one action's page: what its template renders.

use askama::Template;
use homelab_core::action::{RunPlan, RunWhere, RunWork};
use homelab_core::{Action, Timestamp};

use crate::snapshot::{FileError, Snapshot};
use crate::view::{self, Pill, Tick, When};

use super::{ActionRow, DriftRow};

#[derive(Template)]
#[template(path = "actions.html")]
pub(in crate::pages) struct ActionsT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) csrf: Option<String>,
    pub(in crate::pages) errors: &'a [FileError],
    /// (value, selected)
    pub(in crate::pages) nodes: Vec<(String, bool)>,
    pub(in crate::pages) states: Vec<(String, bool)>,
    pub(in crate::pages) sections: Vec<(&'static str, &'static str, Vec<ActionRow<'a>>)>,
}

/// "What approving will run", ready for the template.
pub(in crate::pages) struct PlanView {
    pub(in crate::pages) node: String,
    /// `local` or `SSH`.
    pub(in crate::pages) via: &'static str,
    pub(in crate::pages) ssh: String,
    /// `containers`, `labels`, `compose`, `prune` or `none`.
    pub(in crate::pages) work: &'static str,
    pub(in crate::pages) items: Vec<String>,
    pub(in crate::pages) command: String,
    pub(in crate::pages) dir: String,
    pub(in crate::pages) describe: Vec<Tick>,
    pub(in crate::pages) timeout: u64,
    pub(in crate::pages) verify: String,
    pub(in crate::pages) blocked: Option<String>,
}

pub(in crate::pages) fn plan_view(p: &RunPlan) -> PlanView {
    let (work, items, command, dir) = match &p.work {
        Some(RunWork::RestartContainers { containers }) => ("containers", containers.clone(), String::new(), String::new()),
        Some(RunWork::RestartByLabels { labels }) => ("labels", labels.clone(), String::new(), String::new()),
        Some(RunWork::Compose { argv, dir }) => ("compose", Vec::new(), argv.join(" "), dir.clone()),
        Some(RunWork::Rollback { dir, generation }) => ("rollback", vec![generation.clone()], String::new(), dir.clone()),
        Some(RunWork::Prune { label }) => ("prune", label.iter().cloned().collect(), String::new(), String::new()),
        None => ("none", Vec::new(), String::new(), String::new()),
    };
    let (via, ssh) = match &p.run_where {
        RunWhere::Local => ("local", String::new()),
        RunWhere::Ssh { target, .. } => ("SSH", target.clone()),
    };
    PlanView {
        node: p.node.clone(),
        via,
        ssh,
        work,
        items,
        command,
        dir,
        describe: view::code_ticks(&p.describe()),
        timeout: p.timeout_secs,
        verify: p.verify_text(),
        blocked: p.blocked.clone(),
    }
}

#[derive(Template)]
#[template(path = "action.html")]
pub(in crate::pages) struct ActionT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) csrf: Option<String>,
    pub(in crate::pages) errors: &'a [FileError],
    /// The supervisor's drift row about this action's target now (world/drift.json).
    pub(in crate::pages) drift: Vec<DriftRow<'a>>,
    pub(in crate::pages) a: &'a Action,
    pub(in crate::pages) title: String,
    pub(in crate::pages) tone: &'static str,
    pub(in crate::pages) icon: view::Icon,
    pub(in crate::pages) created: When,
    pub(in crate::pages) target: String,
    pub(in crate::pages) plan: PlanView,
    /// A warning about the executor (stopped, dry run), empty when none.
    pub(in crate::pages) executor_note: String,
    pub(in crate::pages) evidence: Vec<EvidenceRow>,
    pub(in crate::pages) events_link: String,
    pub(in crate::pages) running_since: When,
    /// When the run started and how many seconds it took.
    pub(in crate::pages) ran: Option<(When, i64)>,
    pub(in crate::pages) history: Vec<HistoryRow>,
}

/// A warning about the executor for an action's page (stopped, unreadable, dry run); "" when none.
pub(in crate::pages) fn executor_note(snap: &Snapshot, now: Timestamp) -> String {
    match snap.heartbeats.get("executor") {
        None => "No executor has written a heartbeat: an approved action waits in approved/ until one runs.".to_owned(),
        Some(None) => "The executor's heartbeat does not parse: it may not be running.".to_owned(),
        Some(Some(hb)) if hb.is_stopped(now) => format!(
            "The executor looks stopped (last heartbeat {}): an approved action waits until it runs again.",
            homelab_core::words::ago(hb.last_loop_at, now)
        ),
        Some(Some(hb)) if hb.extra.get("dry_run").and_then(|v| v.as_bool()) == Some(true) => {
            "The executor runs in dry-run mode (EXECUTOR_DRY_RUN): it records what it would do and changes nothing.".to_owned()
        }
        Some(Some(_)) => String::new(),
    }
}

/// One of the last events of an action's target.
pub(in crate::pages) struct EvidenceRow {
    pub(in crate::pages) when: When,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) detail: String,
}

/// One step of an action's history.
pub(in crate::pages) struct HistoryRow {
    pub(in crate::pages) when: When,
    pub(in crate::pages) pill: Pill,
    pub(in crate::pages) by: String,
    pub(in crate::pages) note: String,
}
