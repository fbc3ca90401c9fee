//! "Check now" in local mode (`--root`): a request file in the data root makes the agent run
//! that service's checks at once; the result is fresh events and the file goes. Thresholds in a
//! running agent, driven by check-now runs instead of waiting for the interval. In remote mode
//! (`--control-plane`, against the real UI server): the ingest answers carry the requests, the
//! result events finish them, and nodes never see each other's.

use std::time::Duration;

use homelab_core::Event;
use homelab_store::DataRoot;
use homelab_store::check_now::CheckNowRequest;
use testkit::TempRoot;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::{Agent, closed_port, config, events, service_events, wait_for};

const UI_TOKEN: &str = "test-ui-token-0123456789";

/// The real UI server on 127.0.0.1, on the temp data root, with an ingest token per node.
struct Ui {
    url: String,
    http: reqwest::Client,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Ui {
    async fn start(tr: &TempRoot) -> Ui {
        let mut c = control_plane_ui::Config::new(tr.root(), Some(tr.hosts()));
        c.ui_token = Some(UI_TOKEN.into());
        c.agent_tokens = Some(r#"{"edge-1": "agent-token-edge-1", "edge-2": "agent-token-edge-2"}"#.into());
        c.refresh = Duration::ZERO;
        let state = std::sync::Arc::new(control_plane_ui::AppState::new(&c).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = CancellationToken::new();
        let server = tokio::spawn(control_plane_ui::run_on(state, listener, stop.clone()));
        Ui { url, http: reqwest::Client::new(), stop, server }
    }

    /// `POST /api/v1/nodes/{node}/services/{service}/check-now`; the status and the answer.
    async fn check_now(&self, node: &str, service: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut r = self.http.post(format!("{}/api/v1/nodes/{node}/services/{service}/check-now", self.url));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// Asks as an operator; the request as written.
    async fn ask(&self, node: &str, service: &str) -> CheckNowRequest {
        let (status, body) = self.check_now(node, service, Some(UI_TOKEN)).await;
        assert_eq!(status, 202, "{body}");
        serde_json::from_value(body).unwrap()
    }

    /// Answered ingest requests (`homelab_ingest_requests_total{endpoint="events",code="200"}`).
    fn ingest_answers(&self) -> u64 {
        let port = self.url.rsplit(':').next().unwrap().parse().unwrap();
        let (status, text) = testkit::http(port, "GET", "/metrics", &[("Authorization", &format!("Bearer {UI_TOKEN}"))], "").unwrap();
        assert_eq!(status, 200, "{text}");
        text.lines().find_map(|l| l.strip_prefix(r#"homelab_ingest_requests_total{endpoint="events",code="200"} "#)).map_or(0, |n| n.trim().parse().unwrap())
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.server).await.expect("the UI stops").unwrap().unwrap();
    }
}

/// An agent configuration for `node` sending to the UI with its ingest token.
fn remote(tr: &TempRoot, node: &str, ui: &Ui) -> node_agent::Config {
    let mut c = config(tr, node);
    c.root = None;
    c.control_plane = Some(ui.url.clone());
    c.token = Some(format!("agent-token-{node}"));
    c.spool_dir = tr.path().join(format!("spool-{node}"));
    c
}

/// The event of `service` that served the request made at `at` (`data.check_now.requested_at`).
fn served_event(root: &std::path::Path, node: &str, service: &str, at: homelab_core::Timestamp) -> Option<Event> {
    let at = homelab_core::rfc3339(at);
    events(root)
        .into_iter()
        .find(|e| e.node == node && e.service.as_deref() == Some(service) && e.data.as_ref().is_some_and(|d| d["check_now"]["requested_at"] == at.as_str()))
}

fn ask(root: &DataRoot, service: &str) -> CheckNowRequest {
    let req = CheckNowRequest { node: "edge-1".into(), service: service.into(), requested_by: "cli:ops".into(), requested_at: chrono::Utc::now() };
    root.request_check_now(&req).unwrap();
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_now_runs_the_checks_at_once_and_removes_the_request() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host(
        "edge-1",
        &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port}, timeout_secs: 2 }}\n  other:\n    checks:\n      - tcp: {{ port: {port} }}\n"),
    );
    let agent = Agent::start(config(&tr, "edge-1")).await; // interval: 1 h
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("the first pass", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "port_unreachable")).await;

    // The service comes back; nobody would know for an hour, but an operator asks.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let req = ask(&root, "web");
    let recovered = wait_for("a fresh event from the check-now", Duration::from_secs(5), || {
        service_events(&path, "web").into_iter().find(|e| e.kind == "service_recovered")
    })
    .await;
    let data = recovered.data.as_ref().expect("data");
    assert_eq!(data["check_now"]["requested_by"], "cli:ops", "{data}");
    let took = recovered.ts - req.requested_at;
    assert!(took < chrono::TimeDelta::milliseconds(1500), "learned within a second (poll {:?}), took {took}", node_agent::CHECK_NOW_POLL);
    wait_for("the request file is removed once served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    // Only that service ran.
    assert_eq!(service_events(&path, "other").len(), 1, "other: only its pass");

    // A request for a service the agent does not check is dropped, with nothing emitted.
    ask(&root, "nope");
    wait_for("an unknown service's request is removed", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    assert!(service_events(&path, "nope").is_empty());
    agent.stop().await;
    drop(listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thresholds_hold_the_verdict_until_enough_runs_agree() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port}, failure_threshold: 2, success_threshold: 2 }}\n"));
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    let kinds = |n: usize| {
        let path = path.clone();
        move || {
            let ev = service_events(&path, "web");
            (ev.len() >= n).then(|| ev.into_iter().map(|e| (e.kind, e.detail.unwrap_or_default())).collect::<Vec<_>>())
        }
    };
    // First failed run: still healthy, and the detail says why.
    let got = wait_for("the first pass", Duration::from_secs(10), kinds(1)).await;
    assert_eq!(got[0].0, "service_healthy");
    assert!(got[0].1.contains("below failure_threshold"), "{got:?}");
    ask(&root, "web");
    let got = wait_for("the second failed run", Duration::from_secs(5), kinds(2)).await;
    assert_eq!(got[1].0, "port_unreachable", "{got:?}");
    // Back up: one good run is not enough, the second is a recovery.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    wait_for("served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    ask(&root, "web");
    let got = wait_for("the first good run", Duration::from_secs(5), kinds(3)).await;
    assert_eq!(got[2].0, "port_unreachable", "{got:?}");
    assert!(got[2].1.contains("waiting for success_threshold"), "{got:?}");
    wait_for("served", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    ask(&root, "web");
    let got = wait_for("the second good run", Duration::from_secs(5), kinds(4)).await;
    assert_eq!(got[3].0, "service_recovered", "{got:?}");
    agent.stop().await;
    drop(listener);
}

/// The whole way in local mode: `POST /api/v1/nodes/{node}/services/{service}/check-now` on the
/// real UI server writes the request into the data root; the agent on that root serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_request_is_served_by_the_agent() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port} }}\n  manual:\n    monitor: false\n"));
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(config(&tr, "edge-1")).await;
    let path = tr.root();
    wait_for("the first pass", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "port_unreachable")).await;
    let web = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();

