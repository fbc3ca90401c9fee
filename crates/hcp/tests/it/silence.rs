//! `hcp silence add|list|expire` on a temp data root.

use testkit::TempRoot;

use super::{hcp, text};

#[test]
fn add_list_expire() {
    let t = TempRoot::new();
    let root = t.root();
    let root = root.to_str().unwrap();
    assert!(hcp(&["init", "--root", root]).status.success());
    let out = hcp(&["silence", "add", "edge-1/web", "--for", "1h", "--reason", "moving the disk", "--root", root]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("edge-1/web muted until"), "{said}");
    let id = said.trim().rsplit_once('(').unwrap().1.trim_end_matches(')').to_owned();

    let list = hcp(&["silence", "list", "--json", "--root", root]);
    let silences: Vec<serde_json::Value> = String::from_utf8_lossy(&list.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(silences.len(), 1, "{}", text(&list));
    assert_eq!(silences[0]["id"], id.as_str());
    assert_eq!(silences[0]["reason"], "moving the disk");
    assert_eq!(silences[0]["created_by"], "cli:tester");

    let out = hcp(&["silence", "expire", &id, "--root", root]);
    assert!(out.status.success(), "{}", text(&out));
    let list = text(&hcp(&["silence", "list", "--root", root]));
    assert!(list.contains(&id) && list.contains("ended") && !list.contains("active"), "{list}");

    // Refused with a clear message: no duration, an unknown action type.
    let out = hcp(&["silence", "add", "edge-1", "--reason", "x", "--root", root]);
    assert!(!out.status.success());
    let out = hcp(&["silence", "add", "--type", "reboot", "--for", "1h", "--reason", "x", "--root", root]);
    assert!(!out.status.success() && text(&out).contains("unknown action type"), "{}", text(&out));

    // Both changes are in the audit log (the refused adds wrote nothing, so nothing to record).
    let read = homelab_store::DataRoot::open(t.root()).unwrap().read_audit(chrono::Utc::now().date_naive(), &Default::default()).unwrap();
    let got: Vec<(&str, &str, &str, &str)> = read.records.iter().map(|r| (r.who.as_str(), r.what.as_str(), r.target.as_str(), r.outcome.as_str())).collect();
    assert_eq!(got, [("tester", "silence", "edge-1/web", "ok"), ("tester", "silence_expire", id.as_str(), "ok")]);
    assert!(read.records[0].detail.as_deref().is_some_and(|d| d.contains("moving the disk") && d.contains(&id)), "{:?}", read.records[0]);
}
