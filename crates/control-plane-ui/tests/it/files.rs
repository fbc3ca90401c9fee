//! The UI reads each file on its own: one broken file of the data root never makes a page or an
//! endpoint answer 500; it is named in a banner and in `/summary.errors`, and the rest renders
//! from the last good copy of that file. Drift is world/drift.json, never recomputed.

use axum::body::Body;
use axum::http::StatusCode;
use homelab_core::drift::{DriftEntry, DriftFile, NextStep};
use homelab_core::plan::DriftKind;
use homelab_core::world::{NodeFacts, ServiceState, World};
use homelab_core::{ActionState, ServiceStatus};
use serde_json::json;

use crate::fixture::*;

/// A healthy world: edge-1 up with mqtt (unhealthy) and z2m (healthy).
pub fn write_world(fx: &Fx) {
    let now = chrono::Utc::now();
    let mut w = World::default();
    w.nodes.insert("edge-1".into(), NodeFacts { last_seen: Some(now), ..Default::default() });
    for (name, status, reason) in [("mqtt", ServiceStatus::Unhealthy, Some("containers_not_running")), ("z2m", ServiceStatus::Healthy, None)] {
        w.services.entry("edge-1".into()).or_default().insert(
            name.into(),
            ServiceState {
                status,
                reason: reason.map(Into::into),
                detail: None,
                since: now,
                last_event_at: now,
                last_event_id: uuid::Uuid::nil(),
                consecutive_failures: u32::from(status == ServiceStatus::Unhealthy),
            },
        );
    }
    fx.state.root.write_world(&w.services_file(now), &w.nodes_file(now, std::time::Duration::from_secs(90))).unwrap();
}

pub fn drift_entry(node: &str, service: Option<&str>, kind: DriftKind, decision: NextStep, action: Option<&str>, until_secs: Option<i64>) -> DriftEntry {
    let now = chrono::Utc::now();
    DriftEntry {
        node: node.into(),
        service: service.map(Into::into),
        kind,
        trigger: if kind == DriftKind::MissingService { "missing".into() } else { "containers_not_running".into() },
        root_cause: None,
        since: Some(now - chrono::Duration::minutes(7)),
        decision,
        reason: match decision {
            NextStep::ActionCreated => "a container restart was proposed; waiting for approval".into(),
            NextStep::RemediationExhausted => {
                "a restart and a redeploy already ran within 15 min and did not help; nothing more is proposed until the window ends".into()
            }
            NextStep::WaitingGrace => "the service just went missing; waiting a full check pass before proposing anything".into(),
            NextStep::RejectedSnoozed => "an operator rejected it; not proposed again until the drift resolves once".into(),
            other => format!("{} (test)", other.as_str()),
        },
        action_id: action.map(Into::into),
        until: until_secs.map(|s| now + chrono::Duration::seconds(s)),
    }
}

pub fn write_drift(fx: &Fx, drifts: Vec<DriftEntry>) {
    fx.state.root.write_drift(&DriftFile { generated_at: chrono::Utc::now(), drifts }).unwrap();
}

/// Every route the issue names that renders from the view (the lookups of one action come after).
const VIEW_ROUTES: [&str; 7] = ["/summary", "/", "/actions", "/nodes/edge-1", "/metrics", "/summary.md", "/api/v1/world"];

