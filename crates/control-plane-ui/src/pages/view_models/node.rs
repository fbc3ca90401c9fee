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
    /// The deploy history and held generations of each compose service that has any.
    pub(in crate::pages) deploys: Vec<DeploysView>,
    /// The viewer may propose rollbacks on this node.
    pub(in crate::pages) may_propose: bool,
}

/// One compose service's changes and what it can go back to.
pub(in crate::pages) struct DeploysView {
    pub(in crate::pages) service: String,
    /// Newest first.
    pub(in crate::pages) records: Vec<DeployRow>,
    /// Newest first.
    pub(in crate::pages) generations: Vec<GenerationRow>,
}

pub(in crate::pages) struct DeployRow {
    pub(in crate::pages) when: When,
    pub(in crate::pages) kind: &'static str,
    pub(in crate::pages) outcome: crate::view::Pill,
    pub(in crate::pages) by: String,
    pub(in crate::pages) images: String,
    pub(in crate::pages) detail: String,
    pub(in crate::pages) action_id: String,
}

pub(in crate::pages) struct GenerationRow {
    pub(in crate::pages) id: String,
    pub(in crate::pages) taken: When,
    pub(in crate::pages) images: String,
    /// What runs now (the newest generation): nothing to roll back to.
    pub(in crate::pages) current: bool,
}

impl DeploysView {
    pub(in crate::pages) fn of(
        service: &str,
        history: &homelab_core::deploy::DeployHistory,
        generations: &[homelab_core::deploy::Generation],
        now: homelab_core::Timestamp,
    ) -> DeploysView {
        use homelab_core::deploy::DeployOutcome as O;
        let records = history
            .records
            .iter()
            .rev()
            .map(|r| DeployRow {
                when: crate::view::time_ago(r.started_at, now),
                kind: r.kind.as_str(),
                outcome: crate::view::pill(
                    match r.outcome {
                        O::Verified | O::Done => "ok",
                        O::RolledBack | O::Interrupted => "warn",
                        O::Failed => "bad",
                        O::Running => "run",
                    },
                    &r.outcome.as_str().replace('_', " "),
                ),
                by: r.approved_by.clone().unwrap_or_default(),
                images: r.images_after.clone().unwrap_or_else(|| r.images_before.clone()),
                detail: r.detail.clone().unwrap_or_default(),
                action_id: r.action_id.clone(),
            })
            .collect();
        let newest = generations.iter().map(|g| g.id.as_str()).max();
        let generations = generations
            .iter()
            .rev()
            .map(|g| GenerationRow {
                id: g.id.clone(),
                taken: crate::view::time_ago(g.taken_at, now),
                images: g.images_in_words(),
                current: Some(g.id.as_str()) == newest,
            })
            .collect();
        DeploysView { service: service.to_owned(), records, generations }
    }
}
