//! Check-now: ask a node's agent to run one service's checks at once.

use homelab_core::{NodeName, ServiceName};
use homelab_store::check_now::CheckNowRequest;

use crate::Ops;
use crate::actor::Actor;
use crate::audit::Outcome;
use crate::permit::Command;

/// Why a check-now request was not written.
#[derive(Debug, thiserror::Error)]
pub enum CheckNowError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{node}/{service} is not a service the agent of {node} checks (hosts/{node}/services.yaml)")]
    NotChecked { node: NodeName, service: ServiceName },
    #[error("cannot write the check-now request: {0}")]
    Store(std::io::Error),
}

impl CheckNowError {
    fn outcome(&self) -> Outcome {
        match self {
            CheckNowError::Forbidden(_) => Outcome::Refused,
            CheckNowError::NotChecked { .. } => Outcome::Conflict,
            CheckNowError::Store(_) => Outcome::Failed,
        }
    }

    pub fn io(&self) -> Option<&std::io::Error> {
        match self {
            CheckNowError::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl Ops {
    /// Writes `state/check_now/<node>/<service>.json` for the node's agent (which serves and
    /// removes it; the result shows as fresh events). The node's groups are respected; where
    /// desired state is known, the service must be one the agent checks.
    pub fn check_now(&self, actor: &Actor, node: &NodeName, service: &ServiceName) -> Result<CheckNowRequest, CheckNowError> {
        let target = format!("{node}/{service}");
        let result = self.check_now_inner(actor, node, service);
        match &result {
            Ok(_) => {
                tracing::info!(%node, %service, by = %actor.by, "check now requested");
                self.audit(actor, "check_now", &target, Outcome::Ok, None);
            }
            Err(e) => self.audit(actor, "check_now", &target, e.outcome(), Some(e.to_string())),
        }
        result
    }

    fn check_now_inner(&self, actor: &Actor, node: &NodeName, service: &ServiceName) -> Result<CheckNowRequest, CheckNowError> {
        self.permit_on(actor, Command::CheckNow, node).map_err(CheckNowError::Forbidden)?;
        if self.fleet.checks_service(node, service) == Some(false) {
            return Err(CheckNowError::NotChecked { node: node.clone(), service: service.clone() });
        }
        let req = CheckNowRequest {
            node: node.to_string(),
            service: service.to_string(),
            requested_by: actor.by.clone(),
            requested_at: chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3),
        };
        self.root.request_check_now(&req).map_err(CheckNowError::Store)?;
        Ok(req)
    }
}
