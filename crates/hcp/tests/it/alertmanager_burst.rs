//! Issue 12, the Alertmanager burst: a real Alertmanager (Debian's `prometheus-alertmanager`)
//! sends its webhooks to the UI of `hcp up`. Alertmanager groups alerts, so one webhook carries
//! 8 alerts, and the receiver gives every alert of a webhook the same `ts`: several events of one
//! node at the same instant, plus several webhooks at once for the same node. Every firing and
//! every resolved alert must end up in world state, as a replay of the event files says.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::{Alertmanager, KillOnDrop, TempRoot, free_port, wait_for, wait_until, workspace_bin};

const GROUPS: usize = 5;
const PER_GROUP: usize = 8;
const TOTAL: usize = GROUPS * PER_GROUP;
const TOKEN: &str = "burst-test-ui-token";

/// Two nodes for five groups: a node gets several webhooks at about the same time (like a node
/// with two writers), and each webhook's alerts share one instant.
fn node(group: usize) -> &'static str {
    if group < 3 { "am-a" } else { "am-b" }
}

fn service(group: usize, i: usize) -> String {
    format!("svc-{group}-{i}")
}

/// Every (node, service) the alerts map to.
fn expected() -> Vec<(String, String)> {
    (0..GROUPS).flat_map(|g| (0..PER_GROUP).map(move |i| (node(g).to_owned(), service(g, i)))).collect()
}

/// The 40 alerts for `POST /api/v2/alerts`; with `ends_at` in the past they are resolved.
fn alerts(starts_at: &str, ends_at: Option<&str>) -> String {
    let mut out = Vec::new();
    for g in 0..GROUPS {
        for i in 0..PER_GROUP {
            let mut a = serde_json::json!({
                "labels": { "alertname": "BurstDown", "group": format!("g{g}"), "node": node(g), "service": service(g, i) },
                "annotations": { "summary": format!("burst alert {g}/{i}") },
                "startsAt": starts_at,
            });
            if let Some(end) = ends_at {
                a["endsAt"] = end.into();
            }
            out.push(a);
        }
    }
    serde_json::Value::Array(out).to_string()
}

fn config(ui_port: u16) -> String {
    // One aggregation group per `group` label: its 8 alerts go out in one webhook after
    // group_wait; the resolved ones in one webhook at the next group_interval.
    Alertmanager::webhook_config(ui_port, TOKEN, "group")
}

/// Alertmanager's events on disk: (node, service, type, ts, group label).
fn alert_events(root: &Path) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(root.join("events")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(bytes) = std::fs::read(f.path()) else { continue };
            let e: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            if e["data"]["source"] == "alertmanager" {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                let group = e["data"]["labels"]["group"].as_str().unwrap_or_default().to_owned();
                out.push((s("node"), s("service"), s("type"), s("ts"), group));
            }
        }
    }
    out
}

/// Waits until Alertmanager has delivered an event of `kind` for all 40 services, and checks
/// that the repro's condition held: each group's 8 alerts came in one webhook, so they share
/// one `ts`.
fn wait_delivered(t: &TempRoot, am: &Alertmanager, kind: &str) {
    let start = Instant::now();
    let events = loop {
        let events: Vec<_> = alert_events(&t.root()).into_iter().filter(|e| e.2 == kind).collect();
        if events.len() >= TOTAL {
            break events;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Alertmanager delivered {} of {TOTAL} {kind} events in 60 s; its log:\n{}", events.len(), am.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut instants: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for e in &events {
        instants.entry(&e.4).or_default().insert(&e.3);
    }
    assert!(
        instants.len() == GROUPS && instants.values().all(|ts| ts.len() == 1),
        "Alertmanager did not send each group's {kind} alerts in one webhook (ts by group: {instants:?}); its log:\n{}",
        am.log()
    );
    let services: std::collections::BTreeSet<_> = events.iter().map(|e| (e.0.clone(), e.1.clone())).collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        {
            let mut e = expected();
            e.sort();
            e
        },
        "{kind} events for other services than the alerts"
    );
}

/// `world/services.json` of a data root: (node, service) → status, for the alerts' services.
fn statuses(root: &Path) -> BTreeMap<(String, String), String> {
    let Ok(bytes) = std::fs::read(root.join("world/services.json")) else { return BTreeMap::new() };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return BTreeMap::new() };
    expected().into_iter().filter_map(|(n, s)| v["services"][&n][&s]["status"].as_str().map(|st| ((n, s), st.to_owned()))).collect()
}

