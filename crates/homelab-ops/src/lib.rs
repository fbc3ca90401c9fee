//! The operations layer: one function per operator command, the same for every channel.
//!
//! The UI and its API, Telegram and `hcp` turn their credentials into an [`Actor`] and call a
//! method of [`Ops`]; it checks the one permission rule ([`permit`]: channel × role × node group
//! × command), makes the change through `homelab_store`, logs it, and appends exactly one audit
//! record, allowed or refused. What the person is told is the channel's business: each command
//! returns a typed outcome.
//!
//! It sits above `homelab-core` and `homelab-store` and below every channel; it is blocking
//! (store IO, fsync): async callers run it on a blocking thread.

pub mod actions;
pub mod actor;
pub mod audit;
pub mod check_now;
pub mod deploys;
pub mod permit;
pub mod silences;
pub mod users;

use std::path::PathBuf;
use std::sync::Arc;

pub use actions::{DecideError, Decision, RetryError};
pub use actor::{Actor, Channel, Role};
pub use audit::Outcome;
pub use check_now::CheckNowError;
pub use deploys::ProposeError;
use homelab_store::DataRoot;
pub use permit::{Command, Scope, permit};
pub use silences::{NewSilence, SilenceError};
pub use users::UserError;

/// What the operations layer needs to know of desired state: node groups (for the permission
/// rule) and which services an agent checks (for check-now).
pub trait Fleet: Send + Sync {
    /// The groups hosts/ gives `node` (`group:` / `groups:`); none when unknown.
    fn groups_of(&self, node: &str) -> Vec<String>;
    /// Whether `node`'s agent checks `service`; `None` when desired state is not known here
    /// (then the agent decides).
    fn checks_service(&self, node: &str, service: &str) -> Option<bool>;
}

/// No desired state: no node has a group (so only admins act), any service may be asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFleet;

impl Fleet for NoFleet {
    fn groups_of(&self, _: &str) -> Vec<String> {
        Vec::new()
    }

    fn checks_service(&self, _: &str, _: &str) -> Option<bool> {
        None
    }
}

impl Fleet for homelab_core::DesiredState {
    fn groups_of(&self, node: &str) -> Vec<String> {
        self.hosts.get(node).map(|h| h.groups.clone()).unwrap_or_default()
    }

    fn checks_service(&self, node: &str, service: &str) -> Option<bool> {
        Some(self.hosts.get(node).and_then(|h| h.services.get(service)).is_some_and(|s| s.monitor && !s.alert_only()))
    }
}

/// Desired state as it is at the moment of each command: hosts/ read again every time (for a
/// channel without a cached view, such as Telegram's presses).
#[derive(Debug, Clone)]
pub struct HostsDir(pub PathBuf);

impl HostsDir {
    fn load(&self) -> Option<homelab_core::DesiredState> {
        homelab_store::hosts::load_hosts(&self.0, &Default::default()).ok().map(|l| l.desired)
    }
}

impl Fleet for HostsDir {
    fn groups_of(&self, node: &str) -> Vec<String> {
        self.load().map(|d| d.groups_of(node)).unwrap_or_default()
    }

    fn checks_service(&self, node: &str, service: &str) -> Option<bool> {
        self.load().and_then(|d| d.checks_service(node, service))
    }
}

/// The permission rule for `command` on `node`, with the node's groups from `fleet` (pages ask
/// it to show a button only where it would work).
pub fn permit_on_node(actor: &Actor, fleet: &dyn Fleet, command: Command, node: &str) -> Result<(), String> {
    let groups = fleet.groups_of(node);
    permit(actor, command, Scope::Node { node, groups: &groups })
}

/// Whether `actor` may mute (or end the muting of) what `s` matches: their groups for its
/// node; an action type on every node is for admins.
pub fn permit_silence(actor: &Actor, fleet: &dyn Fleet, command: Command, s: &homelab_core::silence::Silence) -> Result<(), String> {
    match &s.node {
        Some(node) => permit_on_node(actor, fleet, command, node),
        None => permit(actor, command, Scope::EveryNode),
    }
}

/// The operator commands on one data root.
#[derive(Clone)]
pub struct Ops {
    root: DataRoot,
    fleet: Arc<dyn Fleet>,
    audit_retention_days: u32,
}

impl std::fmt::Debug for Ops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ops").field("root", &self.root.path()).field("audit_retention_days", &self.audit_retention_days).finish_non_exhaustive()
    }
}

impl Ops {
    /// Commands on `root` with no desired state known ([`NoFleet`]) and the audit retention
    /// of `AUDIT_RETENTION_DAYS`.
    pub fn new(root: DataRoot) -> Ops {
        Ops { root, fleet: Arc::new(NoFleet), audit_retention_days: homelab_store::audit::retention_from_env() }
    }

    /// Node groups and checked services from `fleet`.
    pub fn with_fleet(mut self, fleet: Arc<dyn Fleet>) -> Ops {
        self.fleet = fleet;
        self
    }

