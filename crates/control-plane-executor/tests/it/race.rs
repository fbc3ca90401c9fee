//! Two executor processes racing over 200 approved actions: each action runs exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use homelab_core::world::{NodeState, NodesFile, ServicesFile};
use homelab_core::{ActionState, ActionType, NodeStatus};
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::crash::{executor, fake_compose};
use crate::*;

const NODES: usize = 8;
const PER_NODE: usize = 25;

#[test]
fn two_executors_run_each_of_200_actions_exactly_once() {
    let t = TempRoot::new();
    let runs = t.path().join("runs.log");
    // The side effect: the fake compose appends the folder it ran in.
    let (_bin, path_env) = fake_compose(&format!("pwd >> {}", runs.display()));
    let now = chrono::Utc::now();
    let mut nodes = BTreeMap::new();
    let mut ids = Vec::new();
    for n in 0..NODES {
        let node = format!("n{n}");
        let mut yaml = String::from("compose_command: docker-compose\nservices:\n");
        for s in 0..PER_NODE {
            let dir = t.path().join(format!("dirs/{node}-s{s}"));
            std::fs::create_dir_all(&dir).unwrap();
            yaml.push_str(&format!("  s{s}:\n    compose_dir: {}\n", dir.display()));
        }
        t.write_host(&node, &yaml);
        nodes.insert(
            node.clone(),
            NodeState { last_seen: Some(now), status: NodeStatus::Up, disk_pressure: None, disks: None, agent_version: None, uptime_secs: None },
        );
        for s in 0..PER_NODE {
            let a = approved(ActionType::Redeploy, &node, Some(&format!("s{s}")));
            approve(&t.root(), &a);
            ids.push(a.id);
        }
    }
    let root = DataRoot::open(t.root()).unwrap();
    root.write_world(&ServicesFile { generated_at: now, services: BTreeMap::new() }, &NodesFile { generated_at: now, nodes }).unwrap();

    let spawn = || executor(&t, &path_env, true).env("EXECUTOR_MAX_PARALLEL_NODES", "8").spawn().unwrap();
    let (mut a, mut b) = (spawn(), spawn());
    for child in [&mut a, &mut b] {
        let status = testkit::wait_for("both executors to finish 200 actions", Duration::from_secs(120), || child.try_wait().unwrap());
        assert!(status.success());
    }

    let lines = std::fs::read_to_string(&runs).unwrap();
    let mut per_dir: BTreeMap<&str, usize> = BTreeMap::new();
    for l in lines.lines() {
        *per_dir.entry(l).or_default() += 1;
    }
    assert_eq!(per_dir.len(), NODES * PER_NODE, "every action ran");
    assert!(per_dir.values().all(|&n| n == 1), "an action ran twice: {:?}", per_dir.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>());
    let mut by_pid: BTreeMap<String, usize> = BTreeMap::new();
    for id in &ids {
        let done = ended(&t.root(), id, ActionState::Completed);
        let claims: Vec<_> = done.history.iter().filter(|h| h.state == ActionState::Running).collect();
        assert_eq!(claims.len(), 1, "{id} claimed once");
        *by_pid.entry(claims[0].note.clone().unwrap_or_default()).or_default() += 1;
    }
    eprintln!("claims per executor: {by_pid:?}");
    for state in ["approved", "running", "failed"] {
        assert!(homelab_store::list_names(&t.root().join("actions").join(state)).unwrap().is_empty(), "{state}/ is empty");
    }
}
