//! The console in a real browser (headless Chromium through chromedriver) at phone (390×844)
//! and desktop (1440×900) size, on a small fleet like a new user's: log in, read the dashboard,
//! open the pending action, see exactly what it will run, approve it from phone width. Nothing
//! scrolls sideways at 390 px. The run writes the screenshots in docs/screenshots/.

use std::time::Duration;

use fantoccini::{Client, Locator};
use homelab_core::drift::NextStep;
use homelab_core::plan::DriftKind;
use homelab_core::world::{NodeFacts, ServiceState, World};
use homelab_core::{Action, ActionState, ActionType, DiskLevel, Event, HistoryEntry, ServiceStatus};

use crate::browser::Served;
use crate::files::{drift_entry, write_drift};
use crate::fixture::*;

const DEADLINE: Duration = Duration::from_secs(20);

fn shots() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fleet like a first week: edge-1 (local) with an unhealthy web, nas-1 over SSH, and
/// garage-pi that never reported; 24 h of events, a pending redeploy, two finished restarts.
pub fn seed_fleet(fx: &Fx) -> String {
    let now = chrono::Utc::now();
    fx.tmp.write_host(
        "edge-1",
        "compose_command: docker compose\nservices:\n  web:\n    compose_dir: /srv/web\n  mqtt:\n    containers: [mosquitto]\n  z2m:\n    compose_dir: /srv/zigbee2mqtt\n    depends_on: [mqtt]\n",
    );
    fx.tmp
        .write_host("nas-1", "ssh:\n  host: 10.0.0.12\n  user: ops\ncompose_command: docker-compose\nservices:\n  jellyfin:\n    compose_dir: /srv/jellyfin\n");
    fx.tmp.write_host("garage-pi", "services:\n  zigbee-gw:\n    containers: [zigbee-gw]\n");

    let mut w = World::default();
    w.nodes.insert(
        "edge-1".into(),
        NodeFacts {
            last_seen: Some(now - chrono::Duration::seconds(12)),
            disk_pressure: Some(DiskLevel::Ok),
            agent_version: Some("0.1.0".into()),
            ..Default::default()
        },
    );
    w.nodes.insert(
        "nas-1".into(),
        NodeFacts {
            last_seen: Some(now - chrono::Duration::seconds(20)),
            disk_pressure: Some(DiskLevel::Medium),
            agent_version: Some("0.1.0".into()),
            ..Default::default()
        },
    );
    let svc = |status, reason: Option<&str>, since_min: i64, failures| ServiceState {
        status,
        reason: reason.map(Into::into),
        detail: reason.map(|_| "container web exited (137)".into()),
        since: now - chrono::Duration::minutes(since_min),
        last_event_at: now - chrono::Duration::seconds(12),
        last_event_id: uuid::Uuid::nil(),
        consecutive_failures: failures,
    };
    let e1 = w.services.entry("edge-1".into()).or_default();
    e1.insert("web".into(), svc(ServiceStatus::Unhealthy, Some("containers_not_running"), 47, 6));
    e1.insert("mqtt".into(), svc(ServiceStatus::Healthy, None, 540, 0));
    e1.insert("z2m".into(), svc(ServiceStatus::Healthy, None, 600, 0));
    w.services.entry("nas-1".into()).or_default().insert("jellyfin".into(), svc(ServiceStatus::Healthy, None, 1500, 0));
    fx.state.root.write_world(&w.services_file(now), &w.nodes_file(now, Duration::from_secs(90))).unwrap();

    // 24 h of history, one event per service per 30 min, with two incidents.
    for i in 0..48i64 {
        let t = now - chrono::Duration::minutes(30 * i + 3);
        for (node, service) in [("edge-1", "web"), ("edge-1", "mqtt"), ("edge-1", "z2m"), ("nas-1", "jellyfin")] {
            let bad = (service == "web" && i < 2) || (service == "mqtt" && (18..=19).contains(&i));
            let kind = if bad { if service == "web" { "containers_not_running" } else { "port_unreachable" } } else { "service_healthy" };
            let mut e = Event::new(t, node, kind, Some(service));
            if bad {
                e.detail = Some(if service == "web" { "container web exited (137)".into() } else { "127.0.0.1:1883: connection refused".into() });
            }
            fx.state.root.write_event(&e).unwrap();
        }
    }
    let mut e = Event::new(now - chrono::Duration::seconds(12), "edge-1", "containers_not_running", Some("web"));
    e.detail = Some("container web exited (137)".into());
    fx.state.root.write_event(&e).unwrap();

    // Finished: a restart of mqtt that helped, a restart of web that did not.
    let action = |kind: ActionType, service: &str, at: chrono::DateTime<chrono::Utc>| Action {
        id: kind.id("edge-1", Some(service)),
        kind,
        risk: kind.risk(),
        node: "edge-1".into(),
        service: Some(service.into()),
        drift: "unhealthy_service".into(),
        trigger: "containers_not_running".into(),
        root_cause: None,
        state: ActionState::Pending,
        created_at: at,
        updated_at: at,
        history: vec![HistoryEntry { state: ActionState::Pending, at, by: "supervisor".into(), note: None }],
        result: None,
        generation: None,
    };
    for (service, minutes_ago, verified) in [("mqtt", 9 * 60 + 20, true), ("web", 40, false)] {
        let at = now - chrono::Duration::minutes(minutes_ago);
        let a = action(ActionType::ContainerRestart, service, at);
        let root = &fx.state.root;
        root.create_action(&a).unwrap();
        root.transition(
            &a.id,
            ActionState::Pending,
            ActionState::Approved,
            at + chrono::Duration::seconds(40),
            if service == "mqtt" { "telegram:4242" } else { "policy" },
            None,
            |_| {},
        )
        .unwrap();
        root.transition(&a.id, ActionState::Approved, ActionState::Running, at + chrono::Duration::seconds(41), "executor", None, |_| {}).unwrap();
        let end = at + chrono::Duration::seconds(44);
        root.transition(&a.id, ActionState::Running, ActionState::Completed, end, "executor", None, |x| {
            x.result = Some(homelab_core::action::ActionResult {
                ok: true,
                output: format!("restarted {}\n", if service == "mqtt" { "mosquitto" } else { "web" }),
                started_at: Some(at + chrono::Duration::seconds(41)),
                finished_at: Some(end),
                verified: Some(verified),
                ..Default::default()
            })
        })
        .unwrap();
    }
    // Pending: the redeploy of web.
    let pending = action(ActionType::Redeploy, "web", now - chrono::Duration::minutes(9));
    fx.state.root.create_action(&pending).unwrap();
    write_drift(
        fx,
        vec![drift_entry("edge-1", Some("web"), DriftKind::UnhealthyService, NextStep::ActionCreated, Some(&pending.id), None), {
            let mut d = drift_entry("garage-pi", None, DriftKind::NodeUnreachable, NextStep::NodeUnreachable, None, None);
            d.trigger = "never_seen".into();
            d.reason = "garage-pi has never reported: install its agent; nothing is proposed for an unreachable node".into();
            d
        }],
    );
    for daemon in ["observer", "supervisor", "executor"] {
        let hb = homelab_core::Heartbeat {
            daemon: daemon.into(),
            pid: 1,
            version: "0.1.0".into(),
            started_at: now - chrono::Duration::hours(30),
            last_loop_at: now,
            interval_secs: 3600,
            counters: Default::default(),
            config_errors: vec![],
            extra: serde_json::Value::Null,
        };
        fx.state.root.write_heartbeat(daemon, &hb).unwrap();
    }
    pending.id
}

