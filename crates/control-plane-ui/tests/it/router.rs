// tidy: long file: every endpoint and refusal through the router, not yet split by endpoint.
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
    let served = fx.send(get("/api/v1/openapi.json")).await;
    assert_eq!(served.header("content-type"), "application/json");
    let doc = served.json();
    // Generated from the handlers' annotations and types (utoipa), once, at start-up.
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(served.body, control_plane_ui::openapi::generate());
    for p in ["/summary", "/api/v1/actions/{id}/approve", "/api/v1/actions/{id}/reject", "/api/v1/actions/{id}/retry", "/api/v1/events", "/metrics"] {
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
    for f in ["version", "nodes", "services", "drift", "drift_report", "actions", "counts", "daemons", "config_errors", "quarantine", "errors"] {
        assert!(s.get(f).is_some(), "summary lacks {f}: {s}");
    }
    assert_eq!(s["actions"]["pending"][0]["id"], id.as_str());
    assert_eq!(s["counts"]["actions"]["pending"], 1);
    // No world/drift.json yet: no drift of the UI's own making, and it says why.
    assert_eq!(s["drift"], json!([]));
    assert_eq!(s["drift_report"]["state"], "not_reported");
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

#[tokio::test]
async fn cancel_takes_an_approval_back_until_the_executor_claims_it() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/cancel"), UI_TOKEN, r#"{"reason": "wrong button"}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["state"], "cancelled");
    let found = fx.state.root.find_action(&id).unwrap().unwrap();
    assert_eq!(found.state, ActionState::Cancelled);
    let last = found.action.history.last().unwrap();
    assert_eq!((last.by.as_str(), last.note.as_deref()), ("api:token", Some("wrong button")));

    // Claimed by an executor: too late, 409 with the state, nothing changes.
    let id = fx.pending("edge-1", "web");
    fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    fx.state.root.transition(&id, ActionState::Approved, ActionState::Running, chrono::Utc::now(), "executor", None, |_| {}).unwrap();
    let before = fx.disk();
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/cancel"), UI_TOKEN, "")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.json()["state"], "running");
    assert_eq!(r.json()["error"], format!("action {id} is running: too late to cancel"));
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
        (
            "basic instead of bearer",
            req("POST", &approve, "127.0.0.1").header("authorization", format!("Basic {UI_TOKEN}")).body(Body::empty()).unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
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
async fn an_approved_action_page_offers_cancel_and_the_form_takes_the_approval_back() {
    let fx = Fx::new();
    let id = fx.pending("edge-1", "mqtt");
    let cookie = login(&fx, "bob").await;
    let page = |cookie: String| {
        let fx = &fx;
        let id = id.clone();
        async move { fx.send(req("GET", &format!("/actions/{id}"), "127.0.0.1").header("cookie", cookie).body(Body::empty()).unwrap()).await }
    };
    // Pending: approve and reject, no cancel.
    let pending = page(cookie.clone()).await;
    assert!(!pending.body.contains("class=\"cancel-form\""), "{}", pending.body);
    fx.send(bearer_post(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "")).await;
    let approved = page(cookie.clone()).await;
    assert!(approved.body.contains(&format!("action=\"/actions/{id}/cancel\"")), "{}", approved.body);
    let csrf = csrf_in(&approved.body);
    let r = fx
        .send(
            req("POST", &format!("/actions/{id}/cancel"), "127.0.0.1")
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}&reason=")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let found = fx.state.root.find_action(&id).unwrap().unwrap();
    assert_eq!(found.state, ActionState::Cancelled);
    let last = found.action.history.last().unwrap();
    assert_eq!((last.by.as_str(), last.note.as_deref()), ("ui:bob", Some("cancelled by operator (no reason given)")));
    let ended = page(cookie).await;
    assert!(!ended.body.contains("class=\"cancel-form\""));
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
    let rel = homelab_store::Doc::UiToken;
    assert_eq!(fx.state.root.file_mode(rel).unwrap(), 0o600);
    let token = std::fs::read_to_string(fx.state.root.display_path(rel)).unwrap().trim().to_owned();
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
    fx.state.root.write_agent_tokens(&serde_json::from_value(json!({"edge-1": "node-token-1"})).unwrap()).unwrap();
    let e = event("edge-1", "containers_not_running", Some("mqtt"));
    let body = serde_json::to_string(&e).unwrap();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &body)).await;
    assert_eq!((r.status, r.json()), (StatusCode::OK, json!({"written": 1, "duplicates": 0, "check_now": []})));
    let path = fx.tmp.root().join("events").join(e.day()).join(e.file_name());
    let written: Event = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written, e);
    // Sending it again is harmless: same file name, nothing new.
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &body)).await;
    assert_eq!(r.json(), json!({"written": 0, "duplicates": 1, "check_now": []}));
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
        (
            "service event without service",
            bearer_post("/api/v1/events", "node-token-1", &serde_json::to_string(&event("edge-1", "service_healthy", None)).unwrap()),
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (what, request, want) in cases {
        let r = fx.send(request).await;
        assert_eq!(r.status, want, "{what}: {}", r.body);
        assert_eq!(fx.disk(), before, "{what} changed the disk");
    }
}

