//! Every endpoint through the router, including every refusal.

use axum::body::Body;
use axum::http::StatusCode;
use homelab_core::{ActionState, Event};
use serde_json::json;

use crate::fixture::*;

#[tokio::test]
async fn healthz_and_openapi() {
    let fx = Fx::new();
    let r = fx.send(get("/healthz")).await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "ok\n"));
    let doc = fx.send(get("/api/v1/openapi.json")).await.json();
    assert_eq!(doc["openapi"], "3.0.3");
    for p in ["/summary", "/api/v1/actions/{id}/approve", "/api/v1/actions/{id}/reject", "/api/v1/events", "/metrics"] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from the OpenAPI document");
    }
}

#[tokio::test]
async fn summary_has_stable_fields_and_answers_304_when_unchanged() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n");
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(get("/summary")).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    for f in ["version", "nodes", "services", "drift", "actions", "counts", "daemons", "config_errors"] {
        assert!(s.get(f).is_some(), "summary lacks {f}: {s}");
    }
    assert_eq!(s["actions"]["pending"][0]["id"], id.as_str());
    assert_eq!(s["counts"]["actions"]["pending"], 1);
    assert_eq!(s["drift"][0]["kind"], "node_unreachable", "edge-1 was never seen");
    let etag = r.header("etag");
    assert!(etag.starts_with('"'), "{etag}");

    let again = fx.send(req("GET", "/summary", "127.0.0.1").header("if-none-match", &etag).body(Body::empty()).unwrap()).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());

    // A change on disk gives a new ETag and a full answer.
    fx.pending("edge-1", "other");
    let changed = fx.send(req("GET", "/summary", "127.0.0.1").header("if-none-match", &etag).body(Body::empty()).unwrap()).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_ne!(changed.header("etag"), etag);

    // Gzip for clients that ask, with its own tag; either tag revalidates.
    let gz = fx.send(req("GET", "/summary", "127.0.0.1").header("accept-encoding", "gzip, br").body(Body::empty()).unwrap()).await;
    assert_eq!(gz.header("content-encoding"), "gzip");
    assert_ne!(gz.header("etag"), changed.header("etag"));
    let revalidate = fx.send(req("GET", "/summary", "127.0.0.1").header("if-none-match", gz.header("etag")).body(Body::empty()).unwrap()).await;
    assert_eq!(revalidate.status, StatusCode::NOT_MODIFIED);
    let plain = fx.send(req("GET", "/summary", "127.0.0.1").header("accept-encoding", "gzip;q=0").body(Body::empty()).unwrap()).await;
    assert!(plain.header("content-encoding").is_empty());

    let md = fx.send(get("/summary.md")).await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(md.body.contains("# Homelab status") && md.body.contains(&id), "{}", md.body);
}

#[tokio::test]
async fn summary_token_protects_reads_but_not_healthz() {
    let fx = Fx::with(|c| c.summary_token = Some("read-secret".into()));
    for path in ["/summary", "/summary.md", "/api/v1/world", "/api/v1/actions", "/metrics"] {
        assert_eq!(fx.send(get(path)).await.status, StatusCode::UNAUTHORIZED, "{path}");
        let wrong = req("GET", path, "127.0.0.1").header("authorization", "Bearer nope").body(Body::empty()).unwrap();
        assert_eq!(fx.send(wrong).await.status, StatusCode::UNAUTHORIZED, "{path}");
        let ok = req("GET", path, "127.0.0.1").header("authorization", "Bearer read-secret").body(Body::empty()).unwrap();
        assert_eq!(fx.send(ok).await.status, StatusCode::OK, "{path}");
    }
    // Pages send the browser to the login form.
    let r = fx.send(get("/")).await;
    assert!(r.status.is_redirection() && r.header("location").ends_with("/login"), "{}", r.status);
    assert_eq!(fx.send(get("/healthz")).await.status, StatusCode::OK);
    // The read token is not an operator token.
    let id = fx.pending("edge-1", "mqtt");
    let before = fx.disk();
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), "read-secret", "")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(fx.disk(), before);
}

