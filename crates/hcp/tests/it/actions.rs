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
        generation: None,
    };
    root.create_action(&a).unwrap();
    a
}

/// Today's audit records as (who, channel, what, target, outcome).
fn audit(root: &DataRoot) -> Vec<(String, String, String, String, String)> {
    let read = root.read_audit(chrono::Utc::now().date_naive(), &Default::default()).unwrap();
    assert_eq!(read.skipped, 0);
    read.records.into_iter().map(|r| (r.who, r.channel, r.what, r.target, r.outcome)).collect()
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
    let rec = |outcome: &str| ("tester".to_owned(), "cli".to_owned(), "approve".to_owned(), a.id.clone(), outcome.to_owned());
    assert_eq!(audit(&root), [rec("ok"), rec("conflict")]);

    let out = hcp(&["actions", "--root", r, "list", "--state", "approved"]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.starts_with("ID "), "{s}");
    let row: Vec<&str> = s.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["redeploy-edge-1-z2m", "approved", "redeploy", "guarded", "edge-1", "z2m", "missing_service", "(missing)", "just", "now"], "{s}");
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
    let outcomes: Vec<(String, String)> = audit(&root).into_iter().map(|r| (r.2, r.4)).collect();
    assert_eq!(outcomes, [("reject".to_owned(), "ok".to_owned()), ("reject".to_owned(), "conflict".to_owned())]);
    // --reason is required.
    let out = hcp(&["actions", "--root", r.to_str().unwrap(), "reject", &a.id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn cancel_takes_back_an_approval_and_says_when_it_is_too_late() {
    let t = TempRoot::new();
    let root = init(&t);
    let a = pending(&root, "edge-1", "z2m");
    let r = t.root();
    let r = r.to_str().unwrap();
    assert_eq!(hcp(&["actions", "--root", r, "approve", &a.id]).status.code(), Some(0));
    let out = hcp(&["actions", "--root", r, "cancel", &a.id, "--reason", "not tonight"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(text(&out), "redeploy-edge-1-z2m cancelled by cli:tester\n");
    let cancelled = root.list_actions(ActionState::Cancelled).unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0].action.history.last().unwrap().note.as_deref(), Some("not tonight"));

    let out = hcp(&["actions", "--root", r, "cancel", &a.id]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out), "redeploy-edge-1-z2m is cancelled: too late to cancel, nothing changed\n");
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
    // The audit log tells the same story: one decision, seven that found it taken.
    let outcomes: Vec<String> = audit(&root).into_iter().map(|r| r.4).collect();
    assert_eq!((outcomes.iter().filter(|o| *o == "ok").count(), outcomes.iter().filter(|o| *o == "conflict").count()), (1, 7), "{outcomes:?}");
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

/// A drift.json as the supervisor writes it: web exhausted, z2m waiting for its grace.
fn write_drift(root: &DataRoot) {
    use homelab_core::drift::{DriftEntry, DriftFile, NextStep};
    use homelab_core::plan::DriftKind;
    let now = chrono::Utc::now();
    let entry = |service: &str, kind, decision, action: Option<&str>, until: Option<i64>, reason: &str| DriftEntry {
        node: "edge-1".into(),
        service: Some(service.into()),
        kind,
        trigger: if kind == DriftKind::MissingService { "missing".into() } else { "containers_not_running".into() },
        root_cause: None,
        since: Some(now - chrono::Duration::minutes(20)),
        decision,
        reason: reason.into(),
        action_id: action.map(Into::into),
        until: until.map(|s| now + chrono::Duration::seconds(s)),
    };
    let file = DriftFile {
        generated_at: now,
        drifts: vec![
            entry(
                "web",
                DriftKind::UnhealthyService,
                NextStep::RemediationExhausted,
                Some("redeploy-edge-1-web"),
                Some(600),
                "a restart and a redeploy ran and did not help",
            ),
            entry("z2m", DriftKind::MissingService, NextStep::WaitingGrace, None, Some(45), "just went missing; waiting a check pass"),
        ],
    };
    root.write_drift(&file).unwrap();
}

#[test]
fn drift_shows_what_happens_next_from_drift_json() {
    let t = TempRoot::new();
    let root = init(&t);
    let r = t.root();
    let r = r.to_str().unwrap();
    let out = hcp(&["drift", "--root", r]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("the supervisor has not reported yet"), "{}", text(&out));

    write_drift(&root);
    let out = hcp(&["drift", "--root", r]);
    let s = text(&out);
    assert_eq!(out.status.code(), Some(0), "{s}");
    assert!(s.contains("NODE") && s.contains("NEXT") && s.contains("UNTIL") && s.contains("REASON"), "{s}");
    let web = s.lines().find(|l| l.contains("redeploy-edge-1-web")).unwrap_or_else(|| panic!("{s}"));
    assert!(web.contains("remediation_exhausted") && web.contains("in 9 min") && web.contains("did not help") && web.contains("20 min ago"), "{web}");
    let z2m = s.lines().find(|l| l.contains("z2m")).unwrap();
    assert!(z2m.contains("waiting_grace") && z2m.contains("missing_service (missing)"), "{z2m}");
    assert!(s.contains("hcp actions retry ACTION"), "{s}");
    let out = hcp(&["drift", "--root", r, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["drifts"][0]["decision"], "remediation_exhausted");

    std::fs::write(t.root().join("world/drift.json"), "{").unwrap();
    let out = hcp(&["drift", "--root", r]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("drift.json") && text(&out).contains("EOF"), "{}", text(&out));
}

#[test]
fn retry_writes_a_fresh_pending_action_as_the_cli_user_then_refuses() {
    let t = TempRoot::new();
    let root = init(&t);
    let r = t.root();
    let r = r.to_str().unwrap();
    // No drift report yet: refused, nothing written.
    let out = hcp(&["actions", "--root", r, "retry", "redeploy-edge-1-web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("has not reported drift yet"), "{}", text(&out));
    write_drift(&root);
    let out = hcp(&["actions", "--root", r, "retry", "redeploy-edge-1-web"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("redeploy-edge-1-web proposed again by cli:tester"), "{}", text(&out));
    let a = root.read_active(ActionState::Pending, "redeploy-edge-1-web").unwrap().expect("pending");
    assert_eq!(a.history.len(), 1);
    assert_eq!(a.history[0].by, "cli:tester");
    assert!(a.history[0].note.as_deref().unwrap().starts_with("proposed again by cli:tester"));

    // Active now: refused with its state, nothing changes.
    let before = std::fs::read(t.root().join("actions/pending/redeploy-edge-1-web.json")).unwrap();
    let out = hcp(&["actions", "--root", r, "retry", "redeploy-edge-1-web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("redeploy-edge-1-web is already pending: nothing changed"), "{}", text(&out));
    assert_eq!(std::fs::read(t.root().join("actions/pending/redeploy-edge-1-web.json")).unwrap(), before);
    // No drift for that target.
    let out = hcp(&["actions", "--root", r, "retry", "redeploy-edge-2-web"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no drift holds for redeploy-edge-2-web"), "{}", text(&out));
    assert!(root.read_active(ActionState::Pending, "redeploy-edge-2-web").unwrap().is_none());
    let got: Vec<(String, String)> = audit(&root).into_iter().map(|r| (r.3, r.4)).collect();
    let want =
        [("edge-1", "conflict"), ("edge-1", "ok"), ("edge-1", "conflict"), ("edge-2", "conflict")].map(|(n, o)| (format!("redeploy-{n}-web"), o.to_owned()));
    assert_eq!(got, want);
}

/// Without $USER (a container's `docker exec`), the history names the uid's user, not `uid0`.
#[test]
fn the_cli_user_comes_from_passwd_without_user() {
    let t = TempRoot::new();
    let root = init(&t);
    write_drift(&root);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["actions", "--root", t.root().to_str().unwrap(), "retry", "redeploy-edge-1-web"])
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env_remove("HOMELAB_ROOT")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let a = root.read_active(ActionState::Pending, "redeploy-edge-1-web").unwrap().unwrap();
    let uid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self").unwrap().uid()
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let want = match hcp::actions::user_name(&passwd, uid) {
        Some(name) => format!("cli:{name}"),
        None => format!("cli:uid{uid}"),
    };
    assert_eq!(a.history[0].by, want);
    if uid == 0 {
        assert_eq!(a.history[0].by, "cli:root");
    }
}
