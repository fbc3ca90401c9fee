//! Users, roles and groups (issue 16): role × group × action through the router, each refusal
//! with nothing changed on disk; password logins, per-user tokens, sessions that survive a
//! restart and can be revoked; rate limits with back-off; the audit log.

use std::sync::Arc;

use axum::body::Body;
use axum::http::StatusCode;
use control_plane_ui::AppState;
use homelab_core::drift::NextStep;
use homelab_core::plan::DriftKind;
use homelab_store::users::{Role, User, hash_password, new_token};

use crate::files::{drift_entry, write_drift};
use crate::fixture::*;

pub const PW: &str = "a long enough password";

/// Nodes: web-1 (`group: web`), db-1 (`groups: [db, backup]`), misc-1 (no group).
pub fn hosts(fx: &Fx) {
    fx.tmp.write_host("web-1", "group: web\nservices:\n  app: {}\n");
    fx.tmp.write_host("db-1", "groups: [db, backup]\nservices:\n  pg: {}\n");
    fx.tmp.write_host("misc-1", "services:\n  tool: {}\n");
}

/// Users with a password and an API token each; returns (name, token).
pub fn users(fx: &Fx) -> Vec<(&'static str, String)> {
    let now = chrono::Utc::now();
    let hash = hash_password(PW).unwrap();
    let list: [(&str, Role, &[&str]); 4] =
        [("ada", Role::Admin, &[]), ("otto", Role::Operator, &["web"]), ("olga", Role::Operator, &["db"]), ("vera", Role::Viewer, &["web", "db"])];
    let mut tokens = Vec::new();
    fx.state
        .root
        .update_users(|f| -> std::io::Result<()> {
            for (name, role, groups) in list {
                f.users.insert(
                    name.into(),
                    User {
                        role,
                        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                        password_hash: Some(hash.clone()),
                        telegram_ids: vec![],
                        created_at: now,
                        updated_at: now,
                        sessions_not_before: None,
                    },
                );
                let (token, rec) = new_token(name, "test", now, chrono::Duration::days(1));
                f.tokens.push(rec);
                tokens.push((name, token));
            }
            Ok(())
        })
        .unwrap();
    tokens
}

fn post_as(uri: &str, token: &str, peer: &str) -> axum::http::Request<Body> {
    req("POST", uri, peer).header("authorization", format!("Bearer {token}")).header("content-type", "application/json").body(Body::empty()).unwrap()
}

pub fn audit_today(fx: &Fx) -> Vec<homelab_store::audit::AuditRecord> {
    fx.state.root.read_audit(chrono::Utc::now().date_naive(), &Default::default()).unwrap().records
}

