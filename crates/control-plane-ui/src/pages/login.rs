//! Logging in (password or bootstrap token, single sign-on through `crate::oidc`) and out.

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::api::Peer;
use crate::auth::SESSION_COOKIE;

use crate::AppState;

use super::view_models::{LoginT, OidcDoneT};
use super::{CsrfForm, Layout, behind_tls, message_page};

pub(super) fn login_response(state: &AppState, status: StatusCode, message: Option<&str>) -> Response {
    let oidc = state.auth.oidc.as_ref();
    let body = LoginT { base: &state.base, message, sso: oidc.is_some(), sso_unavailable: oidc.and_then(|o| o.unavailable()) }.render().unwrap_or_default();
    let html = Layout { title: "Log in", active: "", base: &state.base, user: None, admin: false, csrf: None, live: false, etag: String::new(), body }
        .render()
        .unwrap_or_default();
    (status, axum::response::Html(html)).into_response()
}

pub(super) async fn login_page(State(state): State<Arc<AppState>>) -> Response {
    login_response(&state, StatusCode::OK, None)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    pub(super) user: String,
    pub(super) token: String,
}

pub(super) fn session_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let path = if state.base.is_empty() { "/" } else { state.base.as_str() };
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={value}; Path={path}; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
}

pub(super) async fn login(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if crate::auth::check_same_origin(&headers).is_err() {
        return login_response(&state, StatusCode::FORBIDDEN, Some("Cross-site login refused."));
    }
    // A local user's password, or the bootstrap UI token (auth.rs: limits, audit, sessions).
    match state.auth.password_login(peer.0, f.user.trim(), &f.token).await {
        Ok(id) => {
            let cookie = session_cookie(&state, &headers, &id, state.auth.session_ttl().as_secs());
            ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
        }
        Err(e) => {
            let mut r = login_response(&state, e.status(), Some(&e.to_string()));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    }
}

/// The pending-login cookie: sent back on the provider's redirect (a cross-site top-level GET,
/// hence SameSite=Lax), only to the callback's path, for 10 minutes.
pub(super) fn pending_cookie(state: &AppState, headers: &HeaderMap, value: &str, max_age: u64) -> String {
    let secure = if behind_tls(headers) { "; Secure" } else { "" };
    format!("{}={value}; Path={}/auth/oidc; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}", crate::oidc::PENDING_COOKIE, state.base)
}

/// "Log in with single sign-on": state, nonce and PKCE verifier are kept here, the browser goes
/// to the provider. A provider that cannot be reached leaves the person on the login page with
/// the reason.
pub(super) async fn oidc_login(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap) -> Response {
    match state.auth.oidc_begin(peer.0).await {
        Ok((url, cookie)) => {
            let mut r = Redirect::to(&url).into_response();
            r.headers_mut().insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&pending_cookie(&state, &headers, &cookie, crate::oidc::PENDING_TTL.as_secs())).expect("cookie is ASCII"),
            );
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        Err(crate::auth::OidcError::Refused(why)) => {
            login_response(&state, StatusCode::SERVICE_UNAVAILABLE, Some(&format!("Single sign-on is unavailable: {why}")))
        }
        Err(e) => {
            let mut r = login_response(&state, e.status(), Some(&format!("Single sign-on failed: {e}")));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    }
}

/// The provider's redirect back. On success the session cookie is set on a small page that
/// moves on to the dashboard itself: the session cookie is SameSite=Strict, and a redirect
/// answering a cross-site navigation would arrive without it.
pub(super) async fn oidc_callback(
    State(state): State<Arc<AppState>>,
    peer: Peer,
    headers: HeaderMap,
    q: Result<Query<crate::auth::OidcCallback>, axum::extract::rejection::QueryRejection>,
) -> Response {
    // A query that does not parse is a refused login like any other (audited, counted).
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let pending = crate::auth::cookie(&headers, crate::oidc::PENDING_COOKIE);
    let clear_pending = pending_cookie(&state, &headers, "", 0);
    let mut r = match state.auth.oidc_callback(peer.0, &q, pending.as_deref()).await {
        Ok((id, user)) => {
            let html = OidcDoneT { base: &state.base, user: &user }.render().unwrap_or_default();
            let mut r = axum::response::Html(html).into_response();
            let cookie = session_cookie(&state, &headers, &id, state.auth.session_ttl().as_secs());
            r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&cookie).expect("cookie is ASCII"));
            r
        }
        Err(e) => {
            let mut r = message_page(&state, e.status(), "Single sign-on failed", &format!("Single sign-on failed: {e}"), &state.url("/login"));
            if let Some(secs) = e.retry_after() {
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            r
        }
    };
    r.headers_mut().append(header::SET_COOKIE, HeaderValue::from_str(&clear_pending).expect("cookie is ASCII"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(super) async fn logout(State(state): State<Arc<AppState>>, peer: Peer, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Response {
    if let Err(r) = state.auth.for_mutation(&headers, peer.0, f.csrf.as_deref()) {
        return message_page(&state, r.status(), "Not logged out", &r.to_string(), &state.url("/"));
    }
    state.auth.logout(&headers);
    let cookie = session_cookie(&state, &headers, "", 0);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&state.url("/"))).into_response()
}