/// The text of the first element matching `css`, read in one script run (the page swaps its
/// content in place every second; a script sees one version of it).
async fn text(client: &Client, css: &str) -> Result<String, fantoccini::error::CmdError> {
    client.wait().at_most(DEADLINE).for_element(Locator::Css(css)).await?;
    let v = client.execute("const e = document.querySelector(arguments[0]); return e ? e.innerText : null;", vec![serde_json::json!(css)]).await?;
    Ok(v.as_str().map(str::to_owned).unwrap_or_default())
}

/// Clicks the element matching `css`, finding it again if a live update replaced it meanwhile.
async fn click(client: &Client, css: &str) -> Result<(), fantoccini::error::CmdError> {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let r = async { client.wait().at_most(DEADLINE).for_element(Locator::Css(css)).await?.click().await }.await;
        match r {
            Err(e) if e.is_stale_element_reference() && std::time::Instant::now() < deadline => continue,
            other => return other,
        }
    }
}

async fn no_sideways_scroll(client: &Client, what: &str) -> Result<(), fantoccini::error::CmdError> {
    let v: serde_json::Value = client
        .execute(
            "const d = document.documentElement; const wide = [...document.querySelectorAll('main *')].filter(e => e.getBoundingClientRect().right > d.clientWidth + 0.5).slice(0, 5).map(e => e.tagName + '.' + e.className + '#' + e.id);
             return { scroll: d.scrollWidth, client: d.clientWidth, wide };",
            vec![],
        )
        .await?;
    assert!(v["scroll"].as_f64().unwrap() <= v["client"].as_f64().unwrap(), "{what}: the page scrolls sideways: {v}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_on_phone_and_desktop() {
    let fx = Fx::new();
    let id = seed_fleet(&fx);
    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots();
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        // Desktop: log in, read the dashboard.
        client.set_window_size(1440, 900).await?;
        ui.log_in("alice").await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Css("svg.hb rect.bad")).await?;
        let headline = text(&client, "#headline").await?;
        let healthy = text(&client, "#count-healthy").await?;
        let garage = text(&client, ".node-card[data-node=\"garage-pi\"]").await?;
        let timeline = text(&client, "#timeline").await?;
        let next = text(&client, "tr.drift-row[data-service=\"web\"] td.next").await?;
        let times: serde_json::Value = client.execute("return [...document.querySelectorAll('main time')].every(t => t.title.endsWith(' UTC') && t.getAttribute('datetime'));", vec![]).await?;
        std::fs::write(shots.join("dashboard-desktop.png"), client.screenshot().await?).unwrap();
        // Whole pages for a person to look at (not committed).
        let review = std::env::temp_dir().join("hcp-ui-review");
        std::fs::create_dir_all(&review).unwrap();
        client.set_window_size(1440, 2600).await?;
        std::fs::write(review.join("dashboard-desktop-full.png"), client.screenshot().await?).unwrap();
        client.set_window_size(1440, 900).await?;

        // Open the pending action: exactly what approving will run.
        click(&client, &format!(".pending-card[data-id=\"{id}\"] a.button")).await?;
        let cmd = text(&client, "#run-command").await?;
        let dir = text(&client, "#run-dir").await?;
        let place = text(&client, "#plan-where").await?;
        let verify = text(&client, "#plan-verify").await?;
        let evidence = text(&client, "#evidence").await?;
        std::fs::write(shots.join("action-desktop.png"), client.screenshot().await?).unwrap();

        // Phone: the dashboard, the action page, approve.
        client.set_window_size(390, 844).await?;
        client.goto(&format!("{base}/")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("headline")).await?;
        no_sideways_scroll(&client, "dashboard at 390 px").await?;
        std::fs::write(shots.join("dashboard-phone.png"), client.screenshot().await?).unwrap();
        client.set_window_size(390, 3200).await?;
        std::fs::write(review.join("dashboard-phone-full.png"), client.screenshot().await?).unwrap();
        client.set_window_size(390, 844).await?;
        client.goto(&format!("{base}/actions/{id}")).await?;
        let phone_cmd = text(&client, "#run-command").await?;
        no_sideways_scroll(&client, "action page at 390 px").await?;
        std::fs::write(shots.join("action-phone.png"), client.screenshot().await?).unwrap();
        let visible: serde_json::Value = client.execute("const r = document.querySelector('button.approve').getBoundingClientRect(); return r.left >= 0 && r.right <= document.documentElement.clientWidth && r.width > 200;", vec![]).await?;
        click(&client, "button.approve").await?;
        let state = text(&client, "#action-state").await?;
        no_sideways_scroll(&client, "approved action at 390 px").await?;

        // Every other page fits the phone too.
        for path in ["/actions", "/events", "/nodes/garage-pi", "/nodes/edge-1", "/events?type=action:completed"] {
            client.goto(&format!("{base}{path}")).await?;
            client.wait().at_most(DEADLINE).for_element(Locator::Css("main h1")).await?;
            no_sideways_scroll(&client, &format!("{path} at 390 px")).await?;
            client.set_window_size(390, 2400).await?;
            std::fs::write(review.join(format!("{}-phone-full.png", path.trim_start_matches('/').replace(['/', '?', '=', ':'], "_"))), client.screenshot().await?).unwrap();
            client.set_window_size(390, 844).await?;
            if path == "/nodes/garage-pi" {
                std::fs::write(review.join("node-never-reported-phone.png"), client.screenshot().await?).unwrap();
            }
        }
        Ok::<_, fantoccini::error::CmdError>((headline, healthy, garage, timeline, next, times, cmd, dir, place, verify, evidence, phone_cmd, visible, state))
    })
    .await;
    let _ = client.close().await;
    let (headline, healthy, garage, timeline, next, times, cmd, dir, place, verify, evidence, phone_cmd, visible, state) =
        result.expect("browser steps timed out").expect("browser step failed");

    assert_eq!(headline, "1 action is waiting for your approval");
    assert_eq!(healthy, "3/5", "healthy of the five services hosts/ describes");
    assert!(garage.contains("never reported") && garage.contains("How to install the agent"), "{garage}");
    assert!(timeline.contains("action completed") && timeline.contains("telegram:4242") && timeline.contains("incident"), "{timeline}");
    assert!(next.contains(&id) && next.contains("waiting for your approval"), "{next}");
    assert_eq!(times, true, "every time has its exact UTC time on hover");
    assert_eq!(cmd, "docker compose up -d --force-recreate");
    assert_eq!(phone_cmd, cmd);
    assert_eq!(dir, "/srv/web");
    assert!(place.starts_with("locally"), "{place}");
    assert!(verify.contains("edge-1/web reports healthy") && verify.contains("120 s"), "{verify}");
    assert!(evidence.contains("containers_not_running") && evidence.contains("container web exited (137)"), "{evidence}");
    assert_eq!(visible, true, "the Approve button is wide and on screen at 390 px");
    assert_eq!(state, "approved");
    let a = fx.state.root.read_active(ActionState::Approved, &id).unwrap().expect("approved on disk");
    assert_eq!(a.history.last().unwrap().by, "ui:alice");
    ui.stop_server().await;
}

