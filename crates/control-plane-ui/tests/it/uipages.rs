//! The silences page, the node page's mute buttons and the audit page through the router: who
//! may add and end a silence from a form (role × group, CSRF), what is written in state/silences
//! and in the audit log, and that the audit page is for admins and its filters filter.

use std::io::Write as _;

use axum::body::Body;
use axum::http::StatusCode;
use homelab_store::audit::AuditRecord;

use crate::fixture::*;
use crate::roles::{PW, audit_today, hosts, password_login, users};

/// The silence files on disk, by name.
fn silence_files(fx: &Fx) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fx.tmp.root().join("state/silences"))
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// A page as `cookie` sees it.
async fn page(fx: &Fx, uri: &str, cookie: &str) -> Resp {
    fx.send(req("GET", uri, "192.0.2.40").header("cookie", cookie).body(Body::empty()).unwrap()).await
}

/// A same-origin form post with `cookie`.
async fn form(fx: &Fx, uri: &str, cookie: &str, body: &str) -> Resp {
    fx.send(
        req("POST", uri, "192.0.2.40")
            .header("cookie", cookie)
            .header("origin", "http://ui.test")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(body.to_owned()))
            .unwrap(),
    )
    .await
}

/// Logs `user` in and reads the CSRF token of the silences page.
async fn session(fx: &Fx, user: &str) -> (String, String) {
    let cookie = password_login(fx, user, PW, "192.0.2.40").await;
    let p = page(fx, "/silences", &cookie).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let csrf = csrf_in(&p.body);
    (cookie, csrf)
}

