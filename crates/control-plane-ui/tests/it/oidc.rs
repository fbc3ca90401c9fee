//! OpenID Connect login (issue 16) against a real provider: Debian's glewlwyd, started by each
//! test on 127.0.0.1 (testkit::Glewlwyd). Headless Chromium logs in through the provider's own
//! login page and the session survives a UI restart; roles and groups come from claims (a local
//! user's win); a replayed, unknown or foreign state and a wrong nonce are refused, audited and
//! log nobody in; a provider that is down leaves the UI serving and the login page saying why.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use control_plane_ui::AppState;
use control_plane_ui::auth::Secret;
use fantoccini::Locator;
use homelab_core::ActionState;
use homelab_store::audit::AuditRecord;
use homelab_store::users::{Role, User};
use testkit::Glewlwyd;

use crate::browser::{DEADLINE, Served};
use crate::fixture::*;

const CLIENT: &str = "hcp-ui";
const SECRET: &str = "client-secret-4f1c2e";
const PW: &str = "provider-password-1";
/// The UI's address as the router tests see it (`host: ui.test`).
const ROUTER_CALLBACK: &str = "http://ui.test/auth/oidc/callback";

fn sso(c: &mut control_plane_ui::Config, idp: &Glewlwyd, redirect: &str) {
    c.access.oidc_issuer = Some(idp.issuer());
    c.access.oidc_client_id = Some(CLIENT.into());
    c.access.oidc_client_secret = Some(Secret(SECRET.into()));
    c.access.oidc_redirect_url = Some(redirect.into());
}

/// The provider with the UI's client registered, and a UI (router) using it.
fn setup() -> (Glewlwyd, Fx) {
    let idp = Glewlwyd::start();
    idp.add_client(CLIENT, SECRET, ROUTER_CALLBACK);
    let fx = Fx::with(|c| sso(c, &idp, ROUTER_CALLBACK));
    fx.tmp.write_host("web-1", "group: web\nservices:\n  app: {}\n");
    fx.tmp.write_host("db-1", "group: db\nservices:\n  pg: {}\n");
    (idp, fx)
}

/// "Log in with single sign-on": (the provider's authorization URL, the pending-login cookie).
async fn begin(fx: &Fx, peer: &str) -> (String, String) {
    let r = fx.send(req("GET", "/auth/oidc/login", peer).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = r.header("set-cookie");
    assert!(
        cookie.starts_with("hcp_oidc=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/auth/oidc"),
        "{cookie}"
    );
    let url = r.header("location");
    assert!(url.contains("code_challenge_method=S256") && url.contains("nonce=") && url.contains("state="), "{url}");
    (url, cookie.split(';').next().unwrap().to_owned())
}

/// The provider's answer for `user` (logged in there, consent given): the callback path.
fn provider(idp: &Glewlwyd, user: &str, auth_url: &str) -> String {
    let session = idp.login(user, PW);
    idp.grant(&session, CLIENT, "openid profile email");
    let back = idp.authorize(&session, auth_url);
    back.strip_prefix("http://ui.test").unwrap_or_else(|| panic!("the provider sent the browser to {back}")).to_owned()
}

async fn callback(fx: &Fx, path: &str, pending: &str, peer: &str) -> Resp {
    fx.send(req("GET", path, peer).header("cookie", pending).body(Body::empty()).unwrap()).await
}

/// A whole login through the router: the `Cookie` header of the new session.
async fn login_as(fx: &Fx, idp: &Glewlwyd, user: &str, peer: &str) -> String {
    let (url, pending) = begin(fx, peer).await;
    let path = provider(idp, user, &url);
    let r = callback(fx, &path, &pending, peer).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("http-equiv=\"refresh\""), "the page moves on to the dashboard: {}", r.body);
    let session =
        r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).find(|c| c.starts_with("hcp_session=")).expect("session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"), "{session}");
    session.split(';').next().unwrap().to_owned()
}

fn audit_today(fx: &Fx) -> Vec<AuditRecord> {
    fx.state.root.read_audit(chrono::Utc::now().date_naive(), &Default::default()).unwrap().records
}