/// A fixture per broken file: every route answers non-500, the banner on the pages, `/summary`
/// `errors` and the digest name the file, and the rest of the view is still there.
#[tokio::test]
async fn one_broken_file_never_fails_a_route() {
    struct Case {
        what: &'static str,
        /// The file to break (relative to the data root) and its broken content.
        file: &'static str,
        content: &'static str,
        /// Whether the view read a good copy of it first (then it shows the last good copy).
        had_good_copy: bool,
    }
    let cases = [
        Case {
            what: "wrong-typed field in services.json",
            file: "world/services.json",
            content: r#"{"generated_at": "2026-05-27T12:00:00Z", "services": {"edge-1": {"mqtt": {"status": "unhealthy", "consecutive_failures": "three"}}}}"#,
            had_good_copy: true,
        },
        Case {
            what: "wrong-typed field in services.json, never good",
            file: "world/services.json",
            content: r#"{"generated_at": 5, "services": {}}"#,
            had_good_copy: false,
        },
        Case {
            what: "wrong-typed field in nodes.json",
            file: "world/nodes.json",
            content: r#"{"generated_at": "2026-05-27T12:00:00Z", "nodes": {"edge-1": {"last_seen": 17}}}"#,
            had_good_copy: true,
        },
        Case {
            what: "drift.json that does not parse",
            file: "world/drift.json",
            content: "{\"generated_at\": \"2026-05-27T12:00:00Z\", \"drifts\": [",
            had_good_copy: true,
        },
        Case { what: "drift.json that never parsed", file: "world/drift.json", content: "not json", had_good_copy: false },
        Case {
            what: "pending action file that does not parse",
            file: "actions/pending/redeploy-edge-1-z2m.json",
            content: "{\"id\": \"redeploy-edge-1-z2m\", \"type\": ",
            had_good_copy: false,
        },
        Case {
            what: "running action file with a wrong-typed field",
            file: "actions/running/container-restart-edge-1-mqtt.json",
            content: r#"{"id": "container-restart-edge-1-mqtt", "type": "container_restart", "risk": 3}"#,
            had_good_copy: true,
        },
        Case { what: "heartbeat that is not JSON", file: "state/heartbeat/supervisor.json", content: "\u{0}\u{1}garbage", had_good_copy: false },
        Case { what: "heartbeat of the wrong shape", file: "state/heartbeat/executor.json", content: "[1, 2, 3]", had_good_copy: false },
    ];
    for case in cases {
        let fx = Fx::new();
        fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n  z2m: {}\n");
        write_world(&fx);
        let id = fx.pending("edge-1", "mqtt");
        write_drift(&fx, vec![drift_entry("edge-1", Some("mqtt"), DriftKind::UnhealthyService, NextStep::AlreadyActive, Some(&id), None)]);
        fx.state.root.write_heartbeat("observer", &json!({"daemon": "observer", "pid": 1, "version": "t", "started_at": "2026-05-27T12:00:00Z", "last_loop_at": "2026-05-27T12:00:00Z", "interval_secs": 5})).unwrap();
        // The action the case may break, in a good version first.
        if case.file.starts_with("actions/running/") {
            fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
            fx.state.root.transition(&id, ActionState::Approved, ActionState::Running, chrono::Utc::now(), "executor", None, |_| {}).unwrap();
        }
        if case.had_good_copy {
            let first = fx.send(get("/summary")).await.json();
            assert!(first["errors"].as_array().unwrap().is_empty(), "{}: {first}", case.what);
        } else {
            // No good copy was ever read: remove what the setup wrote so the file's first
            // version the view sees is the broken one.
            let _ = std::fs::remove_file(fx.tmp.root().join(case.file));
        }
        let path = fx.tmp.root().join(case.file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, case.content).unwrap();
        fx.state.invalidate();

        for route in VIEW_ROUTES {
            let r = fx.send(get(route)).await;
            assert!(!r.status.is_server_error(), "{}: {route} answered {}: {}", case.what, r.status, r.body);
            if matches!(route, "/" | "/actions" | "/nodes/edge-1") {
                assert!(r.body.contains("id=\"file-errors\"") && r.body.contains(case.file), "{}: {route} has no banner naming {}", case.what, case.file);
            }
            if route == "/summary.md" {
                assert!(r.body.contains("## Unreadable files") && r.body.contains(case.file), "{}: digest lacks it: {}", case.what, r.body);
            }
        }
        let s = fx.send(get("/summary")).await.json();
        let errors = s["errors"].as_array().unwrap();
        let e = errors.iter().find(|e| e["file"] == case.file).unwrap_or_else(|| panic!("{}: errors lack {}: {s}", case.what, case.file));
        assert!(!e["reason"].as_str().unwrap().is_empty());
        assert!(!e["reason"].as_str().unwrap().contains(fx.tmp.root().to_str().unwrap()), "no absolute paths: {e}");
        assert_eq!(e["last_good"], case.had_good_copy, "{}: {e}", case.what);
        assert_eq!(s["counts"]["errors"], errors.len());

        // The rest of the view is there: the other files, and this one's last good copy.
        match case.file {
            "world/services.json" if case.had_good_copy => assert_eq!(s["services"]["edge-1"]["mqtt"]["status"], "unhealthy", "{s}"),
            "world/services.json" => assert_eq!(s["services"], json!({})),
            "world/nodes.json" => assert_eq!(s["nodes"]["edge-1"]["status"], "up", "{s}"),
            "world/drift.json" if case.had_good_copy => {
                assert_eq!(s["drift"][0]["action_id"], id.as_str());
                assert_eq!(s["drift_report"]["state"], "unreadable");
                assert!(s["drift_report"]["message"].as_str().unwrap().contains("last good copy"), "{s}");
            }
            "world/drift.json" => {
                assert_eq!(s["drift"], json!([]), "never recomputed");
                assert_eq!(s["drift_report"]["state"], "unreadable");
                let page = fx.send(get("/")).await.body;
                assert!(page.contains("does not parse"), "{}", case.what);
            }
            f if f.starts_with("actions/running/") => assert_eq!(s["actions"]["running"][0]["id"], id.as_str(), "last good copy of the action: {s}"),
            f if f.starts_with("actions/pending/") => assert_eq!(s["actions"]["pending"].as_array().unwrap().len(), 1, "the readable one stays: {s}"),
            f if f.starts_with("state/heartbeat/") => {
                let daemon = std::path::Path::new(f).file_stem().unwrap().to_str().unwrap();
                assert_eq!(s["daemons"][daemon]["stopped"], true, "{s}");
                assert_eq!(s["daemons"]["observer"]["last_loop_at"], "2026-05-27T12:00:00.000Z");
            }
            _ => {}
        }
        if case.file != "world/services.json" {
            assert_eq!(s["services"]["edge-1"]["z2m"]["status"], "healthy", "{}: {s}", case.what);
        }

        // Looking up one action never answers 500: the action, or for a broken action file a
        // 409 naming it (or, once the store moved it to quarantine/actions/, a 404 naming that).
        let probe_id =
            if case.file.starts_with("actions/") { std::path::Path::new(case.file).file_stem().unwrap().to_str().unwrap().to_owned() } else { id.clone() };
        for route in [format!("/api/v1/actions/{probe_id}"), format!("/actions/{probe_id}")] {
            let r = fx.send(get(&route)).await;
            assert!(!r.status.is_server_error(), "{}: {route} answered {}: {}", case.what, r.status, r.body);
            if case.file.starts_with("actions/") {
                let name = std::path::Path::new(case.file).file_name().unwrap().to_str().unwrap();
                let clear = (r.status == StatusCode::CONFLICT && r.body.contains(case.file))
                    || (r.status == StatusCode::NOT_FOUND && r.body.contains(&format!("quarantine/actions/{name}")));
                assert!(clear, "{}: {route}: {} {}", case.what, r.status, r.body);
            } else {
                assert_eq!(r.status, StatusCode::OK, "{}: {route}", case.what);
            }
        }
        if case.file.starts_with("actions/") && !path.exists() {
            // Quarantined by the store meanwhile: the view lists it there.
            fx.state.invalidate();
            let s = fx.send(get("/summary")).await.json();
            assert!(s["quarantine"]["recent"].as_array().unwrap().iter().any(|q| q["file"].as_str().unwrap().starts_with("quarantine/actions/")), "{s}");
            continue;
        }
        // Fixing the file clears the error.
        std::fs::remove_file(&path).unwrap();
        fx.state.invalidate();
        let s = fx.send(get("/summary")).await.json();
        assert!(s["errors"].as_array().unwrap().iter().all(|e| e["file"] != case.file), "{}: {s}", case.what);
    }
}