#[tokio::test]
async fn an_operator_adds_silences_from_the_form_for_their_groups_only() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let (cookie, csrf) = session(&fx, "otto").await;
    let p = page(&fx, "/silences", &cookie).await;
    assert!(p.body.contains("id=\"silence-form\""), "an operator gets the form");
    assert!(p.body.contains("<option value=\"web-1/app\">"), "known targets are offered");

    // web-1 is in otto's group: written, and back to the list.
    let r =
        form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1%2Fapp&action_type=&duration=4h&duration_custom=&reason=swapping+its+disk")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), "/silences");
    let files = silence_files(&fx);
    assert_eq!(files.len(), 1, "{files:?}");
    let s = fx.state.root.list_silences().unwrap().remove(0);
    assert_eq!(
        (s.node.as_deref(), s.service.as_deref(), s.reason.as_str(), s.created_by.as_str()),
        (Some("web-1"), Some("app"), "swapping its disk", "ui:otto")
    );
    let hours = (s.ends_at - s.created_at).num_minutes();
    assert_eq!(hours, 240, "the 4 h of the select");
    let p = page(&fx, "/silences", &cookie).await;
    assert!(p.body.contains(&format!("data-id=\"{}\"", s.id)) && p.body.contains("swapping its disk"), "listed");
    let rec = audit_today(&fx).into_iter().find(|r| r.what == "silence").expect("audited");
    assert_eq!(
        (rec.who.as_str(), rec.role.as_str(), rec.channel.as_str(), rec.target.as_str(), rec.outcome.as_str()),
        ("otto", "operator", "ui", "web-1/app", "ok")
    );

    // db-1 is not: refused in plain words on the form, what was typed kept, nothing written.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=db-1&duration=1h&duration_custom=&reason=not+mine")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(
        r.body.contains("id=\"silence-error\"") && r.body.contains("Not muted: operator otto acts on groups [web]; node db-1 is in [db, backup]"),
        "{}",
        r.body
    );
    assert!(r.body.contains("value=\"db-1\"") && r.body.contains("value=\"not mine\""), "the form keeps what was typed");
    assert!(r.body.contains("data-live=\"false\""), "a page with an error is not swapped away by live updates");
    assert_eq!(silence_files(&fx), files, "nothing written on a refusal");
    assert!(audit_today(&fx).iter().any(|r| r.what == "silence" && r.outcome == "refused" && r.target == "db-1"));

    // A bad duration: 400, said on the form, nothing written. A typed duration wins over the select.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&duration_custom=soon&reason=later")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.contains("Not muted: duration: invalid duration &#34;soon&#34;") && r.body.contains("value=\"soon\""), "{}", r.body);
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&duration_custom=90m&reason=")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "an empty reason: {}", r.body);
    assert!(r.body.contains("needs a reason"), "{}", r.body);
    assert_eq!(silence_files(&fx), files);
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&duration_custom=90m&reason=firmware")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let s = fx.state.root.list_silences().unwrap().into_iter().find(|s| s.reason == "firmware").unwrap();
    assert_eq!((s.ends_at - s.created_at).num_minutes(), 90);

    // The API path audits too, with its channel.
    let r = fx.send(bearer_post("/api/v1/silences", UI_TOKEN, r#"{"target": "misc-1", "duration": "30m", "reason": "api"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(audit_today(&fx).iter().any(|r| r.what == "silence" && r.channel == "api" && r.who == "token" && r.target == "misc-1" && r.outcome == "ok"));
}

#[tokio::test]
async fn viewers_see_the_list_without_forms_and_their_posts_are_refused() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let r = fx.send(bearer_post("/api/v1/silences", UI_TOKEN, r#"{"target": "web-1", "duration": "1h", "reason": "maintenance"}"#)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let cookie = password_login(&fx, "vera", PW, "192.0.2.40").await;
    let p = page(&fx, "/silences", &cookie).await;
    assert!(p.body.contains("maintenance"), "viewers read silences");
    assert!(!p.body.contains("id=\"silence-form\"") && !p.body.contains("Expire now"), "no form for a viewer");
    assert!(p.body.contains("vera is a viewer"), "{}", p.body);
    // The CSRF token of her session (the logout form has it): still refused, nothing written.
    let csrf = csrf_in(&p.body);
    let before = silence_files(&fx);
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&reason=x")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("vera is a viewer and may only read"), "{}", r.body);
    let r = form(&fx, &format!("/silences/{id}/expire"), &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(silence_files(&fx), before);
    assert!(fx.state.root.read_silence(&id).unwrap().unwrap().expired_at.is_none());
    // Nobody logged in: the list, and a link to log in.
    let p = fx.send(get("/silences")).await;
    assert!(p.body.contains("maintenance") && p.body.contains("Log in to add or end a silence"), "{}", p.body);
}

#[tokio::test]
async fn expire_now_from_the_page_for_those_allowed() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let (cookie, csrf) = session(&fx, "otto").await;
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&reason=patching")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = fx.state.root.list_silences().unwrap()[0].id.clone();
    let p = page(&fx, "/silences", &cookie).await;
    assert!(p.body.contains(&format!("action=\"/silences/{id}/expire\"")), "otto may end his group's silence");

    // olga (group db) sees no button and is refused.
    let (olga, olga_csrf) = session(&fx, "olga").await;
    let p = page(&fx, "/silences", &olga).await;
    assert!(p.body.contains("patching") && !p.body.contains(&format!("action=\"/silences/{id}/expire\"")), "no button for another group's silence");
    let r = form(&fx, &format!("/silences/{id}/expire"), &olga, &format!("csrf={olga_csrf}")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("Not ended: operator olga acts on groups [db]"), "{}", r.body);
    assert!(fx.state.root.read_silence(&id).unwrap().unwrap().expired_at.is_none());

    // otto ends it: written with who, listed under ended, audited.
    let r = form(&fx, &format!("/silences/{id}/expire"), &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let s = fx.state.root.read_silence(&id).unwrap().unwrap();
    assert_eq!(s.expired_by.as_deref(), Some("ui:otto"));
    let p = page(&fx, "/silences", &cookie).await;
    assert!(p.body.contains("Nothing is muted.") && p.body.contains(&format!("class=\"silence ended\" data-id=\"{id}\"")), "{}", p.body);
    let recs = audit_today(&fx);
    assert!(recs.iter().any(|r| r.what == "silence_expire" && r.who == "otto" && r.channel == "ui" && r.target == id && r.outcome == "ok"), "{recs:?}");
    assert!(recs.iter().any(|r| r.what == "silence_expire" && r.who == "olga" && r.outcome == "refused"), "{recs:?}");
    // Once more: it already ended (409), said on the page.
    let r = form(&fx, &format!("/silences/{id}/expire"), &cookie, &format!("csrf={csrf}")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert!(r.body.contains("already ended"), "{}", r.body);
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_refused_and_write_nothing() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let (cookie, csrf) = session(&fx, "ada").await;
    let r = form(&fx, "/silences", &cookie, "target=web-1&duration=1h&reason=x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = form(&fx, "/silences", &cookie, "csrf=not-the-token&target=web-1&duration=1h&reason=x").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Cross-site, even with the token.
    let r = fx
        .send(
            req("POST", "/silences", "192.0.2.40")
                .header("cookie", &cookie)
                .header("origin", "http://evil.test")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(format!("csrf={csrf}&target=web-1&duration=1h&reason=x")))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(silence_files(&fx).is_empty(), "nothing written");
    // Expire without the token: refused, the silence untouched.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&reason=x")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id = fx.state.root.list_silences().unwrap()[0].id.clone();
    let r = form(&fx, &format!("/silences/{id}/expire"), &cookie, "").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(fx.state.root.read_silence(&id).unwrap().unwrap().expired_at.is_none());
}

#[tokio::test]
async fn mute_buttons_on_the_node_page() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let (cookie, csrf) = session(&fx, "otto").await;
    let p = page(&fx, "/nodes/web-1", &cookie).await;
    assert!(p.body.contains("Mute node 1 h") && p.body.contains("aria-label=\"Mute web-1/app for 1 hour\""), "{}", p.body);
    // One tap on the service's button: muted for an hour with the default reason, back to the node.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1%2Fapp&duration=1h&reason=muted+from+the+node+page&from=node")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.header("location"), "/nodes/web-1");
    let s = fx.state.root.list_silences().unwrap().remove(0);
    assert_eq!((s.target(), s.reason.as_str(), (s.ends_at - s.created_at).num_minutes()), ("web-1/app".to_owned(), "muted from the node page", 60));
    let p = page(&fx, "/nodes/web-1", &cookie).await;
    assert!(p.body.contains("class=\"muted-until\"") && !p.body.contains("aria-label=\"Mute web-1/app for 1 hour\""), "the row says muted instead: {}", p.body);
    assert!(p.body.contains("Mute node 1 h"), "the node itself is not muted yet");
    // Not otto's node: no buttons; a viewer neither.
    let p = page(&fx, "/nodes/db-1", &cookie).await;
    assert!(!p.body.contains("Mute node 1 h") && !p.body.contains("Mute 1 h"), "db-1 is not in otto's groups");
    let vera = password_login(&fx, "vera", PW, "192.0.2.41").await;
    let p = page(&fx, "/nodes/web-1", &vera).await;
    assert!(!p.body.contains("Mute node 1 h") && p.body.contains("class=\"muted-until\""), "a viewer sees what is muted, no button");
    // The whole node.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=web-1&duration=1h&reason=muted+from+the+node+page&from=node")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let p = page(&fx, "/nodes/web-1", &cookie).await;
    assert!(p.body.contains("id=\"node-muted\"") && !p.body.contains("Mute node 1 h"), "{}", p.body);
    // A refused mute from the node page answers with a page that leads back to the node.
    let r = form(&fx, "/silences", &cookie, &format!("csrf={csrf}&target=db-1&duration=1h&reason=muted+from+the+node+page&from=node")).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body.contains("href=\"/nodes/db-1\""), "{}", r.body);
}

#[tokio::test]
async fn the_audit_page_is_for_admins_and_its_filters_filter() {
    let fx = Fx::new();
    hosts(&fx);
    users(&fx);
    let root = &fx.state.root;
    let rec = |who: &str, role: &str, what: &str, target: &str, outcome: &str, detail: &str| {
        let r = AuditRecord::new(who, role, "api", "192.0.2.9", what, target, outcome).detail(detail);
        root.append_audit(&r, 90).unwrap();
    };
    rec("bob", "operator", "approve", "container-restart-web-1-app", "ok", "node web-1");
    rec("carl", "operator", "reject", "container-restart-db-1-pg", "refused", "operator carl acts on groups [web]; node db-1 is in [db]");
    rec("bob", "operator", "silence", "web-1/app", "ok", "silence s-1 until later");
    // A torn last line, as a crash leaves it.
    let file = root.audit_dir().join(format!("{}.jsonl", chrono::Utc::now().date_naive().format("%Y-%m-%d")));
    std::fs::OpenOptions::new().append(true).open(&file).unwrap().write_all(b"{\"time\":\"20").unwrap();

    let admin = password_login(&fx, "ada", PW, "192.0.2.40").await;
    let p = page(&fx, "/audit", &admin).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert!(p.body.contains("href=\"/audit\" aria-current=\"page\">Audit</a>"), "admins have Audit in the nav");
    assert!(p.body.contains("container-restart-web-1-app") && p.body.contains("container-restart-db-1-pg"));
    assert!(p.body.contains("id=\"audit-skipped\"") && p.body.contains("1 line of this day"), "torn lines are counted: {}", p.body);
    assert!(p.body.contains("class=\"audit-row refused\""), "refused rows are marked for highlighting");
    // Newest first: the silence (written last) before the approve; ada's own login is newer still.
    let (silence_at, approve_at) = (p.body.find("web-1/app").unwrap(), p.body.find("container-restart-web-1-app").unwrap());
    assert!(silence_at < approve_at, "newest first");

    let p = page(&fx, "/audit?who=bob&what=approve", &admin).await;
    assert!(p.body.contains("container-restart-web-1-app"), "{}", p.body);
    assert!(!p.body.contains("container-restart-db-1-pg") && !p.body.contains("silence s-1"), "other records are filtered out: {}", p.body);
    assert!(p.body.contains("id=\"audit-count\">1 record (of"), "{}", p.body);
    let p = page(&fx, "/audit?outcome=refused", &admin).await;
    assert!(p.body.contains("container-restart-db-1-pg") && !p.body.contains("container-restart-web-1-app"), "{}", p.body);
    let p = page(&fx, "/audit?target=web-1%2Fapp", &admin).await;
    assert!(p.body.contains("silence s-1") && !p.body.contains("container-restart"), "{}", p.body);
    // Another day: empty, with links to the days around it that keep the filters.
    let p = page(&fx, "/audit?day=2026-01-02&who=bob", &admin).await;
    assert!(p.body.contains("Audit log of 2026-01-02") && p.body.contains("0 records"), "{}", p.body);
    assert!(p.body.contains("href=\"/audit?day=2026-01-01&#38;who=bob\"") && p.body.contains("href=\"/audit?day=2026-01-03&#38;who=bob\""), "{}", p.body);
    let p = page(&fx, "/audit?day=yesterday", &admin).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);

    // Operators, viewers and nobody: refused, the log not shown, no Audit in their nav.
    for user in ["otto", "vera"] {
        let cookie = password_login(&fx, user, PW, "192.0.2.42").await;
        let p = page(&fx, "/audit", &cookie).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{user}: {}", p.body);
        assert!(p.body.contains("The audit log is for admins") && !p.body.contains("container-restart"), "{user}: {}", p.body);
        let p = page(&fx, "/silences", &cookie).await;
        assert!(!p.body.contains("href=\"/audit\""), "{user} has no Audit link");
    }
    let p = fx.send(get("/audit")).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!p.body.contains("container-restart"));
}

#[tokio::test]
async fn the_audit_page_shows_the_newest_500_of_a_busy_day() {
    let fx = Fx::new();
    users(&fx);
    for i in 0..505 {
        let r = AuditRecord::new("bot", "operator", "api", "192.0.2.9", "check_now", &format!("edge-1/svc{i:03}"), "ok");
        fx.state.root.append_audit(&r, 90).unwrap();
    }
    let admin = password_login(&fx, "ada", PW, "192.0.2.40").await;
    let p = page(&fx, "/audit?who=bot", &admin).await;
    assert!(p.body.contains("Showing the newest 500 of 505 records"), "{}", p.body);
    assert_eq!(p.body.matches("class=\"audit-row ").count(), 500);
    assert!(p.body.contains("edge-1/svc504") && p.body.contains("edge-1/svc005") && !p.body.contains("edge-1/svc004"), "the oldest five are left out");
}

/// Free text from files and people (a reject reason, an event's detail, the supervisor's root
/// cause and reason) is shown as text on every page that lists it, never as markup.
#[tokio::test]
async fn markup_in_reasons_and_details_shows_as_text() {
    use homelab_core::drift::NextStep;
    use homelab_core::plan::DriftKind;

    let fx = Fx::new();
    fx.tmp.write_host("edge-1", "services:\n  mqtt: {}\n  z2m: {}\n");
    crate::files::write_world(&fx);
    let id = fx.pending("edge-1", "mqtt");
    let r = fx.send(bearer_post(&format!("/api/v1/actions/{id}/reject"), UI_TOKEN, r#"{"reason": "<script>alert(1)</script>"}"#)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut ev = homelab_core::Event::new(chrono::Utc::now(), "edge-1", "containers_not_running", Some("mqtt"));
    ev.detail = Some("<img src=x onerror=alert(2)>".into());
    fx.state.root.write_event(&ev).unwrap();
    let mut d = crate::files::drift_entry("edge-1", Some("z2m"), DriftKind::UnhealthyService, NextStep::RootCauseElsewhere, None, None);
    d.root_cause = Some("<b>rc</b>".into());
    d.reason = "<script>alert(3)</script>".into();
    crate::files::write_drift(&fx, vec![d]);

    let cookie = login(&fx, "admin").await;
    for uri in ["/".to_owned(), "/events".to_owned(), format!("/actions/{id}"), "/nodes/edge-1".to_owned(), "/actions".to_owned()] {
        let p = page(&fx, &uri, &cookie).await;
        assert_eq!(p.status, StatusCode::OK, "{uri}");
        for markup in ["<script>alert", "<img src=x", "<b>rc</b>"] {
            assert!(!p.body.contains(markup), "{uri} renders {markup:?} as markup: {}", p.body);
        }
    }
    // Escaped the template engine's way (`&#60;` is `&lt;`).
    let action = format!("/actions/{id}");
    for (uri, text) in [
        (action.as_str(), "&#60;script&#62;alert(1)&#60;/script&#62;"),
        ("/", "&#60;script&#62;alert(1)&#60;/script&#62;"),
        ("/", "caused by <b>&#60;b&#62;rc&#60;/b&#62;</b>"),
        ("/", "&#60;script&#62;alert(3)&#60;/script&#62;"),
        ("/events", "&#60;img src=x onerror=alert(2)&#62;"),
        ("/events", "&#60;script&#62;alert(1)&#60;/script&#62;"),
    ] {
        let p = page(&fx, uri, &cookie).await;
        assert!(p.body.contains(text), "{uri} lacks {text:?} as text: {}", p.body);
    }
}