/// The silences and audit pages in Chromium at desktop (1440×900) and phone (390×844) width: add
/// a silence through the form, see it listed and on the node page, end it with "Expire now",
/// read both in the audit page. Nothing scrolls sideways at 390 px. Writes
/// `docs/screenshots/{silences,audit}-{desktop,phone}.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_and_audit_pages_on_phone_and_desktop() {
    let fx = Fx::new();
    seed_fleet(&fx);
    // A service the supervisor reports as silenced, and a silence that ended yesterday.
    let mut drift = fx.state.root.read_drift().unwrap().unwrap().drifts;
    let mut muted = drift_entry("nas-1", Some("jellyfin"), DriftKind::UnhealthyService, NextStep::Silenced, None, Some(50 * 60));
    muted.reason = "muted by ui:bob until 15:03 UTC (re-indexing the library), silence s-20260601T140300.000Z-0000beef".into();
    drift.push(muted);
    write_drift(&fx, drift);
    let r = fx.send(bearer_post("/api/v1/silences", UI_TOKEN, r#"{"target": "nas-1/jellyfin", "duration": "1h", "reason": "re-indexing the library"}"#)).await;
    assert_eq!(r.status, axum::http::StatusCode::CREATED, "{}", r.body);
    let old = homelab_core::silence::Silence::new(
        "s-20260101T000000.000Z-0000cafe".into(),
        homelab_core::silence::Matcher::target("edge-1/mqtt"),
        Duration::from_secs(3600),
        "broker upgrade",
        "ui:bob",
        chrono::Utc::now() - chrono::Duration::hours(30),
    )
    .unwrap();
    fx.state.root.write_silence(&old).unwrap();
    fx.state
        .root
        .append_audit(
            &homelab_store::audit::AuditRecord::new("carl", "operator", "api", "192.0.2.77", "approve", "redeploy-nas-1-jellyfin", "refused")
                .detail("not allowed: operator carl acts on groups [web]; node nas-1 is in [media]"),
            90,
        )
        .unwrap();
    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots();
    let result = tokio::time::timeout(Duration::from_secs(150), async {
        client.set_window_size(1440, 900).await?;
        ui.log_in("alice").await?;

        // Add one through the form.
        client.goto(&format!("{base}/silences")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("silence-form")).await?;
        client.find(Locator::Id("silence-target")).await?.send_keys("edge-1/web").await?;
        client.find(Locator::Id("silence-duration")).await?.select_by_value("4h").await?;
        client.find(Locator::Id("silence-reason")).await?.send_keys("moving it to the new box").await?;
        click(&client, "#silence-submit").await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Css("#active tr.silence td.why")).await?;
        let listed = text(&client, "#active").await?;
        std::fs::write(shots.join("silences-desktop.png"), client.screenshot().await?).unwrap();
        // The node page says so, with its until.
        client.goto(&format!("{base}/nodes/edge-1")).await?;
        let web_row = text(&client, "tr.svc[data-service=\"web\"]").await?;
        let nas = {
            client.goto(&format!("{base}/nodes/nas-1")).await?;
            text(&client, "tr.drift-row[data-decision=\"silenced\"] td.next").await?
        };
        let review = std::env::temp_dir().join("hcp-ui-review");
        std::fs::create_dir_all(&review).unwrap();
        std::fs::write(review.join("node-silenced-desktop.png"), client.screenshot().await?).unwrap();

        // End it.
        client.goto(&format!("{base}/silences")).await?;
        let id: serde_json::Value = client.execute("return [...document.querySelectorAll('#active tr.silence')].find(r => r.innerText.includes('edge-1/web')).dataset.id;", vec![]).await?;
        let id = id.as_str().unwrap_or_default().to_owned();
        click(&client, &format!("tr.silence[data-id=\"{id}\"] button.expire")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Css(&format!("tr.silence.ended[data-id=\"{id}\"]"))).await?;
        let active_after = text(&client, "#active").await?;

        // The audit log has both, newest first.
        client.goto(&format!("{base}/audit")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("audit")).await?;
        let audit = text(&client, "#audit tbody").await?;
        let whats: serde_json::Value = client.execute("return [...document.querySelectorAll('#audit tr.audit-row')].map(r => r.dataset.what);", vec![]).await?;
        std::fs::write(shots.join("audit-desktop.png"), client.screenshot().await?).unwrap();

        // Phone.
        client.set_window_size(390, 844).await?;
        let mut phone = Vec::new();
        for (path, shot) in [("/silences", Some("silences-phone.png")), ("/audit", Some("audit-phone.png")), ("/nodes/edge-1", None), ("/nodes/nas-1", None)] {
            client.goto(&format!("{base}{path}")).await?;
            client.wait().at_most(DEADLINE).for_element(Locator::Css("main h1")).await?;
            no_sideways_scroll(&client, &format!("{path} at 390 px")).await?;
            let nav: serde_json::Value = client.execute("const n = document.querySelector('header.top nav').getBoundingClientRect(); return n.right <= document.documentElement.clientWidth && n.height < 140;", vec![]).await?;
            phone.push((path, nav));
            if let Some(shot) = shot {
                std::fs::write(shots.join(shot), client.screenshot().await?).unwrap();
            }
            client.set_window_size(390, 2000).await?;
            std::fs::write(review.join(format!("{}-phone-full.png", path.trim_start_matches('/').replace('/', "_"))), client.screenshot().await?).unwrap();
            client.set_window_size(390, 844).await?;
        }
        Ok::<_, fantoccini::error::CmdError>((listed, web_row, nas, id, active_after, audit, whats, phone))
    })
    .await;
    let _ = client.close().await;
    let (listed, web_row, nas, id, active_after, audit, whats, phone) = result.expect("browser steps timed out").expect("browser step failed");

    assert!(
        listed.contains("edge-1/web") && listed.contains("moving it to the new box") && listed.contains("ui:alice") && listed.contains("(ends in 3 h 5"),
        "{listed}"
    );
    assert!(web_row.contains("muted until") && web_row.contains("UTC"), "{web_row}");
    assert!(
        nas.contains("SILENCED") && nas.contains("muted: nothing is proposed") && (nas.contains("(ends in 50 min)") || nas.contains("(ends in 49 min)")),
        "{nas}"
    );
    assert!(!active_after.contains("edge-1/web") && active_after.contains("nas-1/jellyfin"), "{active_after}");
    let s = fx.state.root.read_silence(&id).unwrap().expect("on disk");
    assert_eq!(s.expired_by.as_deref(), Some("ui:alice"));
    let whats: Vec<&str> = whats.as_array().unwrap().iter().filter_map(|w| w.as_str()).collect();
    let (expire_at, add_at) = (whats.iter().position(|w| *w == "silence_expire"), whats.iter().rposition(|w| *w == "silence"));
    assert!(expire_at.is_some() && add_at.is_some() && expire_at < add_at, "newest first: {whats:?}");
    assert!(audit.contains("refused") && audit.contains("carl"), "{audit}");
    for (path, nav) in phone {
        assert_eq!(nav, true, "{path}: the nav fits 390 px in at most a few lines");
    }
    ui.stop_server().await;
}

