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
}