#[tokio::test]
async fn role_by_group_by_action_table_through_the_router() {
    // (user, node, allowed for approve/reject/retry)
    let table: &[(&str, &str, bool)] = &[
        ("ada", "web-1", true),
        ("ada", "db-1", true),
        ("ada", "misc-1", true),
        ("otto", "web-1", true),
        ("otto", "db-1", false),
        ("otto", "misc-1", false),
        ("olga", "web-1", false),
        ("olga", "db-1", true),
        ("olga", "misc-1", false),
        ("vera", "web-1", false),
        ("vera", "db-1", false),
        ("vera", "misc-1", false),
    ];
    let service = |node: &str| match node {
        "web-1" => "app",
        "db-1" => "pg",
        _ => "tool",
    };
    for what in ["approve", "reject", "retry"] {
        for (user, node, allowed) in table {
            let fx = Fx::new();
            hosts(&fx);
            let tokens = users(&fx);
            let token = &tokens.iter().find(|(n, _)| n == user).unwrap().1;
            let id = if what == "retry" {
                // A drift row that a retry may propose again (no action with the id is active).
                let id = format!("redeploy-{node}-{}", service(node));
                write_drift(
                    &fx,
                    vec![drift_entry(node, Some(service(node)), DriftKind::UnhealthyService, NextStep::RemediationExhausted, Some(&id), Some(600))],
                );
                id
            } else {
                fx.pending(node, service(node))
            };
            let before = fx.disk();
            let r = fx.send(post_as(&format!("/api/v1/actions/{id}/{what}"), token, "192.0.2.10")).await;
            let case = format!("{user} {what} on {node}: {} {}", r.status, r.body);
            if *allowed {
                assert!(r.status.is_success(), "{case}");
                assert_ne!(fx.disk(), before, "{case}");
                let a = fx.state.root.find_action(&id).unwrap().map(|f| f.action);
                let by = match what {
                    "retry" => a.unwrap().history[0].by.clone(),
                    _ => {
                        // Moved to approved/ or rejected/: look it up there.
                        let state = if what == "approve" { homelab_core::ActionState::Approved } else { homelab_core::ActionState::Rejected };
                        let moved = fx.state.root.list_actions(state).unwrap();
                        moved[0].action.history.last().unwrap().by.clone()
                    }
                };
                assert_eq!(by, format!("api:{user}"), "{case}");
            } else {
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{case}");
                assert_eq!(r.json()["code"], "forbidden", "{case}");
                assert_eq!(fx.disk(), before, "{case}: nothing may change on a refusal");
            }
            // Every decision is audited with who, role, channel, source and outcome.
            let rec = audit_today(&fx).into_iter().find(|r| r.what == what).unwrap_or_else(|| panic!("{case}: no audit record"));
            assert_eq!((rec.who.as_str(), rec.channel.as_str(), rec.source.as_str(), rec.target.as_str()), (*user, "api", "192.0.2.10", id.as_str()), "{case}");
            assert_eq!(rec.outcome, if *allowed { "ok" } else { "refused" }, "{case}");
        }
    }
}

