//! The login page and the page after single sign-on: what its template renders.

use askama::Template;

#[derive(Template)]
#[template(path = "login.html")]
pub(in crate::pages) struct LoginT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) message: Option<&'a str>,
    /// Single sign-on configured.
    pub(in crate::pages) sso: bool,
    /// Why single sign-on cannot be used now (the last discovery failed).
    pub(in crate::pages) sso_unavailable: Option<String>,
}

#[derive(Template)]
#[template(path = "oidc_done.html")]
pub(in crate::pages) struct OidcDoneT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) user: &'a str,
}
