//! The outbox across `kill -9`: a notifier process (this test binary run again as
//! `child_notifier`) sends 12 messages to a loopback webhook that counts them. The receiver holds
//! the 6th request open, and the process is killed with SIGKILL while it waits for the answer;
//! a second process on the same data root finishes the job. Every message arrives at least
//! once, and a message sent twice carries the same id (and body) both times.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use homelab_core::drift::{DriftEntry, DriftFile, NextStep};
use homelab_core::plan::DriftKind;
use homelab_store::DataRoot;
use tokio::sync::watch;

const SERVICES: usize = 12;
/// The request held open while the sender is killed.
const HELD: usize = 6;
const ROOT_VAR: &str = "HL_NOTIFY_CHILD_ROOT";
const URL_VAR: &str = "HL_NOTIFY_CHILD_URL";

/// Not a test of its own: the notifier process the test below starts (and kills). Without its
/// variables it returns at once.
#[test]
fn child_notifier() {
    let (Ok(root), Ok(url)) = (std::env::var(ROOT_VAR), std::env::var(URL_VAR)) else { return };
    let vars: BTreeMap<&str, String> = [
        ("NOTIFY_WEBHOOK_URL", url),
        ("NOTIFY_WEBHOOK_SECRET", "hush".to_owned()),
        ("NOTIFY_TICK", "50ms".to_owned()),
        ("NOTIFY_TIMEOUT", "30s".to_owned()),
        // One message per incident, not a digest.
        ("NOTIFY_FLOOD_LIMIT", "100".to_owned()),
    ]
    .into_iter()
    .collect();
    let cfg = homelab_notify::NotifyConfig::from_lookup(|k| vars.get(k).cloned(), |_| None).expect("a channel").expect("valid");
    let root = DataRoot::open(root).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(homelab_notify::run(cfg, root, tokio_util::sync::CancellationToken::new())).unwrap();
}

/// Killed (SIGKILL) and reaped when dropped, so a failing test leaves no process behind.
struct Sender(Child);

impl Sender {
    fn start(root: &std::path::Path, url: &str) -> Sender {
        let child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_notifier", "--nocapture", "--test-threads=1"])
            .env(ROOT_VAR, root)
            .env(URL_VAR, url)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Sender(child)
    }

    fn kill_9(&mut self) {
        // std's Child::kill is SIGKILL on Unix: no shutdown path runs.
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Default)]
struct Seen {
    /// Every request's `(id, body)` in arrival order.
    requests: Vec<(String, Vec<u8>)>,
}

#[derive(Clone)]
struct Receiver {
    seen: Arc<Mutex<Seen>>,
    release: watch::Receiver<bool>,
}

async fn hook(State(r): State<Receiver>, body: Bytes) -> StatusCode {
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let n = {
        let mut s = r.seen.lock().unwrap();
        s.requests.push((v["id"].as_str().unwrap().to_owned(), body.to_vec()));
        s.requests.len()
    };
    if n == HELD {
        // Hold the answer until the sender is dead (and then some).
        let mut release = r.release.clone();
        let _ = release.wait_for(|go| *go).await;
    }
    StatusCode::OK
}

fn row(i: usize) -> DriftEntry {
    DriftEntry {
        node: "n1".into(),
        service: Some(format!("s{i:02}")),
        kind: DriftKind::UnhealthyService,
        trigger: "containers_not_running".into(),
        root_cause: None,
        since: Some(chrono::Utc::now()),
        decision: NextStep::ActionCreated,
        reason: format!("s{i:02} is unhealthy (containers_not_running)."),
        action_id: Some(format!("container-restart-n1-s{i:02}")),
        until: None,
    }
}

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_at_least_once_across_a_kill_9() {
    let (release_tx, release) = watch::channel(false);
    let receiver = Receiver { seen: Arc::default(), release };
    let seen = receiver.seen.clone();
    let app = Router::new().route("/hook", post(hook)).with_state(receiver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path()).unwrap();
    root.write_drift(&DriftFile { generated_at: chrono::Utc::now(), drifts: (0..SERVICES).map(row).collect() }).unwrap();

    let mut first = Sender::start(dir.path(), &url);
    wait_until("the held request", || seen.lock().unwrap().requests.len() >= HELD).await;
    let held_id = seen.lock().unwrap().requests[HELD - 1].0.clone();
    first.kill_9();
    assert!(!root.list_outbox().unwrap().is_empty(), "killed mid-way: messages are still waiting");
    release_tx.send(true).unwrap();

    let _second = Sender::start(dir.path(), &url);
    wait_until("an empty outbox", || root.list_outbox().unwrap().is_empty()).await;

    let s = seen.lock().unwrap();
    let mut by_id: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (id, body) in &s.requests {
        by_id.entry(id).or_default().push(body);
    }
    // Every incident's start arrived, under one id each: the restart made no new messages.
    assert_eq!(by_id.len(), SERVICES, "{:?}", by_id.keys().collect::<Vec<_>>());
    let mut services: Vec<String> = by_id
        .values()
        .map(|bodies| {
            let v: serde_json::Value = serde_json::from_slice(bodies[0]).unwrap();
            v["notices"][0]["service"].as_str().unwrap().to_owned()
        })
        .collect();
    services.sort();
    assert_eq!(services, (0..SERVICES).map(|i| format!("s{i:02}")).collect::<Vec<_>>());
    // The one in flight at the kill was sent again, with the same id and the same body.
    assert!(by_id[held_id.as_str()].len() >= 2, "the held message was sent again after the restart");
    for (id, bodies) in &by_id {
        assert!(bodies.iter().all(|b| b == &bodies[0]), "a duplicate of {id} differs");
    }
    assert!(s.requests.len() > SERVICES, "at least one duplicate");
}
