//! A fresh data root per test, the router over it, and helpers to send requests and look at disk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use control_plane_ui::{AppState, Config};
use homelab_core::{Action, ActionState, ActionType, HistoryEntry};
use testkit::TempRoot;
use tower::ServiceExt;

pub const UI_TOKEN: &str = "test-ui-token-0123456789";
pub const PROXY: &str = "10.9.8.7";

pub struct Fx {
    pub tmp: TempRoot,
    pub state: Arc<AppState>,
    pub app: Router,
}

pub fn config(tmp: &TempRoot) -> Config {
    let mut c = Config::new(tmp.root(), Some(tmp.hosts()));
    c.ui_token = Some(UI_TOKEN.into());
    c.trusted_proxies = format!("{PROXY}/32");
    c.refresh = Duration::ZERO;
    c
}

impl Fx {
    pub fn new() -> Fx {
        Fx::with(|_| {})
    }

    pub fn with(edit: impl FnOnce(&mut Config)) -> Fx {
        let tmp = TempRoot::new();
        let mut c = config(&tmp);
        edit(&mut c);
        let state = Arc::new(AppState::new(&c).expect("state"));
        let app = control_plane_ui::router(state.clone());
        Fx { tmp, state, app }
    }

    /// Writes a pending action as the supervisor would.
    pub fn pending(&self, node: &str, service: &str) -> String {
        let kind = ActionType::ContainerRestart;
        let id = kind.id(node, Some(service));
        let now = chrono::Utc::now();
        let a = Action {
            id: id.clone(),
            kind,
            risk: kind.risk(),
            node: node.into(),
            service: Some(service.into()),
            drift: "unhealthy_service".into(),
            trigger: "containers_not_running".into(),
            root_cause: None,
            state: ActionState::Pending,
            created_at: now,
            updated_at: now,
            history: vec![HistoryEntry { state: ActionState::Pending, at: now, by: "supervisor".into(), note: None }],
            result: None,
            generation: None,
        };
        self.state.root.create_action(&a).expect("create action");
        id
    }

    /// Every file below actions/ and events/ with its content: "nothing changed" compares these.
    pub fn disk(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for top in ["actions", "events"] {
            walk(&self.tmp.root().join(top), &mut out);
        }
        out.sort();
        out
    }

    pub async fn send(&self, req: Request<Body>) -> Resp {
        send(&self.app, req).await
    }
}

fn walk(dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
            continue;
        }
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap_or_default()));
        }
    }
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> String {
        self.headers.get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

pub async fn send(app: &Router, req: Request<Body>) -> Resp {
    let r = tokio::time::timeout(Duration::from_secs(20), app.clone().oneshot(req)).await.expect("request timed out").unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 64 << 20).await.unwrap();
    Resp { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
}

/// A request builder from `peer` (the connecting address).
pub fn req(method: &str, uri: &str, peer: &str) -> axum::http::request::Builder {
    let addr: SocketAddr = format!("{peer}:40000").parse().unwrap();
    let mut b = Request::builder().method(method).uri(uri).header("host", "ui.test");
    b.extensions_mut().unwrap().insert(ConnectInfo(addr));
    b
}

pub fn get(uri: &str) -> Request<Body> {
    req("GET", uri, "127.0.0.1").body(Body::empty()).unwrap()
}

pub fn bearer_post(uri: &str, token: &str, body: &str) -> Request<Body> {
    req("POST", uri, "127.0.0.1")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

/// The CSRF token a rendered page carries in its forms.
pub fn csrf_in(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("page has a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Logs in through the form; returns the `Cookie` header value.
pub async fn login(fx: &Fx, user: &str) -> String {
    let r = fx
        .send(
            req("POST", "/login", "127.0.0.1")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", "http://ui.test")
                .body(Body::from(format!("user={user}&token={UI_TOKEN}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = r.header("set-cookie");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    cookie.split(';').next().unwrap().to_owned()
}
