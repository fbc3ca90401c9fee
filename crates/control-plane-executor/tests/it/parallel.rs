//! Node-wide incidents: container restarts of one node run side by side (bounded), and the
//! rules that keep redeploys apart from restarts of the same service, against the real Docker
//! engine. Concurrency is read from the action files' history (claimed → ended intervals).

use std::time::Duration;

use homelab_core::{Action, ActionState, ActionType, Timestamp};
use testkit::{TempRoot, wait_until};

use crate::*;

/// `n` running test containers, removed when the guard drops.
fn containers(what: &str, n: usize) -> (Containers, Vec<String>) {
    let names: Vec<String> = (0..n).map(|i| unique(&format!("{what}{i}"))).collect();
    let guard = Containers(names.clone());
    for name in &names {
        docker(&["run", "-d", "--name", name, "--network", "none", &image(), "sleep", "3600"]);
    }
    (guard, names)
}

/// SIGKILLs the main process of every container from the host, all in one `kill`, and waits
/// until Docker has seen them all die.
pub fn crash(names: &[String]) {
    let pids: Vec<String> = names.iter().map(|n| docker(&["inspect", "-f", "{{.State.Pid}}", n])).collect();
    assert!(pids.iter().all(|p| p.parse::<u32>().is_ok_and(|p| p > 0)), "pids {pids:?}");
    let mut args = vec!["-9"];
    args.extend(pids.iter().map(String::as_str));
    sh("kill", &args, None);
    wait_until("the killed containers to be seen as stopped", Duration::from_secs(30), || {
        names.iter().all(|n| docker(&["inspect", "-f", "{{.State.Running}}", n]) == "false")
    });
}

fn running(name: &str) -> bool {
    docker(&["inspect", "-f", "{{.State.Running}}", name]) == "true"
}

/// From claim (history `running`) to end (the last entry) of an ended action.
fn interval(a: &Action) -> (Timestamp, Timestamp) {
    let start = a.history.iter().find(|h| h.state == ActionState::Running).expect("claimed").at;
    let end = a.history.last().unwrap().at;
    assert!(a.history.last().unwrap().state.is_terminal(), "{:#?}", a.history);
    (start, end)
}

fn overlap(a: (Timestamp, Timestamp), b: (Timestamp, Timestamp)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

/// The largest number of intervals running at one instant.
fn peak(intervals: &[(Timestamp, Timestamp)]) -> usize {
    let mut edges: Vec<(Timestamp, i32)> = intervals.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    // An end and a start at the same millisecond do not overlap.
    edges.sort_by_key(|(t, d)| (*t, *d));
    let (mut now, mut max) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        max = max.max(now);
    }
    max as usize
}

fn host_yaml(names: &[String]) -> String {
    let mut yaml = String::from("services:\n");
    for (i, n) in names.iter().enumerate() {
        yaml.push_str(&format!("  s{i}:\n    containers: [{n}]\n"));
    }
    yaml
}

#[test]
fn eight_crashed_containers_of_one_node_are_restarted_concurrently() {
    let t = TempRoot::new();
    let (_guard, names) = containers("burst", 8);
    t.write_host("local", &host_yaml(&names));
    crash(&names);
    let actions: Vec<Action> = (0..names.len()).map(|i| approved(ActionType::ContainerRestart, "local", Some(&format!("s{i}")))).collect();
    for a in &actions {
        approve(&t.root(), a);
    }
    run_once(config(t.root(), t.hosts()));

    let done: Vec<Action> = actions.iter().map(|a| ended(&t.root(), &a.id, ActionState::Completed)).collect();
    for n in &names {
        assert!(running(n), "{n} runs again");
    }
    let intervals: Vec<_> = done.iter().map(interval).collect();
    // Serially, no two intervals would overlap; all 8 were approved before the executor
    // started, so they were claimed in one pass and ran side by side.
    let pairs = (0..8).flat_map(|i| (i + 1..8).map(move |j| (i, j))).filter(|(i, j)| overlap(intervals[*i], intervals[*j])).count();
    assert!(peak(&intervals) >= 4 && pairs >= 6, "expected concurrent restarts, got peak {} and {pairs} overlapping pairs: {intervals:#?}", peak(&intervals));
}