    // No credentials, a service the agent does not check, a node that does not exist, a bad name.
    for (node, service, token, want) in [
        ("edge-1", "web", None, 401),
        ("edge-1", "manual", Some(UI_TOKEN), 404),
        ("edge-1", "nope", Some(UI_TOKEN), 404),
        ("edge-9", "web", Some(UI_TOKEN), 404),
        ("edge-1", "Bad_Name", Some(UI_TOKEN), 400),
    ] {
        let (status, body) = ui.check_now(node, service, token).await;
        assert_eq!(status, want, "{node}/{service} with {token:?}");
        assert!(body["error"].is_string(), "{body}");
    }
    assert!(DataRoot::open(&path).unwrap().pending_check_now("edge-1").unwrap().is_empty(), "refused requests write nothing");

    let req = ui.ask("edge-1", "web").await;
    let recovered = wait_for("the agent serves the API's request", Duration::from_secs(5), || {
        service_events(&path, "web").into_iter().find(|e| e.kind == "service_recovered")
    })
    .await;
    assert_eq!(recovered.data.as_ref().unwrap()["check_now"]["requested_by"], req.requested_by.as_str());
    let root = DataRoot::open(&path).unwrap();
    wait_for("the request file is removed", Duration::from_secs(5), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    agent.stop().await;
    ui.stop().await;
    drop(web);
}

/// Remote mode: the agent posts to the UI's ingest; the request made through the API reaches
/// it in an ingest answer, the result arrives as fresh events with `data.check_now`, and the
/// ingest of those events removes the request (what `hcp check-now --wait` waits for).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_serves_the_api_request_and_its_events_finish_it() {
    let tr = TempRoot::new();
    let port = closed_port();
    tr.write_host(
        "edge-1",
        &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {port}, timeout_secs: 2 }}\n  other:\n    checks:\n      - tcp: {{ port: {port} }}\n"),
    );
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(remote(&tr, "edge-1", &ui)).await; // interval: 1 h
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("the first pass, ingested", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "port_unreachable")).await;

    let web = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let req = ui.ask("edge-1", "web").await;
    let recovered =
        wait_for("the result as a fresh event in the data root", Duration::from_secs(10), || served_event(&path, "edge-1", "web", req.requested_at)).await;
    assert_eq!(recovered.kind, "service_recovered");
    assert_eq!(recovered.data.as_ref().unwrap()["check_now"]["requested_by"], req.requested_by.as_str());
    let took = recovered.ts - req.requested_at;
    assert!(took < chrono::TimeDelta::milliseconds(2500), "learned within a poll ({:?}), took {took}", node_agent::CHECK_NOW_POLL_REMOTE);
    wait_for("the request file is removed once its events are ingested", Duration::from_secs(10), || {
        root.pending_check_now("edge-1").unwrap().is_empty().then_some(())
    })
    .await;
    assert_eq!(service_events(&path, "other").len(), 1, "other: only its pass");
    agent.stop().await;
    ui.stop().await;
    drop(web);
}

