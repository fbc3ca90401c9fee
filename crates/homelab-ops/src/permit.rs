//! The one permission rule, for every channel: channel × role × node group × command.
//!
//! - A channel carries only the commands it has a way to ask for: Telegram's buttons approve,
//!   reject and mute; a daemon's records carry none. The rest carry every command.
//! - Viewers never change anything.
//! - Operators act on nodes that share a group with them; a node in no group is for admins
//!   only, and so is muting an action type on every node.
//! - Users, tokens and the audit log are for admins only.
//! - Admins act everywhere.

use crate::actor::{Actor, Channel, Role};

/// An operator command, as the permission rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Approve,
    Reject,
    /// Take back a pending action or an approval the executor has not claimed yet.
    Cancel,
    Retry,
    /// Propose a change of a service (a rollback to a held generation).
    Propose,
    SilenceAdd,
    SilenceExpire,
    CheckNow,
    /// Users, passwords, sessions and API tokens.
    AdministerUsers,
    ReadAudit,
}

impl Command {
    pub const ALL: [Command; 10] = [
        Command::Approve,
        Command::Reject,
        Command::Cancel,
        Command::Retry,
        Command::Propose,
        Command::SilenceAdd,
        Command::SilenceExpire,
        Command::CheckNow,
        Command::AdministerUsers,
        Command::ReadAudit,
    ];

    fn admin_only(self) -> bool {
        matches!(self, Command::AdministerUsers | Command::ReadAudit)
    }
}

/// What a command touches.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One node, in these groups (from hosts/).
    Node { node: &'a str, groups: &'a [String] },
    /// Every node (a silence of an action type without a node).
    EveryNode,
    /// A node not known yet: an action that does not exist, nothing to retry. Viewers are
    /// refused; the command then says what is missing.
    Unknown,
    /// Nothing on a node (users, tokens, the audit log).
    Global,
}

/// Whether a channel has a way to ask for `command` at all.
pub fn carries(channel: Channel, command: Command) -> bool {
    match channel {
        Channel::Telegram => matches!(command, Command::Approve | Command::Reject | Command::SilenceAdd),
        Channel::Hosts => false,
        Channel::Ui | Channel::Api | Channel::Proxy | Channel::Oidc | Channel::Cli => true,
    }
}

/// May `actor` run `command` on `scope`? `Err` says why not, in words for the person.
pub fn permit(actor: &Actor, command: Command, scope: Scope<'_>) -> Result<(), String> {
    let Some(role) = actor.role else {
        return Err(actor.refusal().unwrap_or("not identified").to_owned());
    };
    if !carries(actor.channel, command) {
        return Err(format!("{command:?} cannot be asked for over {}", actor.channel));
    }
    let name = &actor.name;
    if command.admin_only() {
        return if role == Role::Admin { Ok(()) } else { Err(format!("{name} is {role}; only an admin may do this")) };
    }
    match (role, scope) {
        (Role::Admin, _) => Ok(()),
        (Role::Viewer, _) => Err(format!("{name} is a viewer and may only read")),
        (Role::Operator, Scope::Unknown) => Ok(()),
        (Role::Operator, Scope::Global) => Err(format!("{name} is operator; only an admin may do this")),
        (Role::Operator, Scope::EveryNode) => Err(format!("{name} may not mute an action type on every node: only an admin may; give a node")),
        (Role::Operator, Scope::Node { node, groups }) => may_act_on(name, &actor.groups, node, groups),
    }
}

