//! Delivery to the control plane through the spool: an ingest server that goes away and comes
//! back receives every event once, in order.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use homelab_core::Event;
use testkit::TempRoot;
use tokio_util::sync::CancellationToken;

use crate::{Agent, config, run_once, wait_for};

type Received = Arc<Mutex<Vec<Event>>>;

/// A tiny ingest endpoint: records every accepted POST body, answers 401 to a wrong token.
struct Ingest {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Ingest {
    async fn start(addr: SocketAddr, received: Received) -> Ingest {
        let app = axum::Router::new()
            .route(
                "/api/v1/events",
                axum::routing::post(|State(rx): State<Received>, headers: HeaderMap, body: String| async move {
                    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer node-token") {
                        return StatusCode::UNAUTHORIZED;
                    }
                    // An array is the agent's poll for check-now requests (`[]`).
                    let events: Vec<Event> = serde_json::from_str(&body).or_else(|_| serde_json::from_str(&body).map(|e| vec![e])).unwrap();
                    rx.lock().unwrap().extend(events);
                    StatusCode::ACCEPTED
                }),
            )
            .with_state(received);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let stop = CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await.unwrap();
        });
        Ingest { stop, task }
    }

    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task).await.unwrap().unwrap();
    }
}

fn spooled(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().filter_map(|e| e.file_name().to_str().map(str::to_owned)).filter(|n| n.ends_with(".json") && !n.starts_with('.')).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_control_plane_outage_once_and_in_order() {
    let tr = TempRoot::new();
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {} }}\n", open.local_addr().unwrap().port()));
    let received: Received = Arc::default();
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let ingest = Ingest::start(addr, received.clone()).await;

    let mut cfg = config(&tr, "edge-1");
    cfg.root = None;
    cfg.control_plane = Some(format!("http://{addr}/"));
    cfg.token = Some("node-token".into());
    cfg.check_interval = Duration::from_millis(200);
    let spool_dir = cfg.spool_dir.clone();
    let agent = Agent::start(cfg).await;

    wait_for("first deliveries", Duration::from_secs(10), || (received.lock().unwrap().len() >= 3).then_some(())).await;
    ingest.stop().await;
    let during_outage = wait_for("events piling up in the spool", Duration::from_secs(15), || {
        let s = spooled(&spool_dir);
        (s.len() >= 6).then_some(s)
    })
    .await;
    let ingest = Ingest::start(addr, received.clone()).await;
    wait_for("the spool drained", Duration::from_secs(30), || spooled(&spool_dir).is_empty().then_some(())).await;
    agent.stop().await;
    // Anything spooled in the last instant before the stop stays for the next start; deliver it.
    ingest.stop().await;
    let ingest = Ingest::start(addr, received.clone()).await;
    let mut once = config(&tr, "edge-1");
    once.root = None;
    once.control_plane = Some(format!("http://{addr}"));
    once.token = Some("node-token".into());
    once.spool_dir = spool_dir.clone();
    run_once(once).await.unwrap();
    assert!(spooled(&spool_dir).is_empty());
    ingest.stop().await;

    let got = received.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<_> = got.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), got.len(), "no event delivered twice");
    let names: Vec<String> = got.iter().map(Event::file_name).collect();
    for file in &during_outage {
        let event_name = file.split_once('-').unwrap().1;
        assert!(names.iter().any(|n| n == event_name), "{event_name} spooled during the outage never arrived");
    }
    assert!(got.windows(2).all(|w| w[0].ts <= w[1].ts), "delivered in order");
    drop(open);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_without_a_control_plane_keeps_the_events_and_says_so() {
    let tr = TempRoot::new();
    tr.write_host("edge-1", "services: {}\n");
    let mut cfg = config(&tr, "edge-1");
    cfg.root = None;
    cfg.control_plane = Some(format!("http://127.0.0.1:{}", crate::closed_port()));
    cfg.token = Some("node-token".into());
    let spool_dir = cfg.spool_dir.clone();
    let err = run_once(cfg).await.unwrap_err().to_string();
    assert!(err.contains("unreachable") && err.contains("spool"), "{err}");
    assert!(!spooled(&spool_dir).is_empty(), "the heartbeat waits in the spool");
}

