//! Who asks: an [`Actor`] is a person (or a daemon) with a role and node groups, reaching the
//! control plane through one [`Channel`]. Every channel turns its own credentials into one:
//! the UI its session, bearer token or proxy header; Telegram the account behind a press;
//! `hcp` the local user.

pub use homelab_store::users::Role;

/// The way a command arrived. `as_str` is what the audit log's `channel` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// A browser session (password or bootstrap-token login).
    Ui,
    /// A bearer token.
    Api,
    /// A trusted reverse proxy's user header.
    Proxy,
    /// A single sign-on login.
    Oidc,
    /// A button press in Telegram.
    Telegram,
    /// `hcp` on the control-plane host.
    Cli,
    /// A daemon reporting on desired state (the supervisor's config records).
    Hosts,
}

impl Channel {
    pub const ALL: [Channel; 7] = [Channel::Ui, Channel::Api, Channel::Proxy, Channel::Oidc, Channel::Telegram, Channel::Cli, Channel::Hosts];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Ui => "ui",
            Channel::Api => "api",
            Channel::Proxy => "proxy",
            Channel::Oidc => "oidc",
            Channel::Telegram => "telegram",
            Channel::Cli => "cli",
            Channel::Hosts => "hosts",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Someone asking for a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The audit log's `who`: the user (`alice`), `token` for the bootstrap UI token,
    /// `telegram:<id>` for an unlinked Telegram account, `?` for an unknown login name.
    pub name: String,
    /// `None`: not identified as a user of the control plane; every command is refused with
    /// [`Actor::unidentified`]'s reason.
    pub role: Option<Role>,
    /// Node groups an operator acts on.
    pub groups: Vec<String>,
    pub channel: Channel,
    /// The audit log's `source`: an address, `telegram:<id>`, `local`.
    pub source: String,
    /// What an action's history records (`ui:alice`, `api:token`, `telegram:42`, `cli:bob`).
    pub by: String,
    /// What a silence's `created_by` records: `by`, except for a Telegram account linked to a
    /// user, which signs with the user's name.
    pub author: String,
    refusal: Option<String>,
}

impl Actor {
    /// A user identified by a channel.
    pub fn user(name: &str, role: Role, groups: Vec<String>, channel: Channel, source: &str, by: &str) -> Actor {
        Actor { name: name.to_owned(), role: Some(role), groups, channel, source: source.to_owned(), by: by.to_owned(), author: by.to_owned(), refusal: None }
    }

    /// The local user of `hcp` (`by` = `cli:<user>`): the CLI acts with the data root's own
    /// file permissions, so as an admin.
    pub fn cli(by: &str) -> Actor {
        let name = by.strip_prefix("cli:").unwrap_or(by);
        Actor::user(name, Role::Admin, Vec::new(), Channel::Cli, "local", by)
    }

    /// Someone the channel could not map to a user: refused everything, saying `why`.
    pub fn unidentified(name: &str, channel: Channel, source: &str, why: &str) -> Actor {
        Actor {
            name: name.to_owned(),
            role: None,
            groups: Vec::new(),
            channel,
            source: source.to_owned(),
            by: name.to_owned(),
            author: name.to_owned(),
            refusal: Some(why.to_owned()),
        }
    }

    /// A daemon writing audit records about its own work (`supervisor` on channel `hosts`).
    pub fn daemon(name: &str, channel: Channel) -> Actor {
        Actor::unidentified(name, channel, "", "a daemon runs no operator commands")
    }

    /// Signs silences with `author` instead of `by`.
    pub fn with_author(mut self, author: &str) -> Actor {
        self.author = author.to_owned();
        self
    }

    /// The role as the audit log writes it (empty when not identified).
    pub fn role_str(&self) -> &'static str {
        self.role.map_or("", Role::as_str)
    }

    /// Why this actor may do nothing at all, if so.
    pub fn refusal(&self) -> Option<&str> {
        self.refusal.as_deref()
    }
}
