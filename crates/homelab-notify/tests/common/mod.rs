//! Shared by the notifier's integration tests.

use homelab_core::drift::{DriftEntry, NextStep};
use homelab_core::plan::DriftKind;

/// n1/web unhealthy, with `decision` as what happens next.
pub fn web_unhealthy(decision: NextStep) -> DriftEntry {
    DriftEntry {
        node: "n1".into(),
        service: Some("web".into()),
        kind: DriftKind::UnhealthyService,
        trigger: "containers_not_running".into(),
        root_cause: None,
        since: Some(chrono::Utc::now()),
        decision,
        reason: "web is unhealthy (containers_not_running): container-restart-n1-web is proposed and waits for approval.".into(),
        action_id: Some("container-restart-n1-web".into()),
        until: None,
    }
}