    pub fn with_audit_retention(mut self, days: u32) -> Ops {
        self.audit_retention_days = days.max(1);
        self
    }

    pub fn root(&self) -> &DataRoot {
        &self.root
    }

    /// The permission rule with this fleet's groups for `node`.
    pub fn permit_on(&self, actor: &Actor, command: Command, node: &str) -> Result<(), String> {
        permit_on_node(actor, self.fleet.as_ref(), command, node)
    }

    /// Appends `rec` to the audit log (fsync). A failure is logged: the change itself is made.
    pub fn write_audit(&self, rec: &homelab_store::audit::AuditRecord) {
        if let Err(e) = self.root.append_audit(rec, self.audit_retention_days) {
            tracing::error!(error = %e, what = %rec.what, "cannot append to the audit log");
        }
    }

    /// The one audit record of a command, with a short detail when there is one.
    fn audit(&self, actor: &Actor, what: &str, target: &str, outcome: Outcome, detail: Option<String>) {
        let rec = audit::record(actor, what, target, outcome);
        self.write_audit(&match detail {
            Some(d) => rec.detail(d),
            None => rec,
        });
    }

    /// The actor behind a Telegram press: users.json maps the account to a user; when no user
    /// has a Telegram id, presses keep their old meaning (the allowed chats and
    /// `TELEGRAM_USER_IDS` decide, as an admin would). History says `telegram:<id>`; a linked
    /// user signs silences with their name. users.json unreadable: nobody is identified.
    pub fn telegram_actor(&self, telegram_id: i64) -> Actor {
        let tag = format!("telegram:{telegram_id}");
        let users = match self.root.read_users() {
            Ok(u) => u,
            Err(e) => {
                tracing::error!(error = %e, "users file unreadable: Telegram presses are refused");
                return Actor::unidentified(&tag, Channel::Telegram, &tag, "the users file cannot be read now; try again later");
            }
        };
        if !users.maps_telegram() {
            return Actor::user(&tag, Role::Admin, Vec::new(), Channel::Telegram, &tag, &tag);
        }
        match users.by_telegram(telegram_id) {
            Some((name, u)) => Actor::user(name, u.role, u.groups.clone(), Channel::Telegram, &tag, &tag).with_author(name),
            None => Actor::unidentified(&tag, Channel::Telegram, &tag, "your Telegram account is not linked to a user of the control plane"),
        }
    }
}

#[cfg(test)]
mod tests {
    use homelab_store::users::User;

    use super::*;

    /// Nodes `web-*` are in group `web`, `db-*` in `db`, the rest in none.
    struct Groups;

    impl Fleet for Groups {
        fn groups_of(&self, node: &str) -> Vec<String> {
            node.split_once('-').map(|(g, _)| g).filter(|g| ["web", "db"].contains(g)).map(|g| vec![g.to_owned()]).unwrap_or_default()
        }

        fn checks_service(&self, _: &str, _: &str) -> Option<bool> {
            None
        }
    }

    #[test]
    fn telegram_presses_map_to_users_and_follow_the_same_rule() {
        let tmp = tempfile::tempdir().unwrap();
        let ops = Ops::new(DataRoot::open(tmp.path()).unwrap()).with_fleet(Arc::new(Groups));
        let may = |telegram_id: i64, node: &str| {
            let actor = ops.telegram_actor(telegram_id);
            ops.permit_on(&actor, Command::Approve, node).map(|()| (actor.name.clone(), actor.role))
        };
        // No mapping at all: the chat and TELEGRAM_USER_IDS decide, as before.
        assert!(may(42, "web-1").is_ok());
        let now = chrono::Utc::now();
        let user = |role, groups: &[&str], tg: i64| User {
            role,
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            password_hash: None,
            telegram_ids: vec![tg],
            created_at: now,
            updated_at: now,
            sessions_not_before: None,
        };
        ops.root()
            .update_users(|f| -> std::io::Result<()> {
                f.users.insert("otto".into(), user(Role::Operator, &["web"], 1));
                f.users.insert("vera".into(), user(Role::Viewer, &["web"], 2));
                f.users.insert("ada".into(), user(Role::Admin, &[], 3));
                Ok(())
            })
            .unwrap();
        assert_eq!(may(1, "web-1").unwrap().0, "otto");
        assert!(may(1, "db-1").unwrap_err().contains("acts on groups [web]"));
        assert!(may(2, "web-1").unwrap_err().contains("viewer"));
        assert!(may(99, "web-1").unwrap_err().contains("not linked"));
        assert_eq!(may(3, "misc-1").unwrap().1, Some(Role::Admin));
        // History says telegram:<id>; a linked user signs silences with their name.
        let otto = ops.telegram_actor(1);
        assert_eq!((otto.by.as_str(), otto.author.as_str(), otto.source.as_str()), ("telegram:1", "otto", "telegram:1"));
    }
}
