//! The audit log page: what its template renders.

use askama::Template;

use crate::view::When;

pub(in crate::pages) struct AuditRow {
    pub(in crate::pages) time: When,
    pub(in crate::pages) r: homelab_store::audit::AuditRecord,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(in crate::pages) struct AuditT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) day: String,
    pub(in crate::pages) is_today: bool,
    pub(in crate::pages) who: String,
    pub(in crate::pages) what: String,
    pub(in crate::pages) target: String,
    pub(in crate::pages) whos: Vec<String>,
    pub(in crate::pages) whats: Vec<String>,
    pub(in crate::pages) outcomes: Vec<(&'static str, bool)>,
    pub(in crate::pages) rows: Vec<AuditRow>,
    /// Records of the day that pass the filters, and of the day at all.
    pub(in crate::pages) matched: usize,
    pub(in crate::pages) total: usize,
    pub(in crate::pages) skipped: usize,
    pub(in crate::pages) prev_link: String,
    pub(in crate::pages) next_link: Option<String>,
    pub(in crate::pages) clear_link: String,
}