/// `GET /api/v1/actions/{id}` for an id whose file does not parse is a clear 409 naming the
/// file, never a 500; once quarantined, a 404 that points at the quarantined file and its
/// reason; the dashboard's quarantine card lists it.
#[tokio::test]
async fn unreadable_and_quarantined_action_files() {
    let fx = Fx::new();
    let running = fx.tmp.root().join("actions/running/redeploy-n1-web.json");
    std::fs::write(&running, "{ not json").unwrap();
    // The view reports it without touching it.
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["errors"][0]["file"], "actions/running/redeploy-n1-web.json", "{s}");
    assert!(running.exists(), "a GET of the view moves nothing");
    let r = fx.send(get("/api/v1/actions/redeploy-n1-web")).await;
    if r.status == StatusCode::CONFLICT {
        // A store that leaves unreadable files in place: a clear 409 naming the file.
        let b = r.json();
        assert_eq!(b["code"], "unreadable");
        assert!(b["error"].as_str().unwrap().contains("actions/running/redeploy-n1-web.json"), "{b}");
        let page = fx.send(get("/actions/redeploy-n1-web")).await;
        assert_eq!(page.status, StatusCode::CONFLICT);
        assert!(page.body.contains("does not parse"), "{}", page.body);
        // Quarantined as the supervisor/executor do it: moved aside with a reason.
        let q = fx.tmp.root().join("quarantine/actions");
        std::fs::write(
            q.join("redeploy-n1-web.json.reason"),
            "unreadable action file (from actions/running/redeploy-n1-web.json): expected ident at line 1 column 3\n",
        )
        .unwrap();
        std::fs::rename(&running, q.join("redeploy-n1-web.json")).unwrap();
        fx.state.invalidate();
    } else {
        // The store moved it to quarantine/actions/ while looking it up.
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
        assert!(!running.exists());
    }
    let r = fx.send(get("/api/v1/actions/redeploy-n1-web")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let b = r.json();
    assert_eq!(b["quarantine"][0]["file"], "quarantine/actions/redeploy-n1-web.json", "{b}");
    assert!(b["quarantine"][0]["reason"].as_str().unwrap().contains("from actions/running/redeploy-n1-web.json"), "{b}");
    // A similar id is not confused with it.
    assert!(fx.send(get("/api/v1/actions/redeploy-n1-we")).await.json().get("quarantine").is_none());
    let page = fx.send(get("/actions/redeploy-n1-web")).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("quarantine/actions/redeploy-n1-web.json"), "{}", page.body);
    let dash = fx.send(get("/")).await;
    assert!(
        dash.body.contains("id=\"quarantine\"") && dash.body.contains("actions/redeploy-n1-web.json") && dash.body.contains("from actions/running/"),
        "{}",
        dash.body
    );
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["quarantine"]["recent"][0]["file"], "quarantine/actions/redeploy-n1-web.json");
}