#[tokio::test]
async fn approve_with_bearer_then_conflict() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["state"], "approved");
    let on_disk = fx.state.root.read_active(ActionState::Approved, &id).unwrap().expect("moved to approved/");
    assert_eq!(on_disk.history.last().unwrap().by, "api:token");
    assert!(fx.state.root.read_active(ActionState::Pending, &id).unwrap().is_none());

    let before = fx.disk();
    for verb in ["approve", "reject"] {
        let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/{verb}"), UI_TOKEN, "")).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{verb}: {}", r.body);
        assert_eq!(r.json()["state"], "approved");
    }
    assert_eq!(fx.disk(), before, "a conflict changes nothing");
}

#[tokio::test]
async fn reject_records_the_reason() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/reject"), UI_TOKEN, r#"{"reason": "planned maintenance"}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let found = fx.state.root.find_action(&id).unwrap().unwrap();
    assert_eq!(found.state, ActionState::Rejected);
    let last = found.action.history.last().unwrap();
    assert_eq!((last.by.as_str(), last.note.as_deref()), ("api:token", Some("planned maintenance")));
    // The API answers the action by id from its terminal folder too.
    let got = fx.send(get(&format!("/api/v1/actions/{id}"))).await;
    assert_eq!(got.json()["state"], "rejected");

    let id2 = fx.pending("edge-1", "other");
    let before = fx.disk();
    let bad = fx.send(bearer_post(&format!("/api/v1/actions/{id2}/reject"), UI_TOKEN, r#"{"why": 1}"#)).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.disk(), before);
}

/// Every way a mutation can be refused, each leaving the disk as it was.
#[tokio::test]
async fn refusals_change_nothing() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let cookie = login(&fx, "bob").await;
    let page = fx.send(req("GET", "/actions", "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    let approve = format!("/api/v1/actions/{id}/approve");
    let form_approve = format!("/actions/{id}/approve");
    let form = |b: axum::http::request::Builder, body: String| b.header("content-type", "application/x-www-form-urlencoded").body(Body::from(body)).unwrap();

    let cases: Vec<(&str, axum::http::Request<Body>, StatusCode)> = vec![
        ("no credentials", req("POST", &approve, "127.0.0.1").body(Body::empty()).unwrap(), StatusCode::UNAUTHORIZED),
        ("wrong token", bearer_post(&approve, "not-the-token", ""), StatusCode::UNAUTHORIZED),
        ("basic instead of bearer", req("POST", &approve, "127.0.0.1").header("authorization", format!("Basic {UI_TOKEN}")).body(Body::empty()).unwrap(), StatusCode::UNAUTHORIZED),
        (
            "proxy header from an untrusted address",
            req("POST", &approve, "192.0.2.1").header("x-authentik-username", "mallory").body(Body::empty()).unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "proxy header from the trusted proxy without CSRF token",
            req("POST", &approve, PROXY).header("x-authentik-username", "alice").body(Body::empty()).unwrap(),
            StatusCode::FORBIDDEN,
        ),
        ("session without CSRF token", req("POST", &approve, "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap(), StatusCode::FORBIDDEN),
        (
            "session with a wrong CSRF token",
            req("POST", &approve, "127.0.0.1").header("cookie", &cookie).header("x-csrf-token", "forged").body(Body::empty()).unwrap(),
            StatusCode::FORBIDDEN,
        ),
        ("form without CSRF token", form(req("POST", &form_approve, "127.0.0.1").header("cookie", &cookie), String::new()), StatusCode::FORBIDDEN),
        (
            "cross-site form post (Origin)",
            form(req("POST", &form_approve, "127.0.0.1").header("cookie", &cookie).header("origin", "https://evil.example"), format!("csrf={csrf}")),
            StatusCode::FORBIDDEN,
        ),
        (
            "cross-site form post (Sec-Fetch-Site)",
            form(req("POST", &form_approve, "127.0.0.1").header("cookie", &cookie).header("sec-fetch-site", "cross-site"), format!("csrf={csrf}")),
            StatusCode::FORBIDDEN,
        ),
        (
            "unknown session",
            form(req("POST", &form_approve, "127.0.0.1").header("cookie", "hcp_session=made-up"), format!("csrf={csrf}")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "GET never changes state",
            req("GET", &approve, "127.0.0.1").header("authorization", format!("Bearer {UI_TOKEN}")).body(Body::empty()).unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    let before = fx.disk();
    for (what, request, want) in cases {
        let r = fx.send(request).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        assert_eq!(fx.disk(), before, "{what} changed the disk");
    }
    assert!(fx.state.root.read_active(ActionState::Pending, &id).unwrap().is_some());
}

#[tokio::test]
async fn traversal_shaped_and_unknown_ids() {
    let fx = Fx::new();
    fx.pending("edge-1", "mqtt");
    std::fs::write(fx.tmp.path().join("secret.json"), "{}").unwrap();
    let before = fx.disk();
    for id in ["..%2F..%2Fsecret", "%2e%2e", "..", "UPPER", "a%20b", ".hidden", &"a".repeat(161)] {
        for verb in ["approve", "reject"] {
            let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/{verb}"), UI_TOKEN, "")).await;
            assert!(r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND, "{id} {verb}: {}", r.status);
        }
        let r = fx.send(get(&format!("/api/v1/actions/{id}"))).await;
        assert!(r.status == StatusCode::BAD_REQUEST || r.status == StatusCode::NOT_FOUND, "{id}: {}", r.status);
    }
    assert_eq!(fx.send(bearer_post("/api/v1/actions/UPPER/approve", UI_TOKEN, "")).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.send(bearer_post("/api/v1/actions/no-such-action/approve", UI_TOKEN, "")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(fx.send(get("/api/v1/actions/no-such-action")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(fx.send(get("/actions/UPPER")).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(fx.disk(), before);
}

#[tokio::test]
async fn trusted_proxy_user_approves_with_csrf() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let page = fx.send(req("GET", "/actions", PROXY).header("x-authentik-username", "alice").body(Body::empty()).unwrap()).await;
    assert!(page.body.contains("alice"), "the page names the proxy user");
    let csrf = csrf_in(&page.body);
    let r = fx
        .send(
            req("POST", &format!("/actions/{id}/approve"), PROXY)
                .header("x-authentik-username", "alice")
                .header("origin", "http://ui.test")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = fx.state.root.read_active(ActionState::Approved, &id).unwrap().unwrap();
    assert_eq!(a.history.last().unwrap().by, "ui:alice");
}

#[tokio::test]
async fn login_session_and_form_reject() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    // A wrong token does not log in.
    let bad = fx
        .send(req("POST", "/login", "127.0.0.1").header("content-type", "application/x-www-form-urlencoded").body(Body::from("user=bob&token=wrong")).unwrap())
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.header("set-cookie").is_empty());

    let cookie = login(&fx, "bob").await;
    let page = fx.send(req("GET", &format!("/actions/{id}"), "127.0.0.1").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    let r = fx
        .send(
            req("POST", &format!("/actions/{id}/reject"), "127.0.0.1")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}&reason=not+now")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), format!("/actions/{id}"));
    let found = fx.state.root.find_action(&id).unwrap().unwrap();
    assert_eq!(found.state, ActionState::Rejected);
    let last = found.action.history.last().unwrap();
    assert_eq!((last.by.as_str(), last.note.as_deref()), ("ui:bob", Some("not now")));

    // Behind TLS the cookie is Secure.
    let r = fx
        .send(
            req("POST", "/login", "127.0.0.1")
                .header("x-forwarded-proto", "https")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("user=bob&token={UI_TOKEN}")))
                .unwrap(),
        )
        .await;
    assert!(r.header("set-cookie").contains("; Secure"));
    // Cross-site login is refused.
    let r = fx
        .send(
            req("POST", "/login", "127.0.0.1")
                .header("origin", "https://evil.example")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("user=bob&token={UI_TOKEN}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn generated_token_is_private_and_never_shown() {
    let fx = Fx::with(|c| c.ui_token = None);
    let rel = control_plane_ui::UI_TOKEN_FILE;
    assert_eq!(fx.state.root.file_mode(rel).unwrap(), 0o600);
    let token = std::fs::read_to_string(fx.tmp.root().join(rel)).unwrap().trim().to_owned();
    assert!(token.len() >= 32);
    // The same token is used after a restart.
    let again = control_plane_ui::AppState::new(&{
        let mut c = config(&fx.tmp);
        c.ui_token = None;
        c
    })
    .unwrap();
    assert!(control_plane_ui::auth::ct_eq(&again.auth.ui_token, &token));
    let id = fx.pending("edge-1", "mqtt");
    for path in ["/", "/actions", &format!("/actions/{id}"), "/summary", "/summary.md", "/metrics", "/login", "/events"] {
        let r = fx.send(get(path)).await;
        assert!(!r.body.contains(&token), "{path} shows the token");
    }
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), &token, "")).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn actions_listing_and_world() {
    let fx = Fx::new();
    let a = fx.pending("edge-1", "mqtt");
    let b = fx.pending("edge-2", "web");
    fx.send(bearer_post(&format!("/api/v1/actions/{b}/approve"), UI_TOKEN, "")).await;
    let ids = |v: serde_json::Value| v["actions"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(fx.send(get("/api/v1/actions?state=pending")).await.json()), vec![a.clone()]);
    assert_eq!(ids(fx.send(get("/api/v1/actions?state=approved")).await.json()), vec![b.clone()]);
    assert_eq!(ids(fx.send(get("/api/v1/actions?node=edge-1")).await.json()), vec![a.clone()]);
    assert_eq!(ids(fx.send(get("/api/v1/actions")).await.json()).len(), 2);
    assert_eq!(fx.send(get("/api/v1/actions?state=bogus")).await.status, StatusCode::BAD_REQUEST);
    let w = fx.send(get("/api/v1/world")).await.json();
    assert!(w["services"].is_null() && w["nodes"].is_null(), "no world yet: {w}");
}

fn event(node: &str, kind: &str, service: Option<&str>) -> Event {
    Event::new(chrono::Utc::now(), node, kind, service)
}

#[tokio::test]
async fn agent_ingest_per_node_token() {
    let fx = Fx::with(|c| c.agent_tokens = Some(r#"{"edge-2": "env-token-2"}"#.into()));
    fx.state.root.write_json("state/secrets/agent_tokens.json", &json!({"edge-1": "node-token-1"})).unwrap();
    let e = event("edge-1", "containers_not_running", Some("mqtt"));
    let body = serde_json::to_string(&e).unwrap();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &body)).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"written": 1, "duplicates": 0})));
    let path = fx.tmp.root().join("events").join(e.day()).join(e.file_name());
    let written: Event = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, e);
    // Sending it again is harmless: same file name, nothing new.
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &body)).await;
    assert_eq!(r.json(), json!({"written": 0, "duplicates": 1}));
    // The env token works for its node, as an array.
    let batch = serde_json::to_string(&vec![event("edge-2", "node_heartbeat", None), event("edge-2", "service_healthy", Some("web"))]).unwrap();
    assert_eq!(fx.send(bearer_post("/api/v1/events", "env-token-2", &batch)).await.json()["written"], 2);

    let before = fx.disk();
    let other_node = serde_json::to_string(&event("edge-2", "service_healthy", Some("web"))).unwrap();
    let mixed = serde_json::to_string(&vec![event("edge-1", "service_healthy", Some("a")), event("edge-2", "service_healthy", Some("b"))]).unwrap();
    let bad_name = body.replace("\"mqtt\"", "\"../../etc\"");
    let cases: Vec<(&str, axum::http::Request<Body>, StatusCode)> = vec![
        ("no token", req("POST", "/api/v1/events", "127.0.0.1").body(Body::from(body.clone())).unwrap(), StatusCode::UNAUTHORIZED),
        ("wrong token", bearer_post("/api/v1/events", "guess", &body), StatusCode::UNAUTHORIZED),
        ("the UI token is not an agent token", bearer_post("/api/v1/events", UI_TOKEN, &body), StatusCode::UNAUTHORIZED),
        ("another node's event", bearer_post("/api/v1/events", "node-token-1", &other_node), StatusCode::FORBIDDEN),
        ("one bad event spoils the batch", bearer_post("/api/v1/events", "node-token-1", &mixed), StatusCode::FORBIDDEN),
        ("traversal-shaped service", bearer_post("/api/v1/events", "node-token-1", &bad_name), StatusCode::BAD_REQUEST),
        ("not JSON", bearer_post("/api/v1/events", "node-token-1", "nope"), StatusCode::BAD_REQUEST),
        ("service event without service", bearer_post("/api/v1/events", "node-token-1", &serde_json::to_string(&event("edge-1", "service_healthy", None)).unwrap()), StatusCode::BAD_REQUEST),
    ];
    for (what, request, want) in cases {
        let r = fx.send(request).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        assert_eq!(fx.disk(), before, "{what} changed the disk");
    }
}

#[tokio::test]
async fn metrics_count_what_is_on_disk() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    fx.pending("edge-1", "web");
    fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    let hb = homelab_core::Heartbeat {
        daemon: "observer".into(),
        pid: 1,
        version: "test".into(),
        started_at: chrono::Utc::now(),
        last_loop_at: chrono::Utc::now() - chrono::Duration::seconds(600),
        interval_secs: 10,
        counters: Default::default(),
        config_errors: vec![],
        extra: serde_json::Value::Null,
    };
    fx.state.root.write_heartbeat("observer", &hb).unwrap();
    let r = fx.send(get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK);
    for line in [
        "homelab_actions{state=\"pending\"} 1",
        "homelab_actions{state=\"approved\"} 1",
        "homelab_approvals{channel=\"api\"} 1",
        "homelab_daemon_stopped{daemon=\"observer\"} 1",
        "homelab_services{status=\"healthy\"} 0",
        "homelab_drift{kind=\"missing_service\"} 0",
    ] {
        assert!(r.body.contains(line), "metrics lack {line}:\n{}", r.body);
    }
    assert!(r.body.contains("homelab_daemon_heartbeat_age_seconds{daemon=\"observer\"} 6"), "{}", r.body);
}

#[tokio::test]
async fn pages_render_and_fragments_use_etags() {
    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n  z2m:\n    depends_on: [mqtt]\n");
    fx.tmp.write_host("broken", "services:\n  x: { nope: 1 }\n");
    let id = fx.pending("edge-1", "mqtt");
    let ev = event("edge-1", "containers_not_running", Some("mqtt"));
    fx.state.root.write_event(&ev).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("/", &["Dashboard", "node_unreachable", "Configuration errors", "broken/services.yaml"]),
        ("/actions", &[&id, "Approve", "log in to decide"]),
        ("/actions?node=edge-2", &["None."]),
        (&format!("/actions/{id}"), &["action-state", "pending", "supervisor"]),
        ("/events?node=edge-1&service=mqtt", &["containers_not_running"]),
        ("/events?node=edge-9", &["No events."]),
        ("/nodes/edge-1", &["Node edge-1", &id]),
        ("/login", &["login-form"]),
    ];
    for (path, wants) in cases {
        let r = fx.send(get(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.header("x-frame-options"), "DENY", "{path}");
        for w in *wants {
            assert!(r.body.contains(w), "{path} lacks {w:?}");
        }
    }
    assert_eq!(fx.send(get("/events?node=..%2Fx")).await.status, StatusCode::BAD_REQUEST);
    let f = fx.send(get("/actions?fragment=1")).await;
    assert!(!f.body.contains("<html"), "a fragment is only the content");
    let etag = f.header("etag");
    let again = fx.send(req("GET", "/actions?fragment=1", "127.0.0.1").header("if-none-match", &etag).body(Body::empty()).unwrap()).await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn works_under_a_base_path() {
    let fx = Fx::with(|c| c.base_path = "/homelab/".into());
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(get("/homelab/actions")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(&format!("href=\"/homelab/actions/{id}\"")) && r.body.contains("/homelab/static/app.js"));
    assert_eq!(fx.send(get("/actions")).await.status, StatusCode::NOT_FOUND);
    let r = fx.send(get("/homelab")).await;
    assert!(r.status == StatusCode::OK && r.body.contains("Dashboard"));
    let r = fx.send(get("/homelab/")).await;
    assert_eq!((r.status, r.header("location")), (StatusCode::PERMANENT_REDIRECT, "/homelab".to_owned()));
    assert_eq!(fx.send(get("/homelab/summary")).await.status, StatusCode::OK);
    let r = fx.send(bearer_post(&format!("/homelab/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::OK);
    let cookie = fx
        .send(
            req("POST", "/homelab/login", "127.0.0.1")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("user=bob&token={UI_TOKEN}")))
                .unwrap(),
        )
        .await;
    assert!(cookie.header("set-cookie").contains("Path=/homelab;"));
    assert_eq!(cookie.header("location"), "/homelab/");
}

#[tokio::test]
async fn racing_approvers_exactly_one_wins() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let app = fx.app.clone();
        let uri = format!("/api/v1/actions/{id}/{}", if i % 2 == 0 { "approve" } else { "reject" });
        tasks.push(tokio::spawn(async move { send(&app, bearer_post(&uri, UI_TOKEN, "")).await.status }));
    }
    // And one more channel deciding through the shared function at the same time.
    let root = fx.state.root.clone();
    let idc = id.clone();
    let direct = tokio::task::spawn_blocking(move || control_plane_ui::decide(&root, &idc, &control_plane_ui::Decision::Approve, "telegram:42", chrono::Utc::now()).is_ok());
    let mut wins = usize::from(direct.await.unwrap());
    for t in tasks {
        match t.await.unwrap() {
            StatusCode::OK => wins += 1,
            StatusCode::CONFLICT => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(wins, 1);
    let found = fx.state.root.find_action(&id).unwrap().unwrap();
    assert_eq!(found.action.history.len(), 2, "one decision recorded: {:?}", found.action.history);
}

#[tokio::test]
async fn events_timeline_pages_newest_first() {
    let fx = Fx::new();
    let start = chrono::Utc::now() - chrono::Duration::hours(1);
    for i in 0..60 {
        let mut e = Event::new(start + chrono::Duration::seconds(i), "edge-1", "service_healthy", Some("mqtt"));
        e.detail = Some(format!("check number {i:02}"));
        fx.state.root.write_event(&e).unwrap();
    }
    fx.state.root.write_event(&Event::new(start, "edge-2", "service_healthy", Some("web"))).unwrap();
    let p0 = fx.send(get("/events?node=edge-1")).await.body;
    assert_eq!(p0.matches("check number").count(), 50);
    assert!(p0.find("check number 59").unwrap() < p0.find("check number 58").unwrap(), "newest first");
    assert!(!p0.contains("check number 09") && p0.contains("page=1&#38;node=edge-1"), "an older page exists: {}", &p0[p0.find("pager").unwrap()..]);
    let p1 = fx.send(get("/events?node=edge-1&page=1")).await.body;
    assert_eq!(p1.matches("check number").count(), 10);
    assert!(p1.contains("check number 00") && !p1.contains("edge-2"));
    let all = fx.send(get("/events?service=web")).await.body;
    assert!(all.contains("edge-2") && !all.contains("check number"));
}

#[tokio::test]
async fn alertmanager_webhook_becomes_events_only_with_a_token() {
    let fx = Fx::with(|c| c.alertmanager_token = Some("am-secret".into()));
    let body = r#"{"version":"4","status":"firing","alerts":[
        {"status":"firing","labels":{"alertname":"Down","node":"edge-1","service":"mqtt"},"annotations":{"summary":"broker gone"}},
        {"status":"resolved","labels":{"instance":"nas-1:9100","job":"jellyfin"},"annotations":{}},
        {"status":"firing","labels":{"alertname":"NoLabels"},"annotations":{}}]}"#;
    let before = fx.disk();
    for token in [None, Some("wrong")] {
        let mut r = req("POST", "/api/v1/alertmanager", "127.0.0.1").header("content-type", "application/json");
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let resp = fx.send(r.body(Body::from(body)).unwrap()).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED, "{token:?}: {}", resp.body);
        assert_eq!(fx.disk(), before, "a refused webhook writes nothing");
    }
    let bad = fx.send(bearer_post("/api/v1/alertmanager", "am-secret", "{")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let ok = fx.send(bearer_post("/api/v1/alertmanager", "am-secret", body)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let v = ok.json();
    assert_eq!(v["written"], 2, "{v}");
    assert!(v["skipped"][0].as_str().unwrap().contains("no node"), "{v}");
    // The operator's own token works too.
    let by_ui = fx.send(bearer_post("/api/v1/alertmanager", UI_TOKEN, body)).await;
    assert_eq!(by_ui.status, StatusCode::OK);
    let events: Vec<_> = fx.disk().into_iter().filter(|(p, _)| p.contains("/events/")).collect();
    assert_eq!(events.len(), 4, "{:?}", events.iter().map(|e| &e.0).collect::<Vec<_>>());
    assert!(events.iter().any(|(p, b)| p.contains("-edge-1-") && String::from_utf8_lossy(b).contains("service_unhealthy")));
    assert!(events.iter().any(|(p, b)| p.contains("-nas-1-") && String::from_utf8_lossy(b).contains("service_healthy")));
}
