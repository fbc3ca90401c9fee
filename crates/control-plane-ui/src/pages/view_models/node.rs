//! One node's page: what its template renders.

use askama::Template;

use crate::snapshot::FileError;
use crate::view::When;

use super::{ActionRow, DriftNext, DriftRow, DriftStatus, NodeCard, ServiceRow};

#[derive(Template)]
#[template(path = "node.html")]
pub(in crate::pages) struct NodeT<'a> {
    pub(in crate::pages) base: &'a str,
    pub(in crate::pages) csrf: Option<String>,
    pub(in crate::pages) errors: &'a [FileError],
    pub(in crate::pages) drift_status: DriftStatus<'a>,
    pub(in crate::pages) name: &'a str,
    pub(in crate::pages) card: Option<NodeCard>,
    /// Never reported and desired: how to get an agent reporting.
    pub(in crate::pages) install: bool,
    pub(in crate::pages) ui_url: String,
    pub(in crate::pages) ssh: String,
    pub(in crate::pages) drift: Vec<DriftRow<'a>>,
    pub(in crate::pages) services: Vec<ServiceRow>,
    pub(in crate::pages) rows: Vec<ActionRow<'a>>,
    /// The services table has a mute column (this page); the viewer may mute this node.
    pub(in crate::pages) mute: bool,
    pub(in crate::pages) may_mute: bool,
    /// "until …" while a silence mutes the whole node.
    pub(in crate::pages) node_muted: Option<When>,
}