/// The dashboard and node page show the supervisor's drift rows: decision, reason, until as a
/// relative time and a link to the action; before drift.json exists they say so.
#[tokio::test]
async fn drift_rows_come_from_drift_json() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n  z2m: {}\n  web: {}\n");
    write_world(&fx);
    let page = fx.send(get("/")).await.body;
    assert!(page.contains("The supervisor has not reported yet"), "{page}");
    assert!(!page.contains("drift-row"), "nothing recomputed: {page}");

    let id = fx.pending("edge-1", "mqtt");
    write_drift(
        &fx,
        vec![
            drift_entry("edge-1", Some("mqtt"), DriftKind::UnhealthyService, NextStep::ActionCreated, Some(&id), None),
            drift_entry("edge-1", Some("web"), DriftKind::UnhealthyService, NextStep::RemediationExhausted, Some("redeploy-edge-1-web"), Some(14 * 60 + 30)),
            drift_entry("edge-1", Some("z2m"), DriftKind::MissingService, NextStep::WaitingGrace, None, Some(45)),
        ],
    );
    fx.state.invalidate();
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["drift_report"]["state"], "reported");
    assert_eq!(s["drift"].as_array().unwrap().len(), 3);
    assert_eq!(s["drift"][1]["decision"], "remediation_exhausted");
    assert!(s["drift"][1]["until"].is_string() && s["drift"][1]["reason"].as_str().unwrap().contains("did not help"));
    // The pending action's reason and its drift row come from files and agree.
    assert_eq!(s["actions"]["pending"][0]["drift"], s["drift"][0]["kind"]);
    assert_eq!(s["actions"]["pending"][0]["trigger"], s["drift"][0]["trigger"]);

    for path in ["/", "/nodes/edge-1"] {
        let page = fx.send(get(path)).await.body;
        for want in [
            "data-decision=\"action_created\"",
            &format!("href=\"/actions/{id}\""),
            "remediation exhausted",
            "did not help",
            "ends in 14 min",
            "waiting grace",
            "ends in 4", // 45 s, give or take the test's own time
            "log in to retry",
        ] {
            assert!(page.contains(want), "{path} lacks {want:?}: {page}");
        }
    }
    // The action's own page shows what the supervisor says about it now.
    let page = fx.send(get(&format!("/actions/{id}"))).await.body;
    assert!(page.contains("id=\"drift-now\" data-decision=\"action_created\"") && page.contains("waiting for approval"), "{page}");
    let md = fx.send(get("/summary.md")).await.body;
    assert!(
        md.contains("edge-1/web: unhealthy_service (containers_not_running)")
            && md.contains("next: remediation_exhausted, action: redeploy-edge-1-web, until "),
        "{md}"
    );

    // Logged in, the exhausted row has a Retry button with the CSRF token.
    let cookie = login(&fx, "alice").await;
    let page = fx.send(req("GET", "/", "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await.body;
    assert!(page.contains("action=\"/actions/redeploy-edge-1-web/retry\"") && page.contains(">Retry</button>"), "{page}");
    assert_eq!(page.matches("class=\"retry\"").count(), 1, "only the exhausted row: {page}");
}

/// A broken host file: the UI keeps its last good version like the supervisor, so that node's
/// services are never marked "(not desired)"; a broken file the UI never saw good counts as
/// unknown (not "not desired") too, and the supervisor's state/hosts_last_good.json is used.
#[tokio::test]
async fn broken_host_file_keeps_the_last_good_version() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n  z2m: {}\n");
    write_world(&fx);
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["services"]["edge-1"]["z2m"]["desired"], true);
    fx.tmp.write_host("edge-1", "services:\n  mqtt: { nope: [ }\n");
    fx.state.invalidate();
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["counts"]["config_errors"], 1, "{s}");
    assert_eq!(s["services"]["edge-1"]["z2m"]["desired"], true, "last good version in force: {s}");
    let page = fx.send(get("/")).await.body;
    assert!(!page.contains("(not desired)"), "{page}");

    // A fresh UI that never saw the good file: from the supervisor's last good copy.
    let fresh = Fx::new();
    fresh.tmp.write_host("edge-1", "services:\n  mqtt: { nope: [ }\n");
    write_world(&fresh);
    let good = homelab_core::desired::parse_host_file("hosts/edge-1/services.yaml", "edge-1", "services:\n  mqtt: {}\n").unwrap();
    fresh.state.root.write_hosts_last_good(&std::collections::BTreeMap::from([("edge-1".to_owned(), good)])).unwrap();
    let s = fresh.send(get("/summary")).await.json();
    assert_eq!(s["services"]["edge-1"]["mqtt"]["desired"], true);
    assert_eq!(s["services"]["edge-1"]["z2m"]["desired"], false, "not in the last good version");
    // And without any last good version: unknown, not "not desired".
    let bare = Fx::new();
    bare.tmp.write_host("edge-1", "services:\n  mqtt: { nope: [ }\n");
    write_world(&bare);
    let s = bare.send(get("/summary")).await.json();
    assert_eq!(s["services"]["edge-1"]["z2m"]["desired"], true, "{s}");
    assert!(!bare.send(get("/")).await.body.contains("(not desired)"));
}