fn may_act_on(name: &str, mine: &[String], node: &str, node_groups: &[String]) -> Result<(), String> {
    if node_groups.iter().any(|g| mine.contains(g)) {
        Ok(())
    } else if node_groups.is_empty() {
        Err(format!("node {node} is in no group, so only an admin may act on it ({name} is an operator)"))
    } else {
        Err(format!("operator {name} acts on groups [{}]; node {node} is in [{}]", mine.join(", "), node_groups.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the command lands, seen from an operator in group `web`.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Place {
        /// A node in `web` (and `x`).
        OwnGroup,
        /// A node in `db` only.
        OtherGroup,
        /// A node in no group.
        NoGroup,
        EveryNode,
        Unknown,
        Global,
    }

    const PLACES: [Place; 6] = [Place::OwnGroup, Place::OtherGroup, Place::NoGroup, Place::EveryNode, Place::Unknown, Place::Global];

    /// The role rule as a table: for each role, the (command, place) pairs allowed. Anything
    /// not listed is refused.
    fn allowed_by_role(role: Role, command: Command, place: Place) -> bool {
        use Command::*;
        use Place::*;
        const NODE_COMMANDS: [Command; 8] = [Approve, Reject, Cancel, Retry, Propose, SilenceAdd, SilenceExpire, CheckNow];
        match role {
            Role::Admin => true,
            Role::Viewer => false,
            Role::Operator => NODE_COMMANDS.contains(&command) && matches!(place, OwnGroup | Unknown),
        }
    }

    /// The channel rule as a table: what each channel can ask for.
    fn carried(channel: Channel, command: Command) -> bool {
        use Command::*;
        match channel {
            Channel::Telegram => [Approve, Reject, SilenceAdd].contains(&command),
            Channel::Hosts => false,
            _ => true,
        }
    }

    #[test]
    fn channel_role_group_command_table() {
        let (web_x, db, none) = (vec!["web".to_owned(), "x".to_owned()], vec!["db".to_owned()], Vec::<String>::new());
        let mut checked = 0;
        for channel in Channel::ALL {
            for role in [Role::Viewer, Role::Operator, Role::Admin] {
                let actor = Actor::user("ann", role, vec!["web".into()], channel, "192.0.2.1", "ui:ann");
                for command in Command::ALL {
                    for place in PLACES {
                        let scope = match place {
                            Place::OwnGroup => Scope::Node { node: "web-1", groups: &web_x },
                            Place::OtherGroup => Scope::Node { node: "db-1", groups: &db },
                            Place::NoGroup => Scope::Node { node: "misc-1", groups: &none },
                            Place::EveryNode => Scope::EveryNode,
                            Place::Unknown => Scope::Unknown,
                            Place::Global => Scope::Global,
                        };
                        let want = carried(channel, command) && allowed_by_role(role, command, place);
                        let got = permit(&actor, command, scope);
                        assert_eq!(got.is_ok(), want, "{channel} {role} {command:?} {place:?}: {got:?}");
                        if let Err(why) = got {
                            assert!(!why.is_empty());
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 7 * 3 * 10 * 6);
    }

    #[test]
    fn refusals_say_why() {
        let op = Actor::user("otto", Role::Operator, vec!["web".into()], Channel::Api, "", "api:otto");
        let db = vec!["db".to_owned()];
        assert_eq!(
            permit(&op, Command::Approve, Scope::Node { node: "db-1", groups: &db }).unwrap_err(),
            "operator otto acts on groups [web]; node db-1 is in [db]"
        );
        assert_eq!(
            permit(&op, Command::Approve, Scope::Node { node: "misc-1", groups: &[] }).unwrap_err(),
            "node misc-1 is in no group, so only an admin may act on it (otto is an operator)"
        );
        let viewer = Actor::user("vic", Role::Viewer, vec![], Channel::Ui, "", "ui:vic");
        assert_eq!(permit(&viewer, Command::Retry, Scope::Unknown).unwrap_err(), "vic is a viewer and may only read");
        assert_eq!(permit(&op, Command::AdministerUsers, Scope::Global).unwrap_err(), "otto is operator; only an admin may do this");
        let stranger =
            Actor::unidentified("telegram:99", Channel::Telegram, "telegram:99", "your Telegram account is not linked to a user of the control plane");
        assert!(permit(&stranger, Command::Approve, Scope::Unknown).unwrap_err().contains("not linked"));
        let cli = Actor::cli("cli:root");
        assert_eq!((cli.name.as_str(), cli.role), ("root", Some(Role::Admin)));
        assert!(permit(&cli, Command::AdministerUsers, Scope::Global).is_ok());
    }
}