#[test]
fn restarts_on_one_node_stay_within_the_bound() {
    let t = TempRoot::new();
    let (_guard, names) = containers("bound", 4);
    t.write_host("local", &host_yaml(&names));
    crash(&names);
    let actions: Vec<Action> = (0..names.len()).map(|i| approved(ActionType::ContainerRestart, "local", Some(&format!("s{i}")))).collect();
    for a in &actions {
        approve(&t.root(), a);
    }
    let mut cfg = config(t.root(), t.hosts());
    cfg.max_parallel_restarts = 2;
    run_once(cfg);

    let intervals: Vec<_> = actions.iter().map(|a| interval(&ended(&t.root(), &a.id, ActionState::Completed))).collect();
    assert!(peak(&intervals) <= 2, "at most 2 at once: {intervals:#?}");
    assert!(names.iter().all(|n| running(n)));
}

#[test]
fn a_redeploy_never_overlaps_a_restart_of_its_service_but_may_overlap_another() {
    let t = TempRoot::new();
    let (_guard, names) = containers("mix", 2);
    crash(&names);
    // A redeploy that takes a second (a stand-in docker-compose).
    let (_bin, path_env) = crate::crash::fake_compose("sleep 1");
    let compose_dir = t.path().join("app");
    std::fs::create_dir_all(&compose_dir).unwrap();
    t.write_host(
        "local",
        &format!(
            "compose_command: docker-compose\nservices:\n  a:\n    containers: [{}]\n    compose_dir: {}\n  b:\n    containers: [{}]\n",
            names[0],
            compose_dir.display(),
            names[1]
        ),
    );
    crate::gate::world_up(&t.root(), "local");
    // Oldest first: the redeploy of a, then restarts of a and of b.
    let mut redeploy = approved(ActionType::Redeploy, "local", Some("a"));
    redeploy.created_at -= chrono::Duration::seconds(2);
    let mut restart_a = approved(ActionType::ContainerRestart, "local", Some("a"));
    restart_a.created_at -= chrono::Duration::seconds(1);
    let restart_b = approved(ActionType::ContainerRestart, "local", Some("b"));
    for a in [&redeploy, &restart_a, &restart_b] {
        approve(&t.root(), a);
    }
    let status = crate::crash::executor(&t, &path_env, true).status().unwrap();
    assert!(status.success());

    let d = interval(&ended(&t.root(), &redeploy.id, ActionState::Completed));
    let ra = interval(&ended(&t.root(), &restart_a.id, ActionState::Completed));
    let rb = interval(&ended(&t.root(), &restart_b.id, ActionState::Completed));
    assert!(!overlap(d, ra), "the restart of a waited for the redeploy of a: {d:?} {ra:?}");
    assert!(ra.0 >= d.1, "and ran after it: {d:?} {ra:?}");
    assert!(overlap(d, rb), "the restart of b ran beside the redeploy of a: {d:?} {rb:?}");
    assert!(names.iter().all(|n| running(n)));
}

#[test]
fn a_disk_cleanup_runs_alone_on_its_node() {
    let t = TempRoot::new();
    let (_guard, names) = containers("excl", 2);
    crash(&names);
    let label = unique("excl-prune");
    t.write_host("local", &format!("disk: {{ cleanup: {{ docker_prune: true }} }}\n{}", host_yaml(&names)));
    crate::gate::world_up(&t.root(), "local");
    // A cleanup between two restarts (by age): it waits for the first and holds back the second.
    let now = chrono::Utc::now();
    let mut first = approved(ActionType::ContainerRestart, "local", Some("s0"));
    first.created_at = now - chrono::Duration::seconds(3);
    let mut cleanup = approved(ActionType::DiskCleanup, "local", None);
    cleanup.created_at = now - chrono::Duration::seconds(2);
    let mut second = approved(ActionType::ContainerRestart, "local", Some("s1"));
    second.created_at = now - chrono::Duration::seconds(1);
    for a in [&first, &cleanup, &second] {
        approve(&t.root(), a);
    }
    let mut cfg = config(t.root(), t.hosts());
    cfg.prune_label = Some(label);
    run_once(cfg);

    let c = interval(&ended(&t.root(), &cleanup.id, ActionState::Completed));
    let r1 = interval(&ended(&t.root(), &first.id, ActionState::Completed));
    let r2 = interval(&ended(&t.root(), &second.id, ActionState::Completed));
    assert!(!overlap(c, r1) && !overlap(c, r2), "cleanup {c:?} alone: {r1:?} {r2:?}");
    assert!(r1.1 <= c.0 && c.1 <= r2.0, "in order of age: {r1:?} {c:?} {r2:?}");
}