#[tokio::test]
async fn form_buttons_check_the_same_rule_for_sessions_of_local_users() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let id = fx.pending("db-1", "pg");
    // otto logs in with his password and presses Approve on a db-1 action: refused, nothing changes.
    let cookie = password_login(&fx, "otto", PW, "192.0.2.20").await;
    let page = fx.send(req("GET", "/actions", "192.0.2.20").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    let before = fx.disk();
    let r = fx
        .send(
            req("POST", &format!("/actions/{id}/approve"), "192.0.2.20")
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(fx.disk(), before);
    // olga (group db) may.
    let cookie = password_login(&fx, "olga", PW, "192.0.2.21").await;
    let page = fx.send(req("GET", "/actions", "192.0.2.21").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    let r = fx
        .send(
            req("POST", &format!("/actions/{id}/approve"), "192.0.2.21")
                .header("cookie", &cookie)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = fx.state.root.list_actions(homelab_core::ActionState::Approved).unwrap();
    assert_eq!(a[0].action.history.last().unwrap().by, "ui:olga");
}

#[tokio::test]
async fn proxy_users_get_role_and_groups_from_headers_only_from_trusted_proxies() {
    let fx = Fx::with(|c| {
        c.access.proxy_default_role = "viewer".into();
        c.access.proxy_operator_groups = "homelab-operators".into();
    });
    hosts(&fx);
    let id = fx.pending("web-1", "app");
    let send = |user: &str, groups: &str, peer: &str| {
        req("POST", &format!("/api/v1/actions/{id}/approve"), peer)
            .header("x-authentik-username", user)
            .header("x-authentik-groups", groups)
            .header("x-csrf-token", "wrong")
            .body(Body::empty())
            .unwrap()
    };
    let before = fx.disk();
    // A viewer by default: refused before CSRF matters? No: CSRF first (401/403), then role.
    let r = fx.send(send("pat", "", "192.0.2.1")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "untrusted address: {}", r.body);
    // From the proxy, with the right CSRF token (read from a page), but in no operator group.
    let page = fx.send(req("GET", "/actions", PROXY).header("x-authentik-username", "pat").body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    let mk = |groups: &str| {
        req("POST", &format!("/api/v1/actions/{id}/approve"), PROXY)
            .header("x-authentik-username", "pat")
            .header("x-authentik-groups", groups)
            .header("x-csrf-token", &csrf)
            .body(Body::empty())
            .unwrap()
    };
    let r = fx.send(mk("staff")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Operator, but the node's group is not among theirs.
    let r = fx.send(mk("homelab-operators|db")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(fx.disk(), before);
    // Operator in group web (authentik separates groups with '|').
    let r = fx.send(mk("homelab-operators|web")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Logs in with a password from `peer`; returns the `Cookie` header value.
pub async fn password_login(fx: &Fx, user: &str, pw: &str, peer: &str) -> String {
    let r = try_login(fx, user, pw, peer).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.header("set-cookie").split(';').next().unwrap().to_owned()
}

async fn try_login(fx: &Fx, user: &str, pw: &str, peer: &str) -> Resp {
    let body = format!("user={user}&token={}", pw.replace(' ', "+"));
    fx.send(
        req("POST", "/login", peer)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", "http://ui.test")
            .body(Body::from(body))
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn sessions_survive_a_restart_and_can_be_revoked() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let cookie = password_login(&fx, "ada", PW, "192.0.2.30").await;
    let id_of_cookie = cookie.split_once('=').unwrap().1.to_owned();
    // Only the hash is on disk, mode 0600.
    let text = std::fs::read_to_string(fx.state.root.display_path(homelab_store::Doc::Sessions)).unwrap();
    assert!(!text.contains(&id_of_cookie), "the session id itself is never stored");
    assert_eq!(fx.state.root.file_mode(homelab_store::Doc::Sessions).unwrap(), 0o600);

    // A new process on the same data root (a restart) knows the session.
    let again = Arc::new(AppState::new(&config(&fx.tmp)).unwrap());
    let app = control_plane_ui::router(again.clone());
    let page = send(&app, req("GET", "/actions", "192.0.2.30").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("name=\"csrf\""), "logged in after the restart");

    // An admin ends ada's sessions (what `hcp user logout` / `hcp user remove` do).
    fx.state
        .root
        .update_users(|f| -> std::io::Result<()> {
            f.users.get_mut("ada").unwrap().sessions_not_before = Some(chrono::Utc::now());
            Ok(())
        })
        .unwrap();
    let page = send(&app, req("GET", "/actions", "192.0.2.30").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    // Reads are open without SUMMARY_TOKEN: the page renders, but for nobody (no forms).
    assert!(!page.body.contains("name=\"csrf\""), "revoked: no longer logged in");
    let r = send(&app, req("POST", "/api/v1/actions/x/approve", "192.0.2.30").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // Expiry: a session past its time is refused.
    let cookie = password_login(&fx, "olga", PW, "192.0.2.31").await;
    fx.state
        .root
        .update_sessions(|f| -> std::io::Result<()> {
            for s in f.sessions.values_mut() {
                s.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
            }
            Ok(())
        })
        .unwrap();
    let r = fx.send(req("POST", "/api/v1/actions/x/approve", "192.0.2.31").header("cookie", &cookie).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test]
async fn failed_logins_back_off_per_address_and_user_without_slowing_others() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    // ada logged in from her usual address before.
    password_login(&fx, "ada", PW, "203.0.113.9").await;

    let attacker = "192.0.2.66";
    let mut waits = Vec::new();
    for i in 0..14 {
        let r = try_login(&fx, "ada", &format!("guess {i} wrong"), attacker).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            waits.push(r.header("retry-after").parse::<u64>().unwrap());
        } else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        }
    }
    assert!(!waits.is_empty(), "the attacker's address is blocked after {} free failures", control_plane_ui::auth::ADDR_FREE_FAILURES);
    // Blocked means blocked: even the right password from that address is refused at once.
    let r = try_login(&fx, "ada", PW, attacker).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);

    // Spread over many addresses, the guesses against ada pass the per-user limit ...
    for i in 0..24 {
        let _ = try_login(&fx, "ada", "still wrong", &format!("198.51.100.{i}")).await;
    }
    let r = try_login(&fx, "ada", PW, "198.51.100.200").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "a new address guessing ada waits: {}", r.body);
    // ... but ada from her known address, and anybody else anywhere, log in at once.
    let started = std::time::Instant::now();
    password_login(&fx, "ada", PW, "203.0.113.9").await;
    password_login(&fx, "otto", PW, "203.0.113.50").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "no waiting for a correct login elsewhere");

    let r1 = try_login(&fx, "vera", "x", "192.0.2.77").await;
    assert_eq!(r1.status, StatusCode::UNAUTHORIZED);
    let counters = fx.state.auth.counters.snapshot();
    let get = |k: &str, o: &str| counters.iter().find(|(a, b, _)| *a == k && *b == o).unwrap().2;
    // 10 from the attacker, 10 more until ada's user limit, vera's 1; the rest waited.
    assert!(get("login", "refused") >= 21 && get("login", "rate_limited") >= 5 && get("login", "ok") >= 3, "{counters:?}");

    // The audit log has the failures without the passwords typed.
    let recs = audit_today(&fx);
    assert!(recs.iter().any(|r| r.what == "login" && r.outcome == "refused" && r.who == "ada"));
    assert!(recs.iter().any(|r| r.what == "login" && r.outcome == "ok" && r.who == "otto" && r.role == "operator"));
    let raw = std::fs::read_dir(fx.state.root.audit_dir()).unwrap().map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect::<String>();
    assert!(!raw.contains(PW) && !raw.contains("guess 0") && !raw.contains(UI_TOKEN), "no secret in the audit log");
}

#[tokio::test]
async fn bad_tokens_are_rate_limited_and_never_block_another_address() {
    let fx = Fx::new();
    let id = fx.pending("web-1", "app");
    let mut last = StatusCode::OK;
    for i in 0..14 {
        let r = fx.send(post_as(&format!("/api/v1/actions/{id}/approve"), &format!("hcpt_guess{i}"), "192.0.2.99")).await;
        last = r.status;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
            assert!(r.json()["retry_after"].as_u64().is_some());
        }
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // The UI token from another address works at once.
    let r = fx.send(post_as(&format!("/api/v1/actions/{id}/approve"), UI_TOKEN, "192.0.2.100")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let c = fx.state.auth.counters.snapshot();
    assert!(c.iter().any(|(k, o, n)| *k == "token" && *o == "refused" && *n >= 10), "{c:?}");
    assert!(c.iter().any(|(k, o, n)| *k == "token" && *o == "rate_limited" && *n >= 1), "{c:?}");
    // And in /metrics.
    let m = fx.send(req("GET", "/metrics", "192.0.2.100").header("authorization", format!("Bearer {UI_TOKEN}")).body(Body::empty()).unwrap()).await;
    let line = m
        .body
        .lines()
        .find(|l| l.contains("auth_attempts_total") && l.contains("kind=\"token\"") && l.contains("outcome=\"rate_limited\""))
        .unwrap_or_else(|| panic!("{}", m.body));
    assert!(!line.trim_end().ends_with(" 0"), "{line}");
}

#[tokio::test]
async fn audit_api_is_for_admins() {
    let fx = Fx::new();
    hosts(&fx);
    let tokens = users(&fx);
    let tok = |n: &str| tokens.iter().find(|(u, _)| *u == n).unwrap().1.clone();
    let id = fx.pending("web-1", "app");
    fx.send(post_as(&format!("/api/v1/actions/{id}/reject"), &tok("otto"), "192.0.2.5")).await;
    let get = |t: String| req("GET", "/api/v1/audit?what=reject", "192.0.2.5").header("authorization", format!("Bearer {t}")).body(Body::empty()).unwrap();
    let r = fx.send(get(tok("otto"))).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = fx.send(get(tok("ada"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let recs = r.json()["records"].as_array().unwrap().clone();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!((recs[0]["who"].as_str(), recs[0]["role"].as_str(), recs[0]["outcome"].as_str()), (Some("otto"), Some("operator"), Some("ok")));
    // Tokens of removed users stop working at once.
    fx.state
        .root
        .update_users(|f| -> std::io::Result<()> {
            f.users.remove("ada");
            Ok(())
        })
        .unwrap();
    let r = fx.send(get(tok("ada"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
