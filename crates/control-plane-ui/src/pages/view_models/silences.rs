//! The silences page: what its template renders.

use askama::Template;
use serde::Deserialize;

use crate::view::When;

/// One silence as the page lists it.
pub(in crate::pages) struct SilenceRow {
    pub(in crate::pages) id: String,
    pub(in crate::pages) mutes: String,
    pub(in crate::pages) reason: String,
    pub(in crate::pages) by: String,
    pub(in crate::pages) created: When,
    /// Active: "until 15:03 UTC (ends in 58 min)"; ended: when, relative.
    pub(in crate::pages) when: When,
    pub(in crate::pages) expired_by: String,
    pub(in crate::pages) can_expire: bool,
}

/// What the add form holds: what was typed, sent back with an error.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub(in crate::pages) struct SilenceForm {
    pub(in crate::pages) csrf: Option<String>,
    pub(in crate::pages) target: String,
    pub(in crate::pages) action_type: String,
    /// One of [`DURATIONS`] from the select.
    pub(in crate::pages) duration: String,
    /// Typed; wins over the select when filled.
    pub(in crate::pages) duration_custom: String,
    pub(in crate::pages) reason: String,
    /// `node`: a mute button of the node page; go back there.
    pub(in crate::pages) from: String,
}

#[derive(Template)]
#[template(path = "silences.html")]
pub(in crate::pages) struct SilencesT<'a> {
    pub(in crate::pages) base: &'a str,
    /// Set when this viewer gets the add form (logged in with a browser credential, not a viewer).
    pub(in crate::pages) csrf: Option<String>,
    /// Why there is no form ("" when there is one).
    pub(in crate::pages) no_form: String,
    pub(in crate::pages) error: Option<String>,
    pub(in crate::pages) form: &'a SilenceForm,
    pub(in crate::pages) durations: Vec<(&'static str, &'static str, bool)>,
    pub(in crate::pages) action_types: Vec<(&'static str, bool)>,
    pub(in crate::pages) targets: Vec<String>,
    pub(in crate::pages) active: Vec<SilenceRow>,
    pub(in crate::pages) ended: Vec<SilenceRow>,
}