/// A node's token sees only its node's requests: edge-1's agent never runs edge-2's, and
/// edge-2's request stays for edge-2's own agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_agent_never_gets_another_nodes_requests() {
    let tr = TempRoot::new();
    let web = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {} }}\n", web.local_addr().unwrap().port());
    tr.write_host("edge-1", &host);
    tr.write_host("edge-2", &host);
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(remote(&tr, "edge-1", &ui)).await;
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("edge-1's first pass", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.node == "edge-1")).await;

    let theirs = ui.ask("edge-2", "web").await;
    // edge-1's own request, made after edge-2's and served: edge-1's answers since then listed
    // only its own.
    let mine = ui.ask("edge-1", "web").await;
    wait_for("edge-1's request served", Duration::from_secs(10), || served_event(&path, "edge-1", "web", mine.requested_at)).await;
    wait_for("edge-1's request finished", Duration::from_secs(10), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    // Three more answers to edge-1 while edge-2's request waits.
    let answered = ui.ingest_answers();
    wait_for("three more polls", Duration::from_secs(10), || {
        let now = ui.ingest_answers();
        (now >= answered + 3).then_some(())
    })
    .await;
    assert!(served_event(&path, "edge-1", "web", theirs.requested_at).is_none(), "edge-1 ran edge-2's request");
    assert!(events(&path).iter().all(|e| e.node == "edge-1"), "only edge-1 sent events");
    assert_eq!(root.pending_check_now("edge-2").unwrap(), [theirs], "edge-2's request stays for edge-2's agent");
    agent.stop().await;
    ui.stop().await;
}

/// A plain HTTP server whose answers wait while `gate` is false; each request it gets is
/// reported on `arrived` first.
async fn gated_http(gate: tokio::sync::watch::Receiver<bool>) -> (u16, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, arrived) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (mut gate, tx) = (gate.clone(), tx.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = tx.send(());
                if gate.wait_for(|open| *open).await.is_ok() {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
                }
            });
        }
    });
    (port, arrived)
}

