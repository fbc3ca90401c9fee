//! Which approved action may start now, given what is already running: a pure decision, so the
//! rule can be tested as a table and with generated cases.
//!
//! - Container restarts of different services on one node run side by side, at most
//!   `max_restarts_per_node` at once (`EXECUTOR_MAX_PARALLEL_RESTARTS`).
//! - A redeploy runs alone among redeploys and disk cleanups of its node, and never beside a
//!   restart of the same service (a redeploy of A waits for a restart of A, and vice versa; a
//!   restart of B may run beside it).
//! - A disk cleanup runs alone on its node.
//! - At most `max_parallel_nodes` nodes have work running at once.
//! - An older action that waits only because of these rules holds back younger actions that
//!   conflict with it, so a stream of restarts cannot starve a redeploy or a cleanup.

use homelab_core::ActionType;

/// What the scheduler needs to know about an action: its kind and its service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Job {
    pub kind: ActionType,
    pub service: Option<String>,
}

impl Job {
    pub fn new(kind: ActionType, service: Option<&str>) -> Job {
        Job { kind, service: service.map(str::to_owned) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_parallel_nodes: usize,
    pub max_restarts_per_node: usize,
}

/// Why an action does not start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// `max_parallel_nodes` other nodes are busy.
    NodesBusy,
    /// `max_restarts_per_node` restarts already run on this node.
    RestartBound,
    /// It conflicts with this running action.
    Running(Job),
    /// It conflicts with this older action, itself waiting for its turn.
    Older(Job),
}

/// True when `a` and `b` must not run at the same time on one node.
pub fn conflicts(a: &Job, b: &Job) -> bool {
    use ActionType::*;
    let same_service = a.service.is_some() && a.service == b.service;
    match (a.kind, b.kind) {
        (DiskCleanup, _) | (_, DiskCleanup) => true,
        // Changes of compose projects: one at a time on a node, like redeploys always were.
        (Redeploy | Rollback, Redeploy | Rollback) => true,
        (ContainerRestart, Redeploy | Rollback) | (Redeploy | Rollback, ContainerRestart) | (ContainerRestart, ContainerRestart) => same_service,
    }
}

/// May `candidate` start on its node now?
///
/// `running`: what runs on the candidate's node; `older_waiting`: older actions of that node
/// that could not start in this pass because of this rule (not those held by the health gate);
/// `other_busy_nodes`: how many other nodes have something running.
pub fn may_start(candidate: &Job, running: &[Job], older_waiting: &[Job], other_busy_nodes: usize, limits: Limits) -> Result<(), Wait> {
    if running.is_empty() && other_busy_nodes >= limits.max_parallel_nodes.max(1) {
        return Err(Wait::NodesBusy);
    }
    if let Some(r) = running.iter().find(|r| conflicts(candidate, r)) {
        return Err(Wait::Running(r.clone()));
    }
    if candidate.kind == ActionType::ContainerRestart {
        let restarts = running.iter().filter(|r| r.kind == ActionType::ContainerRestart).count();
        if restarts >= limits.max_restarts_per_node.max(1) {
            return Err(Wait::RestartBound);
        }
    }
    if let Some(o) = older_waiting.iter().find(|o| conflicts(candidate, o)) {
        return Err(Wait::Older(o.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ActionType::*;
    use proptest::prelude::*;

    fn j(kind: ActionType, service: Option<&str>) -> Job {
        Job::new(kind, service)
    }
    const L: Limits = Limits { max_parallel_nodes: 4, max_restarts_per_node: 8 };

    #[test]
    fn table() {
        let ra = j(ContainerRestart, Some("a"));
        let rb = j(ContainerRestart, Some("b"));
        let da = j(Redeploy, Some("a"));
        let db = j(Redeploy, Some("b"));
        let c = j(DiskCleanup, None);
        let restarts = |n: usize| (0..n).map(|i| j(ContainerRestart, Some(&format!("s{i}")))).collect::<Vec<_>>();
        type Case = (&'static str, Job, Vec<Job>, Vec<Job>, usize, Result<(), Wait>);
        #[rustfmt::skip]
        let cases: Vec<Case> = vec![
            ("idle node, restart", ra.clone(), vec![], vec![], 0, Ok(())),
            ("idle node, redeploy", da.clone(), vec![], vec![], 0, Ok(())),
            ("idle node, cleanup", c.clone(), vec![], vec![], 0, Ok(())),
            ("restart beside a restart of another service", rb.clone(), vec![ra.clone()], vec![], 0, Ok(())),
            ("7 restarts running, an 8th starts", ra.clone(), restarts(7), vec![], 0, Ok(())),
            ("8 restarts running, a 9th waits", ra.clone(), restarts(8), vec![], 0, Err(Wait::RestartBound)),
            ("restart of A waits for a redeploy of A", ra.clone(), vec![da.clone()], vec![], 0, Err(Wait::Running(da.clone()))),
            ("redeploy of A waits for a restart of A", da.clone(), vec![ra.clone()], vec![], 0, Err(Wait::Running(ra.clone()))),
            ("restart of B beside a redeploy of A", rb.clone(), vec![da.clone()], vec![], 0, Ok(())),
            ("redeploy of B beside a restart of A", db.clone(), vec![ra.clone()], vec![], 0, Ok(())),
            ("redeploys one at a time", db.clone(), vec![da.clone()], vec![], 0, Err(Wait::Running(da.clone()))),
            ("cleanup waits for a restart", c.clone(), vec![ra.clone()], vec![], 0, Err(Wait::Running(ra.clone()))),
            ("cleanup waits for a redeploy", c.clone(), vec![da.clone()], vec![], 0, Err(Wait::Running(da.clone()))),
            ("restart waits for a cleanup", ra.clone(), vec![c.clone()], vec![], 0, Err(Wait::Running(c.clone()))),
            ("redeploy waits for a cleanup", da.clone(), vec![c.clone()], vec![], 0, Err(Wait::Running(c.clone()))),
            ("a waiting older cleanup holds back a younger restart", rb.clone(), vec![ra.clone()], vec![c.clone()], 0, Err(Wait::Older(c.clone()))),
            ("a waiting older redeploy of A holds back a younger restart of A", ra.clone(), vec![], vec![da.clone()], 0, Err(Wait::Older(da.clone()))),
            ("a waiting older redeploy of A lets a restart of B go", rb.clone(), vec![ra.clone()], vec![da.clone()], 0, Ok(())),
            ("4 other nodes busy: an idle node waits", ra.clone(), vec![], vec![], 4, Err(Wait::NodesBusy)),
            ("4 other nodes busy: a busy node takes more restarts", rb.clone(), vec![ra.clone()], vec![], 4, Ok(())),
            ("3 other nodes busy: an idle node starts", c.clone(), vec![], vec![], 3, Ok(())),
        ];
        for (what, cand, running, older, busy, want) in cases {
            assert_eq!(may_start(&cand, &running, &older, busy, L), want, "{what}");
        }
    }

    fn job() -> impl Strategy<Value = Job> {
        (prop_oneof![Just(ContainerRestart), Just(Redeploy), Just(DiskCleanup)], 0..4u8).prop_map(|(kind, s)| {
            let service = (kind != DiskCleanup).then(|| format!("s{s}"));
            Job { kind, service }
        })
    }

    proptest! {
        /// Starting actions one by one with the rule never yields a forbidden running set: at
        /// most one redeploy-or-cleanup, a cleanup alone, never a restart and a redeploy of one
        /// service, never more restarts than the bound; and an idle node always takes the
        /// first action.
        #[test]
        fn running_sets_stay_allowed(queue in proptest::collection::vec(job(), 0..40), bound in 1usize..6) {
            let limits = Limits { max_parallel_nodes: 1, max_restarts_per_node: bound };
            let mut running: Vec<Job> = Vec::new();
            let mut waiting: Vec<Job> = Vec::new();
            for (i, cand) in queue.iter().enumerate() {
                let ok = may_start(cand, &running, &waiting, 0, limits).is_ok();
                if i == 0 { prop_assert!(ok, "an idle node takes the first action"); }
                if ok { running.push(cand.clone()) } else { waiting.push(cand.clone()) }
                let exclusive = running.iter().filter(|r| r.kind != ContainerRestart).count();
                prop_assert!(exclusive <= 1);
                prop_assert!(!running.iter().any(|r| r.kind == DiskCleanup) || running.len() == 1);
                prop_assert!(running.iter().filter(|r| r.kind == ContainerRestart).count() <= bound);
                for (a, x) in running.iter().enumerate() {
                    for y in &running[a + 1..] {
                        prop_assert!(!conflicts(x, y), "{x:?} and {y:?} run together");
                    }
                }
            }
        }

        /// The conflict relation is symmetric, and a restart only ever conflicts with work on
        /// its own service or a cleanup.
        #[test]
        fn conflicts_symmetric(a in job(), b in job()) {
            prop_assert_eq!(conflicts(&a, &b), conflicts(&b, &a));
            if a.kind == ContainerRestart && b.kind != DiskCleanup && a.service != b.service {
                prop_assert!(!conflicts(&a, &b));
            }
        }

        /// A restart blocked by a running job is never blocked by anything but that rule:
        /// once the running set is empty it starts (no starvation by the rule itself).
        #[test]
        fn idle_node_starts_anything(cand in job()) {
            prop_assert_eq!(may_start(&cand, &[], &[], 0, L), Ok(()));
        }
    }
}
