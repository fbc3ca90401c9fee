//! Changes of compose projects an operator asks for: a rollback to a held generation. Like
//! every proposal it lands in pending/ for a person to approve (never approved here).

use homelab_core::{Action, ActionState, ActionType, HistoryEntry, NodeName, ServiceName};
use homelab_store::TransitionError;

use crate::Ops;
use crate::actor::Actor;
use crate::audit::Outcome;
use crate::permit::Command;

/// Why a proposal was not written.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("generation {generation} of {node}/{service} is not held (see hcp deploys {node}/{service})")]
    NoSuchGeneration { node: NodeName, service: ServiceName, generation: String },
    #[error("action {id} is already {state}: decide on it first")]
    Active { id: String, state: ActionState },
    #[error("{0}")]
    Store(TransitionError),
}

impl ProposeError {
    fn outcome(&self) -> Outcome {
        match self {
            ProposeError::Forbidden(_) => Outcome::Refused,
            ProposeError::Store(_) => Outcome::Failed,
            ProposeError::NoSuchGeneration { .. } | ProposeError::Active { .. } => Outcome::Conflict,
        }
    }

    /// The IO error behind a failed write, if that is why.
    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            ProposeError::Store(TransitionError::Io { source, .. }) => Some(source),
            _ => None,
        }
    }
}

impl Ops {
    /// Proposes rolling `node/service` back to held generation `generation`: a pending
    /// `rollback-<node>-<service>` action (guarded: a person approves it), history by the actor
    /// with the reason. One active rollback per service; the generation must be held.
    pub fn propose_rollback(
        &self,
        actor: &Actor,
        node: &NodeName,
        service: &ServiceName,
        generation: &str,
        reason: Option<&str>,
    ) -> Result<Action, ProposeError> {
        let target = format!("{node}/{service}");
        let result = self.propose_rollback_inner(actor, node, service, generation, reason);
        match &result {
            Ok(a) => {
                tracing::info!(action = %a.id, by = %actor.by, generation, "rollback proposed");
                self.audit(actor, "propose_rollback", &target, Outcome::Ok, Some(format!("generation {generation}")));
            }
            Err(e) => self.audit(actor, "propose_rollback", &target, e.outcome(), Some(e.to_string())),
        }
        result
    }

    fn propose_rollback_inner(
        &self,
        actor: &Actor,
        node: &NodeName,
        service: &ServiceName,
        generation: &str,
        reason: Option<&str>,
    ) -> Result<Action, ProposeError> {
        self.permit_on(actor, Command::Propose, node).map_err(ProposeError::Forbidden)?;
        let missing = || ProposeError::NoSuchGeneration { node: node.clone(), service: service.clone(), generation: generation.to_owned() };
        let held = self.root.read_generation(node, service, generation).map_err(|_| missing())?.ok_or_else(missing)?;
        let kind = ActionType::Rollback;
        let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
        let why = reason.map(|r| homelab_core::one_line(r, 500)).filter(|r| !r.trim().is_empty());
        let note = format!(
            "proposed by {}: roll back to generation {} ({}){}",
            actor.by,
            held.id,
            held.images_in_words(),
            why.map(|r| format!(": {r}")).unwrap_or_default()
        );
        let action = Action {
            id: kind.id(node, Some(service)),
            kind,
            risk: kind.risk(),
            node: node.to_string(),
            service: Some(service.to_string()),
            drift: "rollback_requested".into(),
            trigger: format!("generation {}", held.id),
            root_cause: None,
            state: ActionState::Pending,
            created_at: now,
            updated_at: now,
            history: vec![HistoryEntry { state: ActionState::Pending, at: now, by: actor.by.clone(), note: Some(note) }],
            result: None,
            generation: Some(held.id),
        };
        self.root.create_action(&action).map_err(|e| match e {
            TransitionError::AlreadyExists { state, .. } => ProposeError::Active { id: action.id.clone(), state },
            other => ProposeError::Store(other),
        })?;
        Ok(action)
    }
}

#[cfg(test)]
mod tests {
    use homelab_core::deploy::{Generation, HeldContainer};

    use super::*;
    use crate::{Channel, Role};

    #[test]
    fn a_rollback_is_proposed_pending_for_a_held_generation_only_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = homelab_store::DataRoot::open(dir.path()).unwrap();
        let id = "20261207T230102.123Z";
        let g = Generation {
            id: id.into(),
            node: "edge-1".into(),
            service: "web".into(),
            project: "web".into(),
            compose_dir: "/srv/web".into(),
            taken_at: homelab_core::parse_compact_ts(id).unwrap(),
            held_by: None,
            containers: vec![HeldContainer {
                compose_service: "app".into(),
                container: "web_app_1".into(),
                image: "app:v1".into(),
                image_id: "sha256:0123456789abcdef".into(),
                repo_digest: None,
                hold_tag: homelab_core::deploy::hold_tag("web", "app", id),
            }],
            files: vec![],
        };
        root.save_generation(&g, &Default::default()).unwrap();
        let ops = Ops::new(root.clone());
        let (node, service) = (NodeName::parse("edge-1").unwrap(), ServiceName::parse("web").unwrap());
        let admin = Actor::cli("cli:root");

        let a = ops.propose_rollback(&admin, &node, &service, id, Some("v2 broke logins")).unwrap();
        assert_eq!((a.id.as_str(), a.state, a.generation.as_deref()), ("rollback-edge-1-web", ActionState::Pending, Some(id)));
        assert_eq!(
            a.history[0].note.as_deref(),
            Some("proposed by cli:root: roll back to generation 20261207T230102.123Z (app sha256:0123456789ab): v2 broke logins")
        );
        assert_eq!(root.active_state(&a.id), Some(ActionState::Pending));

        let again = ops.propose_rollback(&admin, &node, &service, id, None).unwrap_err();
        assert!(matches!(again, ProposeError::Active { state: ActionState::Pending, .. }), "{again}");
        let unknown = ops.propose_rollback(&admin, &node, &service, "20200101T000000.000Z", None).unwrap_err();
        assert!(matches!(unknown, ProposeError::NoSuchGeneration { .. }), "{unknown}");
        let bad = ops.propose_rollback(&admin, &node, &service, "../../etc", None).unwrap_err();
        assert!(matches!(bad, ProposeError::NoSuchGeneration { .. }), "{bad}");
        let viewer = Actor::user("vic", Role::Viewer, vec![], Channel::Api, "192.0.2.1", "api:vic");
        assert!(matches!(ops.propose_rollback(&viewer, &node, &service, id, None), Err(ProposeError::Forbidden(_))));
    }
}