/// A service's deploys on the node page and a rolled-back redeploy's page, in Chromium at
/// desktop (1440×900) and phone (390×844) width: the history with its outcomes, the held
/// generations, "Roll back to this…" proposing a pending rollback, and the failed action saying
/// where it went back to and why. Writes `docs/screenshots/{deploys,rolled-back}-{desktop,phone}.png`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_and_a_rolled_back_action_on_phone_and_desktop() {
    use homelab_core::deploy::{DeployOutcome, DeployRecord, Generation, HeldContainer, hold_tag};
    let fx = Fx::new();
    seed_fleet(&fx);
    let root = &fx.state.root;
    let now = chrono::Utc::now();
    let at = |mins: i64| chrono::SubsecRound::trunc_subsecs(now - chrono::Duration::minutes(mins), 3);
    let generation = |mins: i64, image: &str, id: &str| {
        let gid = homelab_core::compact_ts(at(mins));
        Generation {
            id: gid.clone(),
            node: "edge-1".into(),
            service: "z2m".into(),
            project: "zigbee2mqtt".into(),
            compose_dir: "/srv/zigbee2mqtt".into(),
            taken_at: at(mins),
            held_by: Some("redeploy-edge-1-z2m".into()),
            containers: vec![HeldContainer {
                compose_service: "app".into(),
                container: "zigbee2mqtt_app_1".into(),
                image: image.into(),
                image_id: id.into(),
                repo_digest: Some(format!("registry.lan/z2m@{id}")),
                hold_tag: hold_tag("zigbee2mqtt", "app", &gid),
            }],
            files: vec![],
        }
    };
    let v1 = generation(180, "registry.lan/z2m:1.4", "sha256:1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809");
    let v2 = generation(60, "registry.lan/z2m:1.5", "sha256:9f8e7d6c5b4a392817f6e5d4c3b2a1908f7e6d5c4b3a29181f6e5d4c3b2a1908");
    for g in [&v1, &v2] {
        root.save_generation(g, &Default::default()).unwrap();
    }
    let record = |mins: i64, outcome, held: &Generation, after: &Generation, detail: Option<&str>| DeployRecord {
        action_id: "redeploy-edge-1-z2m".into(),
        kind: ActionType::Redeploy,
        started_at: at(mins),
        ended_at: Some(at(mins - 1)),
        approved_by: Some("ui:alice".into()),
        held: held.id.clone(),
        images_before: held.images_in_words(),
        images_after: Some(after.images_in_words()),
        outcome,
        rolled_back_to: (outcome == DeployOutcome::RolledBack).then(|| held.id.clone()),
        detail: detail.map(str::to_owned),
    };
    let why = "redeploy of edge-1/z2m failed its checks: container zigbee2mqtt_app_1 exited with code 1; rolled back to generation";
    root.update_deploy_history("edge-1", "z2m", |h| {
        h.upsert(record(61, DeployOutcome::Verified, &v1, &v2, None));
        h.upsert(record(20, DeployOutcome::RolledBack, &v2, &v2, Some(&format!("{why} {}; healthy again", v2.id))));
    })
    .unwrap();
    // The rolled-back redeploy, as the executor ended it.
    let mut failed = Action {
        id: "redeploy-edge-1-z2m".into(),
        kind: ActionType::Redeploy,
        risk: ActionType::Redeploy.risk(),
        node: "edge-1".into(),
        service: Some("z2m".into()),
        drift: "unhealthy_service".into(),
        trigger: "http_check_failed".into(),
        root_cause: None,
        state: ActionState::Pending,
        created_at: at(21),
        updated_at: at(21),
        history: vec![HistoryEntry {
            state: ActionState::Pending,
            at: at(21),
            by: "supervisor".into(),
            note: Some("edge-1/z2m is unhealthy (http_check_failed)".into()),
        }],
        result: None,
        generation: None,
    };
    root.create_action(&failed).unwrap();
    let id = homelab_core::ActionId::parse(&failed.id).unwrap();
    root.transition(&id, ActionState::Pending, ActionState::Approved, at(20), "ui:alice", None, |_| {}).unwrap();
    root.transition(&id, ActionState::Approved, ActionState::Running, at(20), "executor", None, |_| {}).unwrap();
    let error = format!("{why} {}; healthy again", v2.id);
    let v2_id = v2.id.clone();
    failed = root
        .transition(&id, ActionState::Running, ActionState::Failed, at(18), "executor", Some(error.clone()), move |a| {
            a.result = Some(homelab_core::action::ActionResult {
                ok: false,
                output: format!("held generation {v2_id} of edge-1/z2m: app sha256:9f8e7d6c5b4a\nRecreating zigbee2mqtt_app_1 ... done\nrolling back edge-1/z2m to generation {v2_id}\nRecreating zigbee2mqtt_app_1 ... done\n"),
                error: Some(error),
                started_at: Some(at(20)),
                finished_at: Some(at(18)),
                rolled_back_to: Some(v2_id),
                evidence: Some("container zigbee2mqtt_app_1 exited with code 1\nlast 50 log lines of zigbee2mqtt_app_1:\nlistening on :8080\nerror: cannot read /config/app.toml: missing key `database.url`\n".into()),
                ..Default::default()
            })
        })
        .unwrap();
    let failed_file = root.find_action(&failed.id).unwrap().unwrap().file_name;

    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots();
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        client.set_window_size(1440, 900).await?;
        ui.log_in("alice").await?;
        client.goto(&format!("{base}/nodes/edge-1#deploys")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("deploys")).await?;
        client.execute("document.getElementById('deploys').scrollIntoView();", vec![]).await?;
        let deploys = text(&client, "#deploys").await?;
        std::fs::write(shots.join("deploys-desktop.png"), client.screenshot().await?).unwrap();
        client.goto(&format!("{base}/actions/{}", failed.id)).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("rolled-back")).await?;
        let rolled = text(&client, "#rolled-back").await?;
        let evidence = text(&client, "#evidence-log").await?;
        client.execute("document.getElementById('result-section').scrollIntoView();", vec![]).await?;
        std::fs::write(shots.join("rolled-back-desktop.png"), client.screenshot().await?).unwrap();

        client.set_window_size(390, 844).await?;
        client.goto(&format!("{base}/actions/{}", failed.id)).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("rolled-back")).await?;
        no_sideways_scroll(&client, "rolled-back action at 390 px").await?;
        client.execute("document.getElementById('result-section').scrollIntoView();", vec![]).await?;
        std::fs::write(shots.join("rolled-back-phone.png"), client.screenshot().await?).unwrap();
        client.goto(&format!("{base}/nodes/edge-1")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("deploys")).await?;
        no_sideways_scroll(&client, "deploys at 390 px").await?;
        client.execute("document.getElementById('deploys').scrollIntoView();", vec![]).await?;
        std::fs::write(shots.join("deploys-phone.png"), client.screenshot().await?).unwrap();
        // Roll back to the older generation: a pending action, shown with what it will run.
        click(&client, "form.rollback button").await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("run-plan")).await?;
        let plan = text(&client, "#run-plan").await?;
        let state = text(&client, "#action-state").await?;
        Ok::<_, fantoccini::error::CmdError>((deploys, rolled, evidence, plan, state))
    })
    .await;
    let _ = client.close().await;
    let (deploys, rolled, evidence, plan, state) = result.expect("browser steps timed out").expect("browser step failed");

    assert!(deploys.contains("rolled back") && deploys.contains("verified") && deploys.contains("approved by ui:alice"), "{deploys}");
    assert!(deploys.contains(&v1.id) && deploys.contains(&v2.id) && deploys.contains("(running now)"), "{deploys}");
    assert!(rolled.contains(&format!("Rolled back to generation {}", v2.id)), "{rolled}");
    assert!(evidence.contains("missing key `database.url`"), "{evidence}");
    assert!(plan.contains(&format!("held generation {}", v1.id)), "{plan}");
    assert_eq!(state, "pending");
    let proposed = fx.state.root.read_active(ActionState::Pending, "rollback-edge-1-z2m").unwrap().expect("a pending rollback");
    assert_eq!((proposed.generation.as_deref(), proposed.history[0].by.as_str()), (Some(v1.id.as_str()), "ui:alice"));
    assert!(failed_file.starts_with("redeploy-edge-1-z2m--"));
    ui.stop_server().await;
}