/// A newer request that arrives while the older one is being served is served next: the older
/// one's events do not finish it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_remote_request_made_while_the_older_runs_is_served_next() {
    let tr = TempRoot::new();
    let (gate, gate_rx) = tokio::sync::watch::channel(true);
    let (port, mut arrived) = gated_http(gate_rx).await;
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - http: {{ url: \"http://127.0.0.1:{port}/\", timeout_secs: 10 }}\n"));
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(remote(&tr, "edge-1", &ui)).await;
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("the first pass, ingested", Duration::from_secs(10), || service_events(&path, "web").into_iter().find(|e| e.kind == "service_healthy")).await;
    while arrived.try_recv().is_ok() {}

    gate.send_replace(false);
    let older = ui.ask("edge-1", "web").await;
    tokio::time::timeout(Duration::from_secs(10), arrived.recv()).await.expect("the older request's check runs").unwrap();
    // Requests are stamped to the millisecond: make sure the newer one's stamp differs.
    wait_for("a later millisecond", Duration::from_secs(1), || (chrono::Utc::now() - older.requested_at > chrono::TimeDelta::milliseconds(2)).then_some(()))
        .await;
    let newer = ui.ask("edge-1", "web").await;
    assert_ne!(newer.requested_at, older.requested_at);
    gate.send_replace(true);

    wait_for("the older request's result", Duration::from_secs(10), || served_event(&path, "edge-1", "web", older.requested_at)).await;
    wait_for("the newer request's result", Duration::from_secs(10), || served_event(&path, "edge-1", "web", newer.requested_at)).await;
    wait_for("the newer request finished", Duration::from_secs(10), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    agent.stop().await;
    ui.stop().await;
}

/// An idle remote agent polls (an empty batch about once a second, counted by the UI's
/// metrics) and the polls write nothing into events/.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_remote_agent_polls_gently_and_writes_nothing() {
    let tr = TempRoot::new();
    tr.write_host("edge-1", "services: {}\n");
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(remote(&tr, "edge-1", &ui)).await; // interval: 1 h
    let path = tr.root();
    wait_for("the first heartbeat, ingested", Duration::from_secs(10), || events(&path).into_iter().find(|e| e.kind == "node_heartbeat")).await;
    let before = events(&path).len();
    let (from, start) = (ui.ingest_answers(), std::time::Instant::now());
    let polls = 4;
    wait_for("four polls", Duration::from_secs(15), || {
        let now = ui.ingest_answers();
        (now >= from + polls).then_some(())
    })
    .await;
    let (answered, took) = (ui.ingest_answers() - from, start.elapsed());
    assert_eq!(events(&path).len(), before, "polls wrote no event");
    // About one a second: never a burst.
    assert!(answered <= took.as_secs() + 2, "{answered} polls in {took:?}");
    agent.stop().await;
    ui.stop().await;
}

/// Served without an event to say so — a healthy run of a service with `alert:` checks (whose
/// `service_healthy` would clear a firing alert), or a service the agent does not check — the
/// request is acknowledged in the next poll and removed all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_request_served_without_an_event_is_acknowledged_by_the_poll() {
    let tr = TempRoot::new();
    let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = up.local_addr().unwrap().port();
    tr.write_host("edge-1", &format!("services:\n  mixed:\n    checks:\n      - tcp: {{ port: {port} }}\n      - alert: {{ alertname: MixedDown }}\n"));
    let ui = Ui::start(&tr).await;
    let agent = Agent::start(remote(&tr, "edge-1", &ui)).await;
    let path = tr.root();
    let root = DataRoot::open(&path).unwrap();
    wait_for("the first heartbeat, ingested", Duration::from_secs(10), || events(&path).into_iter().find(|e| e.kind == "node_heartbeat")).await;
    let before = events(&path).len();
    ui.ask("edge-1", "mixed").await;
    // Not in hosts/ as the UI reads it, so not through the API: as `hcp check-now` would.
    let nope = CheckNowRequest { node: "edge-1".into(), service: "nope".into(), requested_by: "cli:ops".into(), requested_at: chrono::Utc::now() };
    root.request_check_now(&nope).unwrap();
    wait_for("both requests acknowledged and removed", Duration::from_secs(10), || root.pending_check_now("edge-1").unwrap().is_empty().then_some(())).await;
    assert_eq!(events(&path).len(), before, "no event: a healthy mixed service stays quiet");
    agent.stop().await;
    ui.stop().await;
    drop(up);
}
