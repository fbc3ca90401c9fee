//! `hcp deploys` shows a service's history and held generations; `hcp rollback` proposes a
//! pending rollback to one of them, refusing one that is not held.

use homelab_core::ActionState;
use homelab_core::deploy::{DeployOutcome, DeployRecord, Generation, HeldContainer, hold_tag};
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::{hcp, text};

#[test]
fn deploys_lists_history_and_generations_and_rollback_proposes_one() {
    let t = TempRoot::new();
    let root = DataRoot::open(t.root()).unwrap();
    let id = "20261207T230102.123Z";
    let g = Generation {
        id: id.into(),
        node: "edge-1".into(),
        service: "web".into(),
        project: "web".into(),
        compose_dir: "/srv/web".into(),
        taken_at: homelab_core::parse_compact_ts(id).unwrap(),
        held_by: Some("redeploy-edge-1-web".into()),
        containers: vec![HeldContainer {
            compose_service: "app".into(),
            container: "web_app_1".into(),
            image: "app:v1".into(),
            image_id: "sha256:aabbccddeeff00112233".into(),
            repo_digest: None,
            hold_tag: hold_tag("web", "app", id),
        }],
        files: vec![],
    };
    root.save_generation(&g, &Default::default()).unwrap();
    let record = DeployRecord {
        action_id: "redeploy-edge-1-web".into(),
        kind: homelab_core::ActionType::Redeploy,
        started_at: g.taken_at,
        ended_at: Some(g.taken_at),
        approved_by: Some("ui:ann".into()),
        held: id.into(),
        images_before: "app sha256:aabbccddeeff".into(),
        images_after: Some("app sha256:99887766554433".into()),
        outcome: DeployOutcome::RolledBack,
        rolled_back_to: Some(id.into()),
        detail: Some("container web_app_1 exited with code 1".into()),
    };
    root.update_deploy_history("edge-1", "web", |h| h.upsert(record)).unwrap();
    let r = t.root();
    let r = r.to_str().unwrap();

    let out = hcp(&["deploys", "--root", r, "edge-1/web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s = text(&out);
    assert!(s.contains("rolled_back") && s.contains("ui:ann") && s.contains("exited with code 1"), "{s}");
    assert!(s.contains(&format!("{id}  ")) && s.contains("app sha256:aabbccddeeff"), "{s}");
    let out = hcp(&["deploys", "--root", r, "--json", "edge-1/web"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["generations"][0]["id"], id);
    assert_eq!(v["history"]["records"][0]["outcome"], "rolled_back");
    assert_eq!(hcp(&["deploys", "--root", r, "edge-1"]).status.code(), Some(1), "NODE/SERVICE is required");

    let out = hcp(&["rollback", "--root", r, "edge-1/web", id, "--reason", "v2 broke logins"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(text(&out), "rollback-edge-1-web proposed by cli:tester: pending (approve with: hcp actions approve rollback-edge-1-web)\n");
    let found = root.find_action("rollback-edge-1-web").unwrap().unwrap();
    assert_eq!((found.state, found.action.generation.as_deref()), (ActionState::Pending, Some(id)));
    let out = hcp(&["rollback", "--root", r, "edge-1/web", "20200101T000000.000Z"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is not held"), "{}", text(&out));
}