/// The ingest answer carries the token's node's check-now requests, never another node's; an
/// ingested event that says it served one (or a `served` entry) finishes it, unless a newer
/// request replaced it; `[]` (the agent's poll) writes nothing.
#[tokio::test]
async fn ingest_answers_with_this_nodes_check_now_requests_and_finishes_served_ones() {
    use homelab_store::check_now::CheckNowRequest;
    let fx = Fx::new();
    fx.state.root.write_agent_tokens(&serde_json::from_value(json!({"edge-1": "node-token-1", "edge-2": "node-token-2"})).unwrap()).unwrap();
    let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
    let ask = |node: &str, service: &str, ts: &str| {
        let r = CheckNowRequest { node: node.into(), service: service.into(), requested_by: "cli:ops".into(), requested_at: at(ts) };
        fx.state.root.request_check_now(&r).unwrap();
        r
    };
    ask("edge-1", "web", "2026-05-27T14:00:00.001Z");
    ask("edge-2", "db", "2026-05-27T14:00:00.002Z");
    let before = fx.disk();
    let poll = |token: &'static str, query: &'static str| fx.send(bearer_post(&format!("/api/v1/events{query}"), token, "[]"));
    let r = poll("node-token-1", "").await;
    assert_eq!(
        (r.status, r.json()),
        (
            StatusCode::OK,
            json!({"written": 0, "duplicates": 0, "check_now": [{"service": "web", "requested_by": "cli:ops", "requested_at": "2026-05-27T14:00:00.001Z"}]})
        )
    );
    assert_eq!(poll("node-token-2", "").await.json()["check_now"][0]["service"], "db");
    assert_eq!(fx.disk(), before, "a poll writes nothing");

    // edge-1 cannot finish edge-2's request, by event or by `served`.
    let mut e = event("edge-1", "service_healthy", Some("db"));
    e.data = Some(json!({"check_now": {"requested_by": "cli:ops", "requested_at": "2026-05-27T14:00:00.002Z"}}));
    assert_eq!(
        fx.send(bearer_post("/api/v1/events?served=db@2026-05-27T14:00:00.002Z", "node-token-1", &serde_json::to_string(&e).unwrap())).await.status,
        StatusCode::OK
    );
    assert_eq!(fx.state.root.pending_check_now("edge-2").unwrap().len(), 1, "edge-2's request stays");

    // A newer request replaced the one served: the result event does not finish the newer one.
    let mut done = event("edge-1", "service_recovered", Some("web"));
    done.data = Some(json!({"check_now": {"requested_by": "cli:ops", "requested_at": "2026-05-27T14:00:00.001Z"}}));
    let done = serde_json::to_string(&done).unwrap();
    ask("edge-1", "web", "2026-05-27T14:00:05.000Z");
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &done)).await;
    assert_eq!(r.json()["check_now"][0]["requested_at"], "2026-05-27T14:00:05.000Z");
    // The newer one's result, replayed twice (a spool after a crash): finished, then harmless.
    let mut newer = event("edge-1", "service_healthy", Some("web"));
    newer.data = Some(json!({"check_now": {"requested_by": "cli:ops", "requested_at": "2026-05-27T14:00:05.000Z"}}));
    let newer = serde_json::to_string(&newer).unwrap();
    for want in [json!({"written": 1, "duplicates": 0, "check_now": []}), json!({"written": 0, "duplicates": 1, "check_now": []})] {
        assert_eq!(fx.send(bearer_post("/api/v1/events", "node-token-1", &newer)).await.json(), want);
    }

    // `served` finishes a request served without an event; a stale entry does not.
    ask("edge-1", "mqtt", "2026-05-27T14:00:07.000Z");
    assert_eq!(poll("node-token-1", "?served=mqtt@2026-05-27T14:00:06.000Z").await.json()["check_now"].as_array().unwrap().len(), 1);
    assert_eq!(poll("node-token-1", "?served=mqtt@2026-05-27T14:00:07.000Z").await.json()["check_now"], json!([]));
    for bad in ["?served=mqtt", "?served=../x@2026-05-27T14:00:07.000Z", "?served=mqtt@yesterday"] {
        let r = poll("node-token-1", bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
    }

    // A corrupt request file is quarantined with its reason, never served.
    std::fs::write(fx.state.root.check_now_dir("edge-1").join("web.json"), "{oops").unwrap();
    assert_eq!(poll("node-token-1", "").await.json()["check_now"], json!([]));
    let reason = std::fs::read_to_string(fx.state.root.quarantine_kind_dir("check_now").join("edge-1-web.json.reason")).unwrap();
    assert!(reason.contains("state/check_now/edge-1/web.json"), "{reason}");
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
        ("/", &["Dashboard", "The supervisor has not reported yet", "Configuration errors", "broken/services.yaml"]),
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
    // And one more channel deciding through the operations layer at the same time.
    let ops = homelab_ops::Ops::new(fx.state.root.clone());
    let idc = homelab_core::ActionId::parse(&id).unwrap();
    let direct = tokio::task::spawn_blocking(move || ops.decide(&ops.telegram_actor(42), &idc, homelab_ops::Decision::APPROVE).is_ok());
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

/// Sets a file's modification time to `secs_ago` seconds before now (without following symlinks
/// is not needed: only regular reason files are touched).
fn age_file(path: &std::path::Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs_ago);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// Quarantine with a file, a symlink pointing outside the root and a directory in events/, and
/// one entry in actions/: listed newest first, with the reason files' text and time, never
/// following or reading the entries themselves.
#[tokio::test]
async fn summary_dashboard_and_digest_show_quarantine() {
    let fx = Fx::new();
    // Nothing quarantined: an empty object, no card.
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["quarantine"], json!({"count": 0, "recent": []}));
    assert!(!fx.send(get("/")).await.body.contains("id=\"quarantine\""));

    let root = fx.tmp.root();
    let q = root.join("quarantine/events");
    std::fs::write(q.join("20260527T140311.123Z-edge-1-0badf00d.json"), "{not json").unwrap();
    std::fs::write(
        q.join("20260527T140311.123Z-edge-1-0badf00d.json.reason"),
        "invalid: expected ident at line 1 column 2\n(from events/2026-05-27/20260527T140311.123Z-edge-1-0badf00d.json)\n",
    )
    .unwrap();
    age_file(&q.join("20260527T140311.123Z-edge-1-0badf00d.json.reason"), 3 * 3600);
    let outside = fx.tmp.path().join("outside-secret.json");
    std::fs::write(&outside, "OUTSIDE-CONTENT-NEVER-READ").unwrap();
    std::os::unix::fs::symlink(&outside, q.join("link.json")).unwrap();
    std::fs::write(q.join("link.json.reason"), "not_regular_file: a symbolic link").unwrap();
    age_file(&q.join("link.json.reason"), 120);
    std::fs::create_dir(q.join("folder.json")).unwrap();
    std::fs::write(q.join("folder.json/inner"), "OUTSIDE-CONTENT-NEVER-READ").unwrap();
    std::fs::write(q.join("folder.json.reason"), "not_regular_file: a folder").unwrap();
    age_file(&q.join("folder.json.reason"), 60);
    std::fs::write(q.join(".partial.tmp"), "").unwrap();
    let qa = root.join("quarantine/actions");
    std::fs::write(qa.join("broken-action.json"), "[]").unwrap();
    std::fs::write(qa.join("broken-action.json.reason"), "  invalid action file  \n").unwrap();
    age_file(&qa.join("broken-action.json.reason"), 10);

    let r = fx.send(get("/summary")).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    let qs = &s["quarantine"];
    assert_eq!(qs["count"], 4, "{qs}");
    let files: Vec<&str> = qs["recent"].as_array().unwrap().iter().map(|e| e["file"].as_str().unwrap()).collect();
    assert_eq!(
        files,
        [
            "quarantine/actions/broken-action.json",
            "quarantine/events/folder.json",
            "quarantine/events/link.json",
            "quarantine/events/20260527T140311.123Z-edge-1-0badf00d.json"
        ],
        "newest first"
    );
    assert_eq!(qs["recent"][0]["reason"], "invalid action file");
    assert_eq!(qs["recent"][2]["reason"], "not_regular_file: a symbolic link");
    assert_eq!(qs["recent"][3]["reason"], "invalid: expected ident at line 1 column 2\n(from events/2026-05-27/20260527T140311.123Z-edge-1-0badf00d.json)");
    let at = chrono::DateTime::parse_from_rfc3339(qs["recent"][3]["at"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(at).num_seconds();
    assert!((3 * 3600 - 60..3 * 3600 + 60).contains(&age), "at is the reason file's mtime: {at}");
    assert!(!r.body.contains("OUTSIDE-CONTENT"), "an entry is never read");

    let page = fx.send(get("/")).await.body;
    for want in [
        "id=\"quarantine\"",
        "id=\"quarantine-count\">4<",
        "actions/broken-action.json",
        "events/link.json",
        "not_regular_file: a folder",
        "min ago",
        "3 h ago",
    ] {
        assert!(page.contains(want), "dashboard lacks {want:?}");
    }
    assert!(!page.contains("OUTSIDE-CONTENT"));
    let md = fx.send(get("/summary.md")).await.body;
    assert!(md.contains("## Quarantine") && md.contains("4 quarantined") && md.contains("quarantine/events/link.json"), "{md}");
    let doc = fx.send(get("/api/v1/openapi.json")).await.json();
    assert!(doc["components"]["schemas"]["Summary"]["properties"]["quarantine"].is_object(), "OpenAPI documents quarantine");
    assert!(doc["paths"]["/api/v1/events"]["post"]["responses"]["422"].is_object());

    // An unreadable reason (here: a folder where the reason file should be) does not fail the
    // listing, and quarantine/actions/ may not exist at all.
    std::fs::remove_file(q.join("link.json.reason")).unwrap();
    std::fs::create_dir(q.join("link.json.reason")).unwrap();
    std::fs::remove_dir_all(&qa).unwrap();
    let s = fx.send(get("/summary")).await.json();
    assert_eq!(s["quarantine"]["count"], 3, "{}", s["quarantine"]);
    let link = s["quarantine"]["recent"].as_array().unwrap().iter().find(|e| e["file"] == "quarantine/events/link.json").unwrap().clone();
    assert!(link["reason"].as_str().unwrap().starts_with('('), "placeholder reason: {link}");
}

fn observer_heartbeat(counters: &[(&str, u64)], extra: serde_json::Value) -> homelab_core::Heartbeat {
    homelab_core::Heartbeat {
        daemon: "observer".into(),
        pid: 1,
        version: "test".into(),
        started_at: chrono::Utc::now(),
        last_loop_at: chrono::Utc::now(),
        interval_secs: 10,
        counters: counters.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        config_errors: vec![],
        extra,
    }
}

/// Asks for the classic text format (what `promtool check metrics` reads) and runs promtool on
/// it; its lint warnings fail the test too.
async fn promtool_check(fx: &Fx) {
    let r = fx.send(req("GET", "/metrics", "127.0.0.1").header("accept", "text/plain").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").starts_with("text/plain; version=0.0.4"), "{}", r.header("content-type"));
    assert!(r.body.contains("# TYPE homelab_observer_events_total counter") && !r.body.contains("# EOF"), "{}", r.body);
    promtool_says_nothing("/metrics as text/plain", &r.body);
}

/// Every metric family with at least one series (actions created and ended, Telegram
/// notifications, ingest, auth, quarantine, write errors, heartbeats), read the way people do:
/// `curl /metrics | promtool check metrics` (no Accept header, or `*/*`) and as `text/plain`.
/// promtool must say nothing at all.
#[tokio::test]
async fn promtool_accepts_every_family_whatever_the_client_asks_for() {
    let fx = Fx::new();
    let beat = |daemon: &str, counters: &[(&str, u64)]| {
        let mut hb = observer_heartbeat(counters, serde_json::Value::Null);
        hb.daemon = daemon.into();
        fx.state.root.write_heartbeat(daemon, &hb).unwrap();
    };
    beat("observer", &[("applied", 3), ("duplicate", 1), ("overflows", 1), ("write_errors", 2)]);
    beat("supervisor", &[("actions_created", 4), ("actions_cancelled", 1), ("write_errors", 1)]);
    beat("executor", &[("actions_completed", 2), ("actions_failed", 1), ("actions_interrupted", 1)]);
    beat("telegram", &[("messages_sent", 3), ("messages_edited", 2), ("follow_ups_sent", 1), ("api_failures", 1)]);
    let q = fx.tmp.root().join("quarantine");
    std::fs::write(q.join("events").join("a.json"), "x").unwrap();
    std::fs::write(q.join("actions/c.json"), "x").unwrap();
    fx.pending("edge-1", "mqtt");
    // An ingest request (refused: no agent token) and a wrong bearer token, so both count.
    let r = fx.send(req("POST", "/api/v1/events", "127.0.0.1").header("authorization", "Bearer nope").body(Body::from("[]")).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    for accept in [None, Some("*/*"), Some("text/plain")] {
        let mut rq = req("GET", "/metrics", "127.0.0.1");
        if let Some(a) = accept {
            rq = rq.header("accept", a);
        }
        let r = fx.send(rq.body(Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::OK);
        for family in [
            "homelab_actions_created_total 4",
            "homelab_actions_ended_total{outcome=\"completed\"} 2",
            "homelab_notifications_total{outcome=\"sent\"} 3",
            "homelab_ingest_requests_total{",
            "homelab_ingest_events_total{",
            "homelab_auth_attempts_total{",
            "homelab_quarantine_files{kind=\"events\"} 1",
            "homelab_write_errors_total{daemon=\"supervisor\"} 1",
            "homelab_action_files{",
            "homelab_daemon_heartbeat_age_seconds{",
        ] {
            assert!(r.body.contains(family), "Accept {accept:?}: no {family:?} in\n{}", r.body);
        }
        promtool_says_nothing(&format!("/metrics with Accept {accept:?}"), &r.body);
    }
}

/// `promtool check metrics` on `text`: fails on any complaint (and when promtool is missing:
/// scripts/test-deps.sh installs it).
fn promtool_says_nothing(what: &str, text: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: run scripts/test-deps.sh as root (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics on {what}: {said}\n{text}");
}

#[tokio::test]
async fn metrics_carry_heartbeat_counters_and_quarantine_gauges() {
    let fx = Fx::new();
    let hb = observer_heartbeat(
        &[("applied", 1200), ("duplicate", 7), ("late", 3), ("unknown_type", 2), ("overflows", 4), ("write_errors", 5), ("nodes", 9)],
        json!({"quarantined_by_reason": {"invalid": 3, "clock_skew": 1, "too_old": 0, "not_regular_file": 2, "bad_day_folder": 0}, "last_fold_at": null}),
    );
    fx.state.root.write_heartbeat("observer", &hb).unwrap();
    let mut ex = observer_heartbeat(&[("write_errors", 11)], serde_json::Value::Null);
    ex.daemon = "executor".into();
    fx.state.root.write_heartbeat("executor", &ex).unwrap();
    let mut sup = observer_heartbeat(&[], serde_json::Value::Null);
    sup.daemon = "supervisor".into();
    fx.state.root.write_heartbeat("supervisor", &sup).unwrap();
    let q = fx.tmp.root().join("quarantine");
    for name in ["a.json", "b.json"] {
        std::fs::write(q.join("events").join(name), "x").unwrap();
        std::fs::write(q.join("events").join(format!("{name}.reason")), "invalid").unwrap();
    }
    std::fs::write(q.join("actions/c.json"), "x").unwrap();

    // As Prometheus asks (OpenMetrics by name); the classic format is checked by promtool below.
    let r = fx.send(req("GET", "/metrics", "127.0.0.1").header("accept", "application/openmetrics-text; version=1.0.0").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    let lines: Vec<&str> = r.body.lines().collect();
    for want in [
        "# TYPE homelab_observer_events counter",
        "homelab_observer_events_total{outcome=\"applied\"} 1200",
        "homelab_observer_events_total{outcome=\"duplicate\"} 7",
        "homelab_observer_events_total{outcome=\"late\"} 3",
        "homelab_observer_events_total{outcome=\"unknown_type\"} 2",
        "homelab_observer_watch_overflows_total 4",
        "homelab_observer_events_quarantined_total{reason=\"invalid\"} 3",
        "homelab_observer_events_quarantined_total{reason=\"clock_skew\"} 1",
        "homelab_observer_events_quarantined_total{reason=\"too_old\"} 0",
        "homelab_observer_events_quarantined_total{reason=\"not_regular_file\"} 2",
        "homelab_observer_events_quarantined_total{reason=\"bad_day_folder\"} 0",
        "homelab_write_errors_total{daemon=\"observer\"} 5",
        "homelab_write_errors_total{daemon=\"executor\"} 11",
        "homelab_quarantine_files{kind=\"events\"} 2",
        "homelab_quarantine_files{kind=\"actions\"} 1",
        "homelab_quarantine_files{kind=\"outbox\"} 0",
    ] {
        assert!(lines.contains(&want), "metrics lack {want:?}:\n{}", r.body);
    }
    assert!(
        !r.body.contains("daemon=\"supervisor\"} 0\nhomelab_write") && !r.body.contains("homelab_write_errors_total{daemon=\"supervisor\"}"),
        "no write_errors key, no series"
    );
    assert!(!r.body.contains("outcome=\"nodes\""));
    promtool_check(&fx).await;
}

#[tokio::test]
async fn a_corrupt_heartbeat_does_not_break_metrics_or_pages() {
    let fx = Fx::new();
    fx.state.root.write_heartbeat("observer", &observer_heartbeat(&[("applied", 5)], serde_json::Value::Null)).unwrap();
    let hb_dir = fx.tmp.root().join("state/heartbeat");
    std::fs::write(hb_dir.join("supervisor.json"), "{\"daemon\": \"supervisor\", trunc").unwrap();
    std::fs::write(hb_dir.join("executor.json"), "[1, 2, 3]").unwrap();
    // Valid JSON of the wrong shape in the observer's extra is ignored too.
    let r = fx.send(get("/metrics")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for want in [
        "homelab_observer_events_total{outcome=\"applied\"} 5",
        "homelab_daemon_stopped{daemon=\"supervisor\"} 1",
        "homelab_daemon_stopped{daemon=\"executor\"} 1",
    ] {
        assert!(r.body.lines().any(|l| l == want), "metrics lack {want:?}:\n{}", r.body);
    }
    promtool_check(&fx).await;
    for path in ["/", "/summary", "/summary.md"] {
        let r = fx.send(get(path)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    assert_eq!(fx.send(get("/summary")).await.json()["daemons"]["supervisor"]["stopped"], true);
    fx.state.root.write_heartbeat("observer", &observer_heartbeat(&[], json!({"quarantined_by_reason": [1, 2]}))).unwrap();
    assert_eq!(fx.send(get("/metrics")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn ingest_refuses_events_with_insane_clocks_with_422() {
    let fx = Fx::new();
    fx.state.root.write_agent_tokens(&serde_json::from_value(json!({"edge-1": "node-token-1"})).unwrap()).unwrap();
    let now = chrono::Utc::now();
    let at = |d: chrono::Duration| Event::new(now + d, "edge-1", "service_healthy", Some("mqtt"));
    let before = fx.disk();
    let cases = [
        ("5 years ahead", vec![at(chrono::Duration::days(5 * 365))], "clock_skew", 0),
        ("older than the 14-day retention", vec![at(-chrono::Duration::days(15))], "too_old", 0),
        ("one bad event spoils the batch", vec![at(chrono::Duration::zero()), at(chrono::Duration::minutes(6))], "clock_skew", 1),
    ];
    for (what, events, code, index) in cases {
        let body = if events.len() == 1 { serde_json::to_string(&events[0]) } else { serde_json::to_string(&events) }.unwrap();
        let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {}", r.body);
        let v = r.json();
        assert_eq!((v["code"].as_str(), v["index"].as_u64()), (Some(code), Some(index)), "{what}: {v}");
        assert_eq!(v["id"], events[index as usize].id.to_string());
        let msg = v["error"].as_str().unwrap();
        assert!(msg.starts_with(&format!("event {index}: {code}: ")), "{what}: {msg}");
        assert_eq!(fx.disk(), before, "{what}: nothing of a refused request is written");
    }
    // Within the limits: 4 minutes ahead, 13 days old (retention counts whole UTC days, as the
    // observer deletes day folders).
    let ok = serde_json::to_string(&vec![at(chrono::Duration::minutes(4)), at(-chrono::Duration::days(13))]).unwrap();
    let r = fx.send(bearer_post("/api/v1/events", "node-token-1", &ok)).await;
    assert_eq!((r.status, r.json()["written"].as_u64()), (StatusCode::OK, Some(2)), "{}", r.body);

    // The limits are configuration.
    let tight = Fx::with(|c| {
        c.max_clock_skew = std::time::Duration::from_secs(30);
        c.event_retention_days = 1;
    });
    tight.state.root.write_agent_tokens(&serde_json::from_value(json!({"edge-1": "node-token-1"})).unwrap()).unwrap();
    for (d, code) in [(chrono::Duration::minutes(1), "clock_skew"), (-chrono::Duration::hours(49), "too_old")] {
        let r = tight.send(bearer_post("/api/v1/events", "node-token-1", &serde_json::to_string(&at(d)).unwrap())).await;
        assert_eq!((r.status, r.json()["code"].as_str().map(str::to_owned)), (StatusCode::UNPROCESSABLE_ENTITY, Some(code.to_owned())));
    }
}

#[tokio::test]
async fn deploys_are_read_and_a_rollback_is_proposed_pending() {
    use homelab_core::deploy::{Generation, HeldContainer, hold_tag};
    let fx = Fx::new();
    let id = "20261207T230102.123Z";
    let g = Generation {
        id: id.into(),
        node: "edge-1".into(),
        service: "mqtt".into(),
        project: "mqtt".into(),
        compose_dir: "/srv/mqtt".into(),
        taken_at: homelab_core::parse_compact_ts(id).unwrap(),
        held_by: Some("redeploy-edge-1-mqtt".into()),
        containers: vec![HeldContainer {
            compose_service: "broker".into(),
            container: "mqtt_broker_1".into(),
            image: "eclipse-mosquitto:2".into(),
            image_id: "sha256:00112233445566778899".into(),
            repo_digest: None,
            hold_tag: hold_tag("mqtt", "broker", id),
        }],
        files: vec![],
    };
    let secret = homelab_store::deploys::HeldContents { files: [("/srv/mqtt/.env".to_owned(), "PASSWORD=hunter2\n".to_owned())].into() };
    fx.state.root.save_generation(&g, &secret).unwrap();

    let r = fx.send(get("/api/v1/services/edge-1/mqtt/deploys")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["generations"][0]["id"], id);
    assert_eq!(r.json()["history"], json!([]));
    assert!(!r.body.contains("hunter2"), "held files' content is never served: {}", r.body);
    assert_eq!(fx.send(get("/api/v1/services/Edge/mqtt/deploys")).await.status, StatusCode::BAD_REQUEST);

    let path = "/api/v1/services/edge-1/mqtt/rollback";
    let r = fx.send(bearer_post(path, UI_TOKEN, &format!(r#"{{"generation": "{id}", "reason": "v2 drops clients"}}"#))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        (r.json()["id"].as_str(), r.json()["state"].as_str(), r.json()["generation"].as_str()),
        (Some("rollback-edge-1-mqtt"), Some("pending"), Some(id))
    );
    let before = fx.disk();
    for (body, status) in [
        (format!(r#"{{"generation": "{id}"}}"#), StatusCode::CONFLICT),
        (r#"{"generation": "20200101T000000.000Z"}"#.to_owned(), StatusCode::CONFLICT),
        (r#"{"generation": "../../secrets"}"#.to_owned(), StatusCode::CONFLICT),
        (r#"{"gen": 1}"#.to_owned(), StatusCode::BAD_REQUEST),
    ] {
        let r = fx.send(bearer_post(path, UI_TOKEN, &body)).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
    }
    assert_eq!(fx.disk(), before, "refusals change nothing");
}
