//! The one builder of audit records: who, role, channel and source come from the [`Actor`].

use homelab_store::audit::AuditRecord;

use crate::actor::Actor;

/// How a command ended, as the audit log's `outcome` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// Not allowed, or wrong credentials.
    Refused,
    RateLimited,
    /// Nothing to do any more: no longer pending, nothing to retry, bad input.
    Conflict,
    /// Could not be written.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::RateLimited => "rate_limited",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
        }
    }
}

/// An audit record of `actor` doing `what` to `target` (an action id, `node/service`, a user
/// name, a token id; cut to one short line).
pub fn record(actor: &Actor, what: &str, target: &str, outcome: Outcome) -> AuditRecord {
    let target = homelab_core::one_line(target, 200);
    AuditRecord::new(&actor.name, actor.role_str(), actor.channel.as_str(), &actor.source, what, &target, outcome.as_str())
}