/// An ingest that answers like the control plane's clock check: 422 with a JSON error for an
/// event dated more than 5 minutes ahead, 200 for the rest.
async fn clock_checking_ingest(received: Received) -> (String, CancellationToken) {
    let app = axum::Router::new()
        .route(
            "/api/v1/events",
            axum::routing::post(|State(rx): State<Received>, body: String| async move {
                let event: Event = serde_json::from_str(&body).unwrap();
                if event.ts > chrono::Utc::now() + chrono::Duration::minutes(5) {
                    let error = serde_json::json!({"error": "event 0: clock_skew: dated 5y ahead of the control plane's clock", "code": "clock_skew"});
                    return (StatusCode::UNPROCESSABLE_ENTITY, axum::Json(error));
                }
                rx.lock().unwrap().push(event);
                (StatusCode::OK, axum::Json(serde_json::json!({"written": 1, "duplicates": 0})))
            }),
        )
        .with_state(received);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(async move { s.cancelled().await }).await.unwrap() });
    (url, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_event_is_set_aside_with_its_reason_and_the_next_one_delivered() {
    use node_agent::sink::{Deliverer, Spool};
    let tr = TempRoot::new();
    let received: Received = Arc::default();
    let (url, stop) = clock_checking_ingest(received.clone()).await;
    let spool = Arc::new(Spool::open(&tr.path().join("spool")).unwrap());
    let now = chrono::Utc::now();
    let future = Event::new(now + chrono::Duration::days(5 * 365), "edge-1", "node_heartbeat", None);
    let good = Event::new(now, "edge-1", "service_healthy", Some("web"));
    let future_file = spool.push(&future).unwrap().file_name().unwrap().to_str().unwrap().to_owned();
    spool.push(&good).unwrap();

    let deliverer = Deliverer::new(spool.clone(), &url, "node-token".into()).unwrap();
    let delivered = tokio::time::timeout(Duration::from_secs(20), deliverer.deliver_all()).await.expect("delivery round finishes").unwrap();
    assert_eq!(delivered, 1, "the good event behind the refused one is delivered");
    assert_eq!(received.lock().unwrap().iter().map(|e| e.id).collect::<Vec<_>>(), vec![good.id]);
    assert!(spool.pending().unwrap().is_empty(), "nothing blocks the spool");

    // The refused event is kept, with why, in rejected/.
    let rejected = spool.rejected_dir();
    let kept: Event = serde_json::from_slice(&std::fs::read(rejected.join(&future_file)).unwrap()).unwrap();
    assert_eq!(kept, future);
    let reason = std::fs::read_to_string(rejected.join(format!("{future_file}.reason"))).unwrap();
    assert!(reason.contains("422") && reason.contains("clock_skew: dated 5y ahead"), "{reason}");

    // It is not sent again.
    let again = tokio::time::timeout(Duration::from_secs(20), deliverer.deliver_all()).await.unwrap().unwrap();
    assert_eq!(again, 0);
    assert_eq!(received.lock().unwrap().len(), 1);
    stop.cancel();
}

/// Writing straight into a data root that is full: the events wait in memory, and arrive, in
/// order, once there is room again; the agent keeps running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_root_delays_events_but_loses_none() {
    let tr = TempRoot::new();
    let disk = testkit::Tmpfs::mount(&tr.root(), "2m");
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tr.write_host("edge-1", &format!("services:\n  web:\n    checks:\n      - tcp: {{ port: {} }}\n", open.local_addr().unwrap().port()));
    let mut cfg = config(&tr, "edge-1");
    cfg.check_interval = Duration::from_millis(200);
    let agent = Agent::start(cfg).await;
    wait_for("first events", Duration::from_secs(10), || (!crate::events(&tr.root()).is_empty()).then_some(())).await;
    let filler = tr.root().join("filler");
    disk.fill(&filler);
    let full_from = chrono::Utc::now();
    // A state change while the disk is full: the service goes down. The agent's passes are
    // driven by its clock (every 200 ms): the stimulus here is time passing.
    drop(open);
    wait_for("2 s of passes on a full disk", Duration::from_secs(10), || (chrono::Utc::now() - full_from > chrono::Duration::seconds(2)).then_some(())).await;
    let full_until = chrono::Utc::now();
    assert!(crate::events(&tr.root()).iter().all(|e| e.ts < full_from), "nothing could be written while full");
    std::fs::remove_file(filler).unwrap();
    wait_for("the failure seen while full written once there is room", Duration::from_secs(10), || {
        crate::service_events(&tr.root(), "web").into_iter().find(|e| e.kind == "port_unreachable" && e.ts < full_until)
    })
    .await;
    assert!(!agent.handle.is_finished(), "the agent kept running");
    agent.stop().await;
    let during: Vec<_> = crate::events(&tr.root()).into_iter().filter(|e| e.ts >= full_from && e.ts < full_until).collect();
    assert!(during.iter().filter(|e| e.kind == "node_heartbeat").count() >= 2, "the backlog was written: {during:?}");
}
