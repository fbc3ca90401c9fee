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

const DEADLINE: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port; killed when dropped.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approve_in_a_real_browser() {
    let fx = Fx::with(|c| c.refresh = Duration::from_secs(1));
    let id = fx.pending("edge-1", "zigbee2mqtt");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(control_plane_ui::run_on(Arc::clone(&fx.state), listener, shutdown.clone()));

    let driver = Driver::start().await;
    let profile = tempfile_dir();
    let caps = serde_json::json!({
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage",
                     format!("--user-data-dir={}", profile.display())]
        }
    });
    let caps = match caps {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let client = tokio::time::timeout(DEADLINE, ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new()).capabilities(caps).connect(&driver.url))
        .await
        .expect("WebDriver session timed out")
        .expect("WebDriver session");

    let result = tokio::time::timeout(Duration::from_secs(90), async {
        // Log in with the token as password.
        client.goto(&format!("{base}/login")).await?;
        let user = client.find(Locator::Id("login-user")).await?;
        user.clear().await?;
        user.send_keys("carol").await?;
        client.find(Locator::Id("login-token")).await?.send_keys(UI_TOKEN).await?;
        client.find(Locator::Id("login-submit")).await?.click().await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("who")).await?;

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

    shutdown.cancel();
    tokio::time::timeout(DEADLINE, server).await.expect("server stops").unwrap().unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hcp-ui-chromium-{}-{}", std::process::id(), uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}
