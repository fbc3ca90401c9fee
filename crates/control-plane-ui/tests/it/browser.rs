//! The real browser: headless Chromium through chromedriver (WebDriver, fantoccini) against the
//! UI served on a loopback port. Log in, see a pending action, approve it, watch a new action
//! appear without a reload, and read the Copy-for-AI digest back from the page.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use homelab_core::ActionState;
use tokio_util::sync::CancellationToken;

use crate::fixture::*;

pub const DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port; killed when dropped.
pub struct Driver {
    child: tokio::process::Child,
    pub url: String,
}

impl Driver {
    pub async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver) must be installed; see scripts/test-deps.sh");
        // Ready when it accepts connections.
        tokio::time::timeout(DEADLINE, async {
            while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("chromedriver did not start listening");
        Driver { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The fixture's UI served on a loopback port, and a headless Chromium session on it.
pub struct Served {
    pub base: String,
    pub client: fantoccini::Client,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _driver: Driver,
}

impl Served {
    /// Logs the browser in as `name` with the bootstrap token and waits for the signed-in page.
    pub async fn log_in(&self, name: &str) -> Result<(), fantoccini::error::CmdError> {
        self.client.goto(&format!("{}/login", self.base)).await?;
        let user = self.client.find(Locator::Id("login-user")).await?;
        user.clear().await?;
        user.send_keys(name).await?;
        self.client.find(Locator::Id("login-token")).await?.send_keys(UI_TOKEN).await?;
        self.client.find(Locator::Id("login-submit")).await?.click().await?;
        self.client.wait().at_most(DEADLINE).for_element(Locator::Id("who")).await?;
        Ok(())
    }

    pub async fn start(fx: &Fx) -> Served {
        Served::start_on(fx, tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    /// The same on a listener the test bound first (to know the UI's URL before its config).
    pub async fn start_on(fx: &Fx, listener: tokio::net::TcpListener) -> Served {
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(control_plane_ui::run_on(Arc::clone(&fx.state), listener, shutdown.clone()));
        let driver = Driver::start().await;
        let profile = tempfile_dir();
        let client = tokio::time::timeout(
            DEADLINE,
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(chromium_caps(&profile)).connect(&driver.url),
        )
        .await
        .expect("WebDriver session timed out")
        .expect("WebDriver session");
        Served { base, client, shutdown, server, _driver: driver }
    }

    /// Stops the server and serves `state` on a new loopback port instead (a restart of the UI),
    /// keeping the browser session; returns the new base URL.
    pub async fn restart_with(&mut self, state: Arc<control_plane_ui::AppState>) -> String {
        self.shutdown.cancel();
        (&mut self.server).await.expect("server task").expect("server stops cleanly");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.base = format!("http://{}", listener.local_addr().unwrap());
        self.shutdown = CancellationToken::new();
        self.server = tokio::spawn(control_plane_ui::run_on(state, listener, self.shutdown.clone()));
        self.base.clone()
    }

    /// Stops the server and chromedriver. The test closes its browser session itself, before
    /// the assertions that may still read pages over HTTP.
    pub async fn stop_server(self) {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.server).await.expect("server stops").unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_a_real_browser() {
    let fx = Fx::with(|c| c.refresh = Duration::from_secs(1));
    let id = fx.pending("edge-1", "zigbee2mqtt");
    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());

    let result = tokio::time::timeout(Duration::from_secs(90), async {
        // Log in with the token as password.
        ui.log_in("carol").await?;

        // The pending action is listed with an Approve button; press it.
        client.goto(&format!("{base}/actions")).await?;
        let row = format!("tr.action[data-id=\"{id}\"] button.approve");
        client.wait().at_most(DEADLINE).for_element(Locator::Css(&row)).await?.click().await?;
        let state = client.wait().at_most(DEADLINE).for_element(Locator::Id("action-state")).await?;
        assert_eq!(state.text().await?, "approved");

        // On the actions page it is now under Approved.
        client.goto(&format!("{base}/actions")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Css(&format!("#approved tr.action[data-id=\"{id}\"]"))).await?;

        // A new pending action written on disk shows up without a reload.
        let marker: serde_json::Value = client.execute("window.__no_reload = 42; return window.__no_reload;", vec![]).await?;
        assert_eq!(marker, 42);
        let new_id = fx.pending("edge-2", "mosquitto");
        client.wait().at_most(DEADLINE).for_element(Locator::Css(&format!("#pending tr.action[data-id=\"{new_id}\"]"))).await?;
        let still: serde_json::Value = client.execute("return window.__no_reload;", vec![]).await?;
        assert_eq!(still, 42, "the page was reloaded instead of updated in place");

        // Copy for AI: the digest lands in the page (and on the clipboard where permitted).
        client.find(Locator::Id("copy-ai")).await?.click().await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Css("#ai-digest[data-loaded=\"true\"]")).await?;
        let digest = client.find(Locator::Id("ai-digest")).await?.prop("value").await?.unwrap_or_default();
        Ok::<_, fantoccini::error::CmdError>(digest)
    })
    .await;
    let _ = client.close().await;
    let digest = result.expect("browser steps timed out").expect("browser step failed");

    let approved = fx.state.root.read_active(ActionState::Approved, &id).unwrap().expect("approved on disk");
    assert_eq!(approved.history.last().unwrap().by, "ui:carol");
    let md = reqwest::get(format!("{base}/summary.md")).await.unwrap().text().await.unwrap();
    assert_eq!(digest, md, "the copied digest is /summary.md");
    assert!(digest.contains(&id));

    ui.stop_server().await;
}

pub fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hcp-ui-chromium-{}-{}", std::process::id(), uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

pub fn chromium_caps(profile: &std::path::Path) -> serde_json::Map<String, serde_json::Value> {
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--hide-scrollbars",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    match caps {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// Where screenshots go: `$UI_SHOTS_DIR`, else /tmp/shots.
fn shots_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("UI_SHOTS_DIR").map(std::path::PathBuf::from).unwrap_or_else(|| "/tmp/shots".into());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Quarantined entries as the observer leaves them: the entry, and its reason written first.
fn seed_quarantine(root: &std::path::Path) {
    let q = root.join("quarantine/events");
    let entries: [(&str, &str, u64); 6] = [
        (
            "20260527T140311.123Z-edge-1-0badf00d.json",
            "invalid: expected value at line 1 column 1\n(from events/2026-05-27/20260527T140311.123Z-edge-1-0badf00d.json)",
            7200,
        ),
        (
            "20310527T140311.123Z-edge-2-deadbeef.json",
            "clock_skew: dated 1826d ahead of the control plane's clock (more than MAX_CLOCK_SKEW 5m): check the sending node's clock (NTP)\n(from events/2031-05-27/20310527T140311.123Z-edge-2-deadbeef.json)",
            40,
        ),
        ("link-to-outside.json", "not_regular_file: a symbolic link\n(from events/2026-05-27/link-to-outside.json)", 600),
        ("2026-13-45", "bad_day_folder: not a YYYY-MM-DD day folder\n(from events/2026-13-45)", 90_000),
        ("20260101T000000.000Z-nas-1-00000001.json", "too_old: dated 146d ago, older than the event retention (14d)", 300_000),
        ("notes.txt", "invalid: not an event file name", 3),
    ];
    for (name, reason, age) in entries {
        if name.starts_with("link") {
            std::os::unix::fs::symlink("/etc/hostname", q.join(name)).unwrap();
        } else if name.starts_with("2026-13") {
            std::fs::create_dir(q.join(name)).unwrap();
        } else {
            std::fs::write(q.join(name), "{").unwrap();
        }
        let reason_path = q.join(format!("{name}.reason"));
        std::fs::write(&reason_path, format!("{reason}\n")).unwrap();
        let t = std::time::SystemTime::now() - Duration::from_secs(age);
        std::fs::File::options().write(true).open(&reason_path).unwrap().set_modified(t).unwrap();
    }
}

/// The dashboard with quarantined files, on a phone (390 px) and a desktop (1280 px): the card is
/// there, fits the width, and screenshots of both are written for a person to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_card_on_phone_and_desktop() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mosquitto: {}\n  zigbee2mqtt:\n    depends_on: [mosquitto]\n");
    fx.pending("edge-1", "zigbee2mqtt");
    seed_quarantine(&fx.tmp.root());
    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots_dir();
    let result = tokio::time::timeout(Duration::from_secs(90), async {
        let mut sizes = Vec::new();
        for (width, height) in [(390u32, 844u32), (1280, 900)] {
            client.set_window_size(width, height).await?;
            client.goto(&format!("{base}/")).await?;
            let card = client.wait().at_most(DEADLINE).for_element(Locator::Id("quarantine")).await?;
            let count = client.find(Locator::Id("quarantine-count")).await?.text().await?;
            let text = card.text().await?;
            let layout: serde_json::Value = client
                .execute(
                    "const r = document.getElementById('quarantine').getBoundingClientRect();
                     return { inner: window.innerWidth, scroll: document.documentElement.scrollWidth, left: r.left, right: r.right, top: r.top };",
                    vec![],
                )
                .await?;
            let png = client.screenshot().await?;
            std::fs::write(shots.join(format!("dashboard-quarantine-{width}.png")), png).unwrap();
            sizes.push((width, count, text, layout));
        }
        Ok::<_, fantoccini::error::CmdError>(sizes)
    })
    .await;
    let _ = client.close().await;
    let sizes = result.expect("browser steps timed out").expect("browser step failed");
    for (width, count, text, layout) in sizes {
        assert_eq!(count, "6", "{width}px");
        assert!(text.contains("events/notes.txt") && text.contains("clock_skew") && text.contains("10 min ago"), "{width}px: {text}");
        assert!(text.contains("1 more"), "five listed, the sixth counted: {text}");
        let f = |k: &str| layout[k].as_f64().unwrap();
        assert!(f("scroll") <= f("inner"), "{width}px: the page scrolls sideways: {layout}");
        assert!(f("left") >= 0.0 && f("right") <= f("inner"), "{width}px: the card does not fit: {layout}");
        assert!(f("top") < 400.0, "{width}px: the card is near the top: {layout}");
    }
    ui.stop_server().await;
}

/// Runs a find-and-use step again when live updates replaced the element between the find and
/// the use (the page swaps in its content when it changes, and relative times change).
pub async fn unstale<T, F, Fut>(step: F) -> Result<T, fantoccini::error::CmdError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
{
    let mut tries = 0;
    loop {
        match step().await {
            Err(e) if e.is_stale_element_reference() && tries < 10 => tries += 1,
            other => return other,
        }
    }
}

/// The dashboard with the supervisor's drift rows (an action proposed, a remediation exhausted
/// with its Retry button, a service waiting for its grace) and an unreadable-files banner, on a
/// phone (390 px) and a desktop (1280 px): everything fits the width, the banner is near the
/// top, and pressing Retry writes the fresh pending action as the logged-in user. Screenshots go
/// to /tmp/shots (or UI_SHOTS_DIR) for a person to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_rows_retry_and_error_banner_on_phone_and_desktop() {
    use crate::files::{drift_entry, write_drift, write_world};
    use homelab_core::drift::NextStep;
    use homelab_core::plan::DriftKind;
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mosquitto: {}\n  zigbee2mqtt:\n    depends_on: [mosquitto]\n  mqtt: {}\n  z2m: {}\n  web: {}\n");
    write_world(&fx);
    let id = fx.pending("edge-1", "mqtt");
    write_drift(
        &fx,
        vec![
            drift_entry("edge-1", Some("mqtt"), DriftKind::UnhealthyService, NextStep::ActionCreated, Some(&id), None),
            drift_entry("edge-1", Some("web"), DriftKind::UnhealthyService, NextStep::RemediationExhausted, Some("redeploy-edge-1-web"), Some(14 * 60 + 30)),
            drift_entry("edge-1", Some("z2m"), DriftKind::MissingService, NextStep::WaitingGrace, None, Some(45)),
        ],
    );
    // A heartbeat that is not JSON: the banner names it, the daemon reads as stopped.
    std::fs::write(fx.tmp.root().join("state/heartbeat/supervisor.json"), "{\"daemon\": \"supervisor\", trunc").unwrap();
    let ui = Served::start(&fx).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots_dir();
    let result = tokio::time::timeout(Duration::from_secs(90), async {
        ui.log_in("dana").await?;
        let mut seen = Vec::new();
        for (width, height) in [(390u32, 844u32), (1280, 900)] {
            client.set_window_size(width, height).await?;
            client.goto(&format!("{base}/")).await?;
            client.wait().at_most(DEADLINE).for_element(Locator::Css("tr.drift-row[data-decision=\"remediation_exhausted\"] button.retry")).await?;
            let banner = unstale(|| async { client.find(Locator::Id("file-errors")).await?.text().await }).await?;
            let layout: serde_json::Value = client
                .execute(
                    "const b = document.getElementById('file-errors').getBoundingClientRect();
                     const t = document.querySelector('table.drift').getBoundingClientRect();
                     const btn = document.querySelector('button.retry').getBoundingClientRect();
                     return { inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
                              banner_top: b.top, banner_right: b.right, table_right: t.right, button_right: btn.right };",
                    vec![],
                )
                .await?;
            std::fs::write(shots.join(format!("dashboard-errors-{width}.png")), client.screenshot().await?).unwrap();
            // Scroll the drift section into view for its own picture.
            client.execute("document.getElementById('drift').scrollIntoView();", vec![]).await?;
            std::fs::write(shots.join(format!("dashboard-drift-{width}.png")), client.screenshot().await?).unwrap();
            let rows = client.find_all(Locator::Css("tr.drift-row")).await?.len();
            seen.push((width, banner, layout, rows));
        }
        // Retry from the dashboard: lands on the fresh pending action.
        unstale(|| async { client.find(Locator::Css("tr.drift-row[data-decision=\"remediation_exhausted\"] button.retry")).await?.click().await }).await?;
        let state = client.wait().at_most(DEADLINE).for_element(Locator::Id("action-state")).await?.text().await?;
        std::fs::write(shots.join("retry-result-1280.png"), client.screenshot().await?).unwrap();
        Ok::<_, fantoccini::error::CmdError>((seen, state))
    })
    .await;
    let _ = client.close().await;
    let (seen, state) = result.expect("browser steps timed out").expect("browser step failed");
    for (width, banner, layout, rows) in seen {
        assert!(banner.contains("state/heartbeat/supervisor.json"), "{width}px: {banner}");
        assert_eq!(rows, 3, "{width}px");
        let f = |k: &str| layout[k].as_f64().unwrap();
        assert!(f("scroll") <= f("inner"), "{width}px: the page scrolls sideways: {layout}");
        for k in ["banner_right", "table_right", "button_right"] {
            assert!(f(k) <= f("inner"), "{width}px: {k} past the edge: {layout}");
        }
        assert!(f("banner_top") < 300.0, "{width}px: the banner is near the top: {layout}");
    }
    assert_eq!(state, "pending");
    let a = fx.state.root.read_active(ActionState::Pending, "redeploy-edge-1-web").unwrap().expect("written");
    assert_eq!(a.history[0].by, "ui:dana");
    ui.stop_server().await;
}