fn count(statuses: &BTreeMap<(String, String), String>, want: &str) -> usize {
    statuses.values().filter(|s| *s == want).count()
}

/// Waits (20 s) until all 40 services are `want` in world state; on timeout says how many made
/// it, which are missing, and what a replay of the same event files gives.
fn wait_world(t: &TempRoot, want: &str) {
    let start = Instant::now();
    loop {
        let now = statuses(&t.root());
        if count(&now, want) == TOTAL {
            return;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let replayed = testkit::replay(&workspace_bin("control-plane-observer"), &t.root(), Some(&t.hosts()));
            let replay = statuses(&replayed.path().join("root"));
            let wrong: Vec<String> = expected()
                .into_iter()
                .filter(|k| now.get(k).map(String::as_str) != Some(want))
                .map(|(n, s)| format!("{n}/{s}={}", now.get(&(n.clone(), s.clone())).map_or("absent", String::as_str)))
                .collect();
            panic!(
                "only {} of {TOTAL} services are {want} in world/services.json 20 s after Alertmanager delivered every event \
                 (a replay of the same event files gives {} of {TOTAL}); not {want}: {wrong:?}",
                count(&now, want),
                count(&replay, want)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A JSON file without its `generated_at`.
fn world_file(root: &Path, name: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(root.join("world").join(name)).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("generated_at");
    v
}

#[test]
fn alertmanager_burst_every_firing_and_resolved_alert_is_folded() {
    let t = TempRoot::new();
    t.write_host("uptest", "services: {}\n");
    let ui_port = free_port();
    let log = std::fs::File::create(t.path().join("hcp-up.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hcp"))
        .args(["up", "--no-agent", "--root", t.root().to_str().unwrap(), "--hosts", t.hosts().to_str().unwrap()])
        .env("NODE_NAME", "uptest")
        .env("LISTEN", format!("127.0.0.1:{ui_port}"))
        .env("UI_TOKEN", TOKEN)
        .env("RUST_LOG", "info")
        .env("VERIFY_TIMEOUT", "0")
        .env_remove("HOMELAB_ROOT")
        .env_remove("HOSTS_DIR")
        .env_remove("ALERTMANAGER_TOKEN")
        .env_remove("NODE_ALIAS_MAP")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut up = KillOnDrop(child);
    let up_log = || std::fs::read_to_string(t.path().join("hcp-up.log")).unwrap_or_default();
    wait_until("the UI of hcp up listening", Duration::from_secs(60), || {
        if let Some(status) = up.0.try_wait().unwrap() {
            panic!("hcp up exited ({status}):\n{}", up_log());
        }
        std::net::TcpStream::connect(("127.0.0.1", ui_port)).is_ok()
    });
    wait_until("the first world files", Duration::from_secs(30), || t.root().join("world/services.json").exists());

    let am = Alertmanager::start(&config(ui_port));
    let fmt = |ts: chrono::DateTime<chrono::Utc>| ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    // Starting now: an alert that started more than group_wait ago is sent at once, which could
    // split a group over several webhooks.
    let starts_at = fmt(chrono::Utc::now());

    // Firing: 5 webhooks of 8 alerts (one API call, well within group_wait).
    am.post_alerts(&alerts(&starts_at, None));
    wait_delivered(&t, &am, "service_unhealthy");
    wait_world(&t, "unhealthy");

    // Resolved: the same alerts, ended now (after they started: the firing webhook took a
    // group_wait); sent together at the group's next group_interval.
    am.post_alerts(&alerts(&starts_at, Some(&fmt(chrono::Utc::now()))));
    wait_delivered(&t, &am, "service_healthy");
    wait_world(&t, "healthy");

    // World state is the fold of every event on disk: what a replay gives.
    let replayed = testkit::replay(&workspace_bin("control-plane-observer"), &t.root(), Some(&t.hosts()));
    let replay_root = replayed.path().join("root");
    for file in ["services.json", "nodes.json"] {
        wait_for(&format!("world/{file} equal to a replay"), Duration::from_secs(10), || {
            (world_file(&t.root(), file) == world_file(&replay_root, file)).then_some(())
        });
    }

    let status = up.terminate(Duration::from_secs(40));
    assert!(status.success(), "hcp up: {status}\n{}", up_log());
}
