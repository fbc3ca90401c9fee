//! Silences: mute a node, a service or an action type for a while, and end one early.

use std::time::Duration;

use homelab_core::silence::{Matcher, Silence, new_id, parse_action_type};

use crate::Ops;
use crate::actor::Actor;
use crate::audit::Outcome;
use crate::permit::Command;

/// A silence asked for: `target` is `node` or `node/service` (may be omitted with
/// `action_type`: then it mutes that type everywhere).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSilence {
    pub target: Option<String>,
    pub action_type: Option<String>,
    pub duration: Duration,
    pub reason: String,
}

/// Why a silence was not added or ended.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    /// What was asked for does not make a silence (unknown type, too long, no reason, …).
    #[error("{0}")]
    BadInput(String),
    #[error("no silence {0}")]
    NotFound(String),
    #[error("{0}")]
    Ended(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("cannot write the silence: {0}")]
    Store(std::io::Error),
}

impl SilenceError {
    fn outcome(&self) -> Outcome {
        match self {
            SilenceError::Forbidden(_) => Outcome::Refused,
            SilenceError::Store(_) => Outcome::Failed,
            _ => Outcome::Conflict,
        }
    }
}

impl Ops {
    /// Builds, checks and writes a new silence signed by the actor; audited as `silence` with
    /// what it mutes as the target.
    pub fn add_silence(&self, actor: &Actor, req: NewSilence) -> Result<Silence, SilenceError> {
        let typed = [req.target.clone().unwrap_or_default(), req.action_type.clone().unwrap_or_default()]
            .into_iter()
            .filter(|t| !t.trim().is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let result = self.add_silence_inner(actor, req);
        match &result {
            Ok(s) => {
                tracing::info!(silence = %s.id, mutes = %s.target(), by = %s.created_by, until = %homelab_core::rfc3339(s.ends_at), "silence added");
                let detail = format!("silence {} until {} ({})", s.id, homelab_core::rfc3339(s.ends_at), s.reason);
                self.audit(actor, "silence", &s.target(), Outcome::Ok, Some(detail));
            }
            // What does not make a silence was never a command: said to the person, not audited.
            Err(SilenceError::BadInput(_)) => {}
            Err(e) => self.audit(actor, "silence", &typed, e.outcome(), Some(e.to_string())),
        }
        result
    }

    fn add_silence_inner(&self, actor: &Actor, req: NewSilence) -> Result<Silence, SilenceError> {
        let now = chrono::Utc::now();
        let mut m = req.target.as_deref().map(Matcher::target).unwrap_or_default();
        if let Some(t) = req.action_type.as_deref().filter(|t| !t.trim().is_empty()) {
            m.action_type = Some(
                parse_action_type(t)
                    .ok_or_else(|| SilenceError::BadInput(format!("unknown action type {t:?}: use container_restart, redeploy or disk_cleanup")))?,
            );
        }
        let id = new_id(now, uuid::Uuid::new_v4().as_u128() as u32);
        let s = Silence::new(id, m, req.duration, &req.reason, &actor.author, now).map_err(|e| SilenceError::BadInput(e.to_string()))?;
        crate::permit_silence(actor, self.fleet.as_ref(), Command::SilenceAdd, &s).map_err(SilenceError::Forbidden)?;
        self.root.write_silence(&s).map_err(SilenceError::Store)?;
        Ok(s)
    }

    /// Ends a silence now; audited as `silence_expire` with the silence id as the target.
    pub fn expire_silence(&self, actor: &Actor, id: &str) -> Result<Silence, SilenceError> {
        let result = self.expire_silence_inner(actor, id);
        match &result {
            Ok(e) => {
                tracing::info!(silence = %e.id, by = %actor.by, "silence expired");
                self.audit(actor, "silence_expire", id, Outcome::Ok, Some(format!("mutes {} ({})", e.target(), e.reason)));
            }
            Err(e) => self.audit(actor, "silence_expire", id, e.outcome(), Some(e.to_string())),
        }
        result
    }

    fn expire_silence_inner(&self, actor: &Actor, id: &str) -> Result<Silence, SilenceError> {
        // An id that is not a silence id reads as none.
        let Some(s) = self.root.read_silence(id).map_err(SilenceError::Store)? else { return Err(SilenceError::NotFound(id.to_owned())) };
        crate::permit_silence(actor, self.fleet.as_ref(), Command::SilenceExpire, &s).map_err(SilenceError::Forbidden)?;
        let e = s.expire(&actor.by, chrono::Utc::now()).map_err(|e| SilenceError::Ended(e.to_string()))?;
        self.root.write_silence(&e).map_err(SilenceError::Store)?;
        Ok(e)
    }
}
