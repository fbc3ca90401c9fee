//! `hcp actions`: approve and reject through the same rename rules as the UI; someone else
//! deciding first is refused with the current state and nothing changes.

use std::os::unix::fs::PermissionsExt;

use homelab_core::{Action, ActionState, ActionType};
use homelab_store::DataRoot;
use testkit::TempRoot;

use crate::{hcp, text};

fn pending(root: &DataRoot, node: &str, service: &str) -> Action {
    let now = chrono::Utc::now();
    let kind = ActionType::Redeploy;
    let a = Action {
        id: kind.id(node, Some(service)),
        kind,
        risk: kind.risk(),
        node: node.into(),
        service: Some(service.into()),
        drift: "missing_service".into(),
        trigger: "missing".into(),
        root_cause: None,
        state: ActionState::Pending,
        created_at: now,
        updated_at: now,
        history: vec![homelab_core::HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None }],
        result: None,
    };
    root.create_action(&a).unwrap();
    a
}

fn init(t: &TempRoot) -> DataRoot {
    let out = hcp(&["init", "--root", t.root().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    DataRoot::open(t.root()).unwrap()
}

#[test]
fn init_creates_every_folder_with_private_state() {
    let t = TempRoot::new();
    init(&t);
    for f in homelab_store::FOLDERS {
        assert!(t.root().join(f).is_dir(), "{f}");
    }
    for private in ["state", "state/secrets"] {
        let mode = std::fs::metadata(t.root().join(private)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{private}");
    }
    // Idempotent.
    init(&t);
}

#[test]
fn approve_moves_a_pending_action_and_records_the_operator() {
    let t = TempRoot::new();
    let root = init(&t);
    let a = pending(&root, "edge-1", "z2m");
    let r = t.root();
    let r = r.to_str().unwrap();
    let out = hcp(&["actions", "--root", r, "approve", &a.id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let got = root.read_active(ActionState::Approved, &a.id).unwrap().expect("in approved/");
    let last = got.history.last().unwrap();
    assert_eq!((last.state, last.by.as_str()), (ActionState::Approved, "cli:tester"));
    assert!(root.read_active(ActionState::Pending, &a.id).unwrap().is_none());

    // Approving again changes nothing and says where it is.
    let out = hcp(&["actions", "--root", r, "approve", &a.id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("redeploy-edge-1-z2m is approved, not pending: nothing changed"), "{}", text(&out));
    let again = root.read_active(ActionState::Approved, &a.id).unwrap().unwrap();
    assert_eq!(again.history.len(), 2);

    let out = hcp(&["actions", "--root", r, "list", "--state", "approved"]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.starts_with("ID "), "{s}");
    let row: Vec<&str> = s.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["redeploy-edge-1-z2m", "approved", "redeploy", "guarded", "edge-1", "z2m", "missing_service", "(missing)", "0s", "ago"], "{s}");
    let out = hcp(&["actions", "--root", r, "list", "--state", "pending"]);
    assert_eq!(text(&out), "no actions\n");

    let out = hcp(&["actions", "--root", r, "show", &a.id]);
    let s = text(&out);
    assert!(s.contains("state      approved") && s.contains("cli:tester") && s.contains("supervisor"), "{s}");
    let out = hcp(&["actions", "--root", r, "show", "--json", &a.id]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], "redeploy-edge-1-z2m");
}

#[test]
fn reject_records_the_reason_and_lands_in_a_timestamped_file() {
    let t = TempRoot::new();
    let root = init(&t);
    let a = pending(&root, "edge-1", "z2m");
    let r = t.root();
    let out = hcp(&["actions", "--root", r.to_str().unwrap(), "reject", &a.id, "--reason", "planned maintenance"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rejected = root.list_actions(ActionState::Rejected).unwrap();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].file_name.starts_with("redeploy-edge-1-z2m--"), "{}", rejected[0].file_name);
    let last = rejected[0].action.history.last().unwrap();
    assert_eq!(last.note.as_deref(), Some("planned maintenance"));
    assert_eq!(last.by, "cli:tester");

    let out = hcp(&["actions", "--root", r.to_str().unwrap(), "reject", &a.id, "--reason", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is rejected, not pending"), "{}", text(&out));
    // --reason is required.
    let out = hcp(&["actions", "--root", r.to_str().unwrap(), "reject", &a.id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn racing_approvals_and_rejections_have_exactly_one_winner() {
    let t = TempRoot::new();
    let root = init(&t);
    let a = pending(&root, "edge-1", "mosquitto");
    let r = t.root().to_str().unwrap().to_owned();
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let (r, id) = (r.clone(), a.id.clone());
            std::thread::spawn(move || {
                if i % 2 == 0 { hcp(&["actions", "--root", &r, "approve", &id]) } else { hcp(&["actions", "--root", &r, "reject", &id, "--reason", "race"]) }
            })
        })
        .collect();
    let outs: Vec<_> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    let winners = outs.iter().filter(|o| o.status.code() == Some(0)).count();
    assert_eq!(winners, 1, "{:#?}", outs.iter().map(text).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| o.status.code() != Some(0)) {
        assert_eq!(o.status.code(), Some(1));
        assert!(text(o).contains("not pending: nothing changed"), "{}", text(o));
    }
    let found = root.find_action(&a.id).unwrap().unwrap();
    assert_eq!(found.action.history.len(), 2, "one decision recorded: {:?}", found.action.history);
    let in_folders: usize = ActionState::ALL.iter().map(|s| root.list_actions(*s).unwrap().len()).sum();
    assert_eq!(in_folders, 1);
}

#[test]
fn unknown_ids_bad_ids_and_a_missing_root_fail_clearly() {
    let t = TempRoot::new();
    let _root = init(&t);
    let r = t.root();
    let r = r.to_str().unwrap();
    let out = hcp(&["actions", "--root", r, "approve", "redeploy-edge-1-nothing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no action redeploy-edge-1-nothing"), "{}", text(&out));
    let out = hcp(&["actions", "--root", r, "approve", "../../etc/passwd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("must start with a lowercase letter"), "{}", text(&out));
    let out = hcp(&["actions", "--root", t.path().join("nope").to_str().unwrap(), "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is not a data root"), "{}", text(&out));
    let out = hcp(&["actions", "--root", r, "list", "--state", "done"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("one of pending, approved"), "{}", text(&out));
}
