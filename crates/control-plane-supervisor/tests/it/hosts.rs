//! A broken host file keeps its last good version in force, across separate runs.

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::{EDGE, WorldBuilder, ids, once, run};

#[test]
fn broken_yaml_keeps_the_last_good_version_across_two_runs() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    let world = WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).service("edge-1", "web", Some("containers_not_running"));
    world.write(&t);
    once(&t);
    assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-web"]);
    assert!(t.root().join("state/hosts_last_good.json").is_file());

    // A typo, in a file that also drops web and adds a service nobody runs yet.
    let broken = "services:\n  mosquitto: {}\n  newsvc:\n    compse_dir: /srv/new\n";
    t.write_host("edge-1", broken);
    for run_no in 1..=2 {
        let out = run(&t, &["--once"], &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "run {run_no}: a broken hosts file must exit non-zero");
        assert!(stderr.contains("services.yaml:4:"), "run {run_no}: file:line:column in stderr: {stderr}");
        assert!(stderr.contains("unknown field"), "run {run_no}: {stderr}");
        // Nothing cancelled (web is not "removed"), nothing proposed from the broken file.
        assert_eq!(ids(&t, ActionState::Pending), ["container-restart-edge-1-web"], "run {run_no}");
        assert_eq!(ids(&t, ActionState::Cancelled), Vec::<String>::new(), "run {run_no}");
        let hb: serde_json::Value = DataRoot::open(t.root()).unwrap().read_heartbeat("supervisor").unwrap().unwrap();
        let errors = hb["config_errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "run {run_no}: {hb}");
        assert_eq!(errors[0]["line"], 4);
        assert!(errors[0]["file"].as_str().unwrap().ends_with("edge-1/services.yaml"));
    }
    // Each run found the error and said so in the audit log (one record per run, not per pass).
    let audit = config_audit(&t);
    assert_eq!(audit.len(), 2, "{audit:?}");
    for (what, target, outcome, detail) in &audit {
        assert_eq!((what.as_str(), outcome.as_str()), ("config_error", "refused"));
        assert!(target.ends_with("edge-1/services.yaml"), "{target}");
        assert!(detail.contains("services.yaml:4:") && detail.contains("unknown field"), "{detail}");
    }

    // Fixed: the new file is in force now, web is really gone and newsvc is missing.
    t.write_host("edge-1", "services:\n  mosquitto: {}\n  zigbee2mqtt: {}\n  newsvc:\n    compose_dir: /srv/new\n");
    // A single pass has watched no check pass: a missing service is judged only without the grace.
    let out = run(&t, &["--once"], &[("MISSING_GRACE", "0")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-1-newsvc"]);
    assert_eq!(ids(&t, ActionState::Cancelled), ["container-restart-edge-1-web"]);
    let hb: serde_json::Value = DataRoot::open(t.root()).unwrap().read_heartbeat("supervisor").unwrap().unwrap();
    assert!(hb.get("config_errors").is_none_or(|e| e.as_array().unwrap().is_empty()), "{hb}");
}

/// Today's audit records of the supervisor: (what, target, outcome, detail).
fn config_audit(t: &TempRoot) -> Vec<(String, String, String, String)> {
    let read = DataRoot::open(t.root()).unwrap().read_audit(chrono::Utc::now().date_naive(), &Default::default()).unwrap();
    read.records.into_iter().filter(|r| r.who == "supervisor").map(|r| (r.what, r.target, r.outcome, r.detail.unwrap_or_default())).collect()
}

/// A running supervisor records a configuration error once when it appears (not at every
/// reconcile), a second error when it appears, and `config_ok` when hosts/ is valid again.
#[test]
fn configuration_errors_reach_the_audit_log_once_each() {
    let t = TempRoot::new();
    t.write_host("edge-1", EDGE);
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt"]).write(&t);
    let mut sup = control_plane_supervisor::Supervisor::open(control_plane_supervisor::Config::new(t.root(), t.hosts())).unwrap();
    let now = chrono::Utc::now;
    sup.reconcile(now()).unwrap();
    assert_eq!(config_audit(&t), []);

    t.write_host("edge-1", "services:\n  mosquitto: {}\n  newsvc:\n    compse_dir: /srv/new\n");
    for _ in 0..3 {
        assert_eq!(sup.reconcile(now()).unwrap().config_errors.len(), 1);
    }
    let audit = config_audit(&t);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].3.contains("unknown field"), "{audit:?}");

    t.write_host("edge-2", "services: [");
    assert_eq!(sup.reconcile(now()).unwrap().config_errors.len(), 2);
    let audit = config_audit(&t);
    assert_eq!(audit.len(), 2, "only the new error is added: {audit:?}");
    assert!(audit[1].1.ends_with("edge-2/services.yaml"), "{audit:?}");

    t.write_host("edge-1", EDGE);
    std::fs::remove_dir_all(t.hosts().join("edge-2")).unwrap();
    assert!(sup.reconcile(now()).unwrap().config_errors.is_empty());
    sup.reconcile(now()).unwrap();
    let audit = config_audit(&t);
    assert_eq!(
        audit.iter().map(|r| (r.0.as_str(), r.2.as_str())).collect::<Vec<_>>(),
        [("config_error", "refused"), ("config_error", "refused"), ("config_ok", "ok")]
    );
}

#[test]
fn broken_file_with_no_last_good_cancels_nothing() {
    let t = TempRoot::new();
    // edge-2's file was broken before this supervisor ever saw it (or state/ was lost), and a
    // pending action for it is already there.
    t.write_host("edge-1", EDGE);
    t.write_host("edge-2", "services: [\n");
    WorldBuilder::new().node("edge-1", 5).healthy("edge-1", &["mosquitto", "zigbee2mqtt", "web"]).node("edge-2", 5).write(&t);
    let root = DataRoot::open(t.root()).unwrap();
    let mut a = homelab_core::plan::plan(homelab_core::plan::PlanInput {
        desired: &homelab_core::DesiredState {
            hosts: [("edge-2".to_owned(), homelab_core::desired::parse_host_file("f", "edge-2", "services:\n  web: {}\n").unwrap().spec)].into(),
        },
        unknown_nodes: &Default::default(),
        services: &Default::default(),
        nodes: &[(
            "edge-2".to_owned(),
            homelab_core::world::NodeState {
                last_seen: Some(crate::now()),
                status: homelab_core::NodeStatus::Up,
                disk_pressure: None,
                disks: None,
                agent_version: None,
                uptime_secs: None,
            },
        )]
        .into(),
        active: &[],
        outcomes: &[],
        memory: &Default::default(),
        policy: &homelab_core::plan::Policy { missing_grace: std::time::Duration::ZERO, ..Default::default() },
        started_at: crate::now(),
        now: crate::now(),
    })
    .create;
    root.create_action(&a.remove(0)).unwrap();
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-2-web"]);
    let out = run(&t, &["--once"], &[]);
    assert!(!out.status.success());
    assert_eq!(ids(&t, ActionState::Pending), ["redeploy-edge-2-web"]);
}