async fn approve_form(fx: &Fx, cookie: &str, id: &str, peer: &str) -> Resp {
    let page = fx.send(req("GET", "/actions", peer).header("cookie", cookie).body(Body::empty()).unwrap()).await;
    let csrf = csrf_in(&page.body);
    fx.send(
        req("POST", &format!("/actions/{id}/approve"), peer)
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(format!("csrf={csrf}")))
            .unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_groups_come_from_claims_and_a_local_user_wins() {
    let (idp, fx) = setup();
    idp.add_user("otto", PW, Some("operator"), &["web"]);
    idp.add_user("vera", PW, Some("admin"), &["web", "db"]);
    // vera is also a local viewer: her local role applies, whatever the provider says.
    let now = chrono::Utc::now();
    fx.state
        .root
        .update_users(|f| -> std::io::Result<()> {
            f.users.insert(
                "vera".into(),
                User {
                    role: Role::Viewer,
                    groups: vec![],
                    password_hash: None,
                    telegram_ids: vec![],
                    created_at: now,
                    updated_at: now,
                    sessions_not_before: None,
                },
            );
            Ok(())
        })
        .unwrap();
    let db = fx.pending("db-1", "pg");
    let web = fx.pending("web-1", "app");

    let otto = login_as(&fx, &idp, "otto", "192.0.2.40").await;
    // Stored with the provider's role and groups (otto is no local user), never the id itself.
    let sessions = fx.state.root.read_sessions().unwrap();
    let s = sessions.sessions.values().find(|s| s.user == "otto").expect("otto's session");
    assert_eq!((s.role, s.groups.clone(), s.via.as_deref()), (Some(Role::Operator), vec!["web".to_owned()], Some("oidc")));
    assert!(!std::fs::read_to_string(fx.state.root.display_path(homelab_store::Doc::Sessions)).unwrap().contains(otto.split_once('=').unwrap().1));

    // An operator of group web: refused on db-1 (nothing changes), allowed on web-1.
    let before = fx.disk();
    let r = approve_form(&fx, &otto, &db, "192.0.2.40").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("operator otto acts on groups [web]"), "{}", r.body);
    assert_eq!(fx.disk(), before, "a refused approval changes nothing");
    let r = approve_form(&fx, &otto, &web, "192.0.2.40").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let a = fx.state.root.read_active(ActionState::Approved, &web).unwrap().expect("approved on disk");
    assert_eq!(a.history.last().unwrap().by, "ui:otto");

    // vera: the provider says admin, the local user says viewer.
    let vera = login_as(&fx, &idp, "vera", "192.0.2.41").await;
    let before = fx.disk();
    let r = approve_form(&fx, &vera, &db, "192.0.2.41").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("vera is a viewer"), "{}", r.body);
    assert_eq!(fx.disk(), before);

    // `hcp user logout otto` ends his sessions (he is no local user: only the sessions go).
    let n = fx
        .state
        .root
        .update_sessions(|f| -> std::io::Result<usize> {
            let before = f.sessions.len();
            f.sessions.retain(|_, s| s.user != "otto");
            Ok(before - f.sessions.len())
        })
        .unwrap();
    assert_eq!(n, 1);
    let r = fx.send(req("POST", &format!("/api/v1/actions/{db}/approve"), "192.0.2.40").header("cookie", &otto).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);

    // And a session of his expires like any other.
    let otto = login_as(&fx, &idp, "otto", "192.0.2.40").await;
    fx.state
        .root
        .update_sessions(|f| -> std::io::Result<()> {
            for s in f.sessions.values_mut().filter(|s| s.user == "otto") {
                s.expires_at = chrono::Utc::now() - chrono::Duration::seconds(1);
            }
            Ok(())
        })
        .unwrap();
    let r = fx.send(req("POST", &format!("/api/v1/actions/{db}/approve"), "192.0.2.40").header("cookie", &otto).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_unknown_foreign_states_and_a_wrong_nonce_are_refused_and_audited() {
    let (idp, fx) = setup();
    idp.add_user("otto", PW, Some("operator"), &["web"]);
    let peer = "192.0.2.50";
    let sessions = |fx: &Fx| fx.state.root.read_sessions().unwrap().sessions.len();

    // An unknown state (no login started here).
    let r = callback(&fx, "/auth/oidc/callback?state=forged&code=x", "hcp_oidc=whatever", peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("Single sign-on failed: this login is unknown or was already used"), "{}", r.body);

    // No state or code at all.
    let r = callback(&fx, "/auth/oidc/callback", "", peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("no state or no code"), "{}", r.body);

    // A real answer of the provider, brought back by another browser (not its pending cookie).
    let (url, _) = begin(&fx, peer).await;
    let path = provider(&idp, "otto", &url);
    let r = callback(&fx, &path, "hcp_oidc=someone-elses", peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("started in another browser"), "{}", r.body);
    assert_eq!(sessions(&fx), 0);

    // A good login, then the same answer replayed: the state is used up.
    let (url, pending) = begin(&fx, peer).await;
    let path = provider(&idp, "otto", &url);
    let r = callback(&fx, &path, &pending, peer).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(sessions(&fx), 1);
    let r = callback(&fx, &path, &pending, peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("already used"), "{}", r.body);
    assert!(!r.headers.get_all("set-cookie").iter().any(|c| c.to_str().unwrap().starts_with("hcp_session=")), "no session cookie on a refusal");
    assert_eq!(sessions(&fx), 1, "a replay logs nobody in");

    // The provider's own refusal (the person pressed cancel there).
    let (url, pending) = begin(&fx, peer).await;
    let state = url.split("state=").nth(1).unwrap().split('&').next().unwrap();
    let r = callback(&fx, &format!("/auth/oidc/callback?error=access_denied&error_description=user+said+no&state={state}"), &pending, peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("the provider answered access_denied (user said no)"), "{}", r.body);

    // The authorization request altered on its way (another nonce): the provider signs what it
    // was asked, and the ID token's nonce is not this login's.
    let (url, pending) = begin(&fx, peer).await;
    let nonce = url.split("nonce=").nth(1).unwrap().split('&').next().unwrap();
    let path = provider(&idp, "otto", &url.replace(&format!("nonce={nonce}"), "nonce=not-the-one"));
    let r = callback(&fx, &path, &pending, peer).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    assert!(r.body.contains("the ID token was refused") && r.body.to_lowercase().contains("nonce"), "{}", r.body);
    assert_eq!(sessions(&fx), 1, "nobody more logged in");

    // Audited: one ok login of otto, six refused, all on channel oidc, no code or secret.
    let audit: Vec<AuditRecord> = audit_today(&fx).into_iter().filter(|r| r.what == "login").collect();
    let ok: Vec<_> = audit.iter().filter(|r| r.outcome == "ok").collect();
    let refused: Vec<_> = audit.iter().filter(|r| r.outcome == "refused").collect();
    assert_eq!(ok.len(), 1, "{audit:?}");
    assert_eq!((ok[0].who.as_str(), ok[0].role.as_str(), ok[0].channel.as_str(), ok[0].source.as_str()), ("otto", "operator", "oidc", peer));
    assert_eq!(refused.len(), 6, "{audit:?}");
    assert!(refused.iter().all(|r| r.channel == "oidc" && r.who == "?" && r.source == peer), "{refused:?}");
    let code = path.split("code=").nth(1).unwrap().split('&').next().unwrap();
    let text = std::fs::read_to_string(fx.state.root.path().join(format!("audit/{}.jsonl", chrono::Utc::now().date_naive()))).unwrap();
    assert!(!text.contains(code) && !text.contains(SECRET), "no code or secret in the audit log");

    // Counted in the metrics.
    let m = fx.send(get("/metrics")).await;
    let line = |outcome: &str| {
        m.body
            .lines()
            .find(|l| l.starts_with("homelab_auth_attempts_total") && l.contains("kind=\"oidc\"") && l.contains(&format!("outcome=\"{outcome}\"")))
            .map(str::to_owned)
    };
    assert!(line("ok").is_some_and(|l| l.ends_with(" 1")), "{}", m.body);
    assert!(line("refused").is_some_and(|l| l.ends_with(" 6")), "{}", m.body);

    // Failures count against the address: after ten, it waits (429 at once, even for a start).
    for _ in 0..4 {
        callback(&fx, "/auth/oidc/callback?state=forged&code=x", "", peer).await;
    }
    let r = fx.send(req("GET", "/auth/oidc/login", peer).body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(!r.header("retry-after").is_empty());
    let r = fx.send(req("GET", "/auth/oidc/login", "192.0.2.51").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "another address is not slowed: {}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_leaves_the_ui_serving() {
    let tmp_port = testkit::free_port();
    let issuer = format!("http://127.0.0.1:{tmp_port}/api/oidc");
    let fx = Fx::with(|c| {
        c.access.oidc_issuer = Some(issuer.clone());
        c.access.oidc_client_id = Some(CLIENT.into());
        c.access.oidc_redirect_url = Some(ROUTER_CALLBACK.into());
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(control_plane_ui::run_on(fx.state.clone(), listener, shutdown.clone()));
    // Start-up discovery fails in the background; the login page says so and still serves.
    let deadline = std::time::Instant::now() + DEADLINE;
    let page = loop {
        let page = reqwest::get(format!("{base}/login")).await.unwrap();
        assert_eq!(page.status(), 200);
        let body = page.text().await.unwrap();
        if body.contains("id=\"sso-unavailable\"") {
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "the login page never said single sign-on is unavailable: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(page.contains("Single sign-on is unavailable: the provider at") && page.contains(&issuer), "{page}");
    assert!(page.contains("id=\"sso-login\"") && page.contains("id=\"login-form\""), "both ways in stay on the page: {page}");
    // The click tries again, and says why it cannot go on.
    let r = reqwest::get(format!("{base}/auth/oidc/login")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("Single sign-on is unavailable"));
    // Everything else works.
    assert_eq!(reqwest::get(format!("{base}/summary")).await.unwrap().status(), 200);
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, server).await.expect("server stops").unwrap().unwrap();
}

/// Where the login screenshots go: docs/screenshots (a person looks at them).
fn shots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_logs_in_through_the_provider_and_the_session_survives_a_restart() {
    let idp = Glewlwyd::start();
    idp.add_user("olga", PW, Some("operator"), &["web"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let redirect = format!("http://{}/auth/oidc/callback", listener.local_addr().unwrap());
    idp.add_client(CLIENT, SECRET, &redirect);
    let fx = Fx::with(|c| sso(c, &idp, &redirect));
    fx.tmp.write_host("web-1", "group: web\nservices:\n  app: {}\n");
    let ui = Served::start_on(&fx, listener).await;
    let (base, client) = (ui.base.clone(), ui.client.clone());
    let shots = shots();
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        // The login page with its single sign-on button, on a phone and a desktop.
        for (width, height, name) in [(390u32, 844u32, "phone"), (1280, 900, "desktop")] {
            client.set_window_size(width, height).await?;
            client.goto(&format!("{base}/login")).await?;
            client.wait().at_most(DEADLINE).for_element(Locator::Id("sso-login")).await?;
            let fits: bool = client.execute("return document.documentElement.scrollWidth <= window.innerWidth;", vec![]).await?.as_bool().unwrap_or(false);
            assert!(fits, "{width}px: the login page scrolls sideways");
            std::fs::write(shots.join(format!("login-sso-{name}.png")), client.screenshot().await?).unwrap();
        }
        // UI → provider's own login page → consent → UI callback → dashboard.
        client.find(Locator::Id("sso-login")).await?.click().await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("username")).await?.send_keys("olga").await?;
        client.find(Locator::Id("password")).await?.send_keys(PW).await?;
        client.find(Locator::Id("loginbut")).await?.click().await?;
        // The provider asks olga to let the UI see her identity, then to continue.
        client.wait().at_most(DEADLINE).for_element(Locator::XPath("//button[contains(., 'Grant access')]")).await?.click().await?;
        let who = loop {
            if let Ok(who) = client.find(Locator::Id("who")).await {
                break who.text().await?;
            }
            if let Ok(go) = client.find(Locator::XPath("//button[contains(., 'Continue') and not(@disabled)]")).await {
                let _ = go.click().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let url = client.current_url().await?;
        Ok::<_, fantoccini::error::CmdError>((who, url.to_string()))
    })
    .await;
    let page = client.source().await.unwrap_or_default();
    let (who, url) =
        result.unwrap_or_else(|_| panic!("browser steps timed out; the page:\n{page}\nprovider log:\n{}", idp.log())).expect("browser step failed");
    assert_eq!(who, "olga");
    assert_eq!(url, format!("{base}/"), "ends on the dashboard");
    let audit = audit_today(&fx);
    assert!(audit.iter().any(|r| r.what == "login" && r.channel == "oidc" && r.who == "olga" && r.outcome == "ok"), "{audit:?}");

    // A restart: another UI process on the same data root knows the session (same cookie: the
    // browser sends 127.0.0.1's cookies to any port).
    let mut c = config(&fx.tmp);
    sso(&mut c, &idp, &redirect);
    let mut ui = ui;
    let base2 = ui.restart_with(Arc::new(AppState::new(&c).unwrap())).await;
    let result = tokio::time::timeout(Duration::from_secs(60), async {
        client.goto(&format!("{base2}/")).await?;
        client.wait().at_most(DEADLINE).for_element(Locator::Id("who")).await?.text().await
    })
    .await;
    let _ = client.close().await;
    assert_eq!(result.expect("timed out").expect("browser step failed"), "olga", "still logged in after the restart");
    ui.stop_server().await;
}
