//! Users, their sessions and API tokens (`state/secrets/users.json`, `sessions.json`): admins
//! only, every change audited.

use homelab_store::users::{ApiToken, Role, User, new_token, valid_name};

use crate::Ops;
use crate::actor::Actor;
use crate::audit::Outcome;
use crate::permit::{Command, Scope, permit};

/// Why a user or token change was not made (nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot write the users file: {0}")]
    Store(#[from] std::io::Error),
}

impl UserError {
    fn outcome(&self) -> Outcome {
        match self {
            UserError::Forbidden(_) => Outcome::Refused,
            UserError::Store(_) | UserError::Invalid(_) => Outcome::Failed,
        }
    }
}

fn invalid<T>(why: String) -> Result<T, UserError> {
    Err(UserError::Invalid(why))
}

/// Group names as given: trimmed, empty ones dropped, each checked, each once.
pub fn check_groups(groups: &[String]) -> Result<Vec<String>, UserError> {
    let mut out: Vec<String> = Vec::new();
    for g in groups.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
        if !valid_name(g) {
            return invalid(format!("{g:?} is not a group name (letters, digits, '.', '_', '-')"));
        }
        if !out.iter().any(|o| o == g) {
            out.push(g.to_owned());
        }
    }
    Ok(out)
}

/// A new user.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub groups: Vec<String>,
    pub telegram_ids: Vec<i64>,
    /// An Argon2id PHC string; `None`: no password login (tokens, proxy or Telegram only).
    pub password_hash: Option<String>,
}

/// What `user_set` changes; `None` keeps it.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub groups: Option<Vec<String>>,
    pub telegram_ids: Option<Vec<i64>>,
}

impl Ops {
    /// Checks, runs and audits one change of users.json as `what` on `target`.
    fn administer<T>(&self, actor: &Actor, what: &str, target: &str, change: impl FnOnce() -> Result<T, UserError>) -> Result<T, UserError> {
        let result = permit(actor, Command::AdministerUsers, Scope::Global).map_err(UserError::Forbidden).and_then(|()| change());
        match &result {
            Ok(_) => {
                tracing::info!(what, target, by = %actor.by, "users changed");
                self.audit(actor, what, target, Outcome::Ok, None);
            }
            // A change that does not apply (unknown user, taken name or id) was never made:
            // said to the person, not audited, as for a silence that does not parse.
            Err(UserError::Invalid(_)) => {}
            Err(e) => self.audit(actor, what, target, e.outcome(), Some(e.to_string())),
        }
        result
    }

    pub fn user_add(&self, actor: &Actor, u: NewUser) -> Result<(), UserError> {
        let name = u.name.clone();
        self.administer(actor, "user_add", &name, || {
            if !valid_name(&u.name) {
                return invalid(format!("{:?} is not a user name (letters, digits, '.', '_', '-', '@'; at most 64)", u.name));
            }
            let groups = check_groups(&u.groups)?;
            let now = chrono::Utc::now();
            self.root.update_users(|f| {
                if f.users.contains_key(&u.name) {
                    return invalid(format!("user {:?} exists; use `hcp user passwd` or `hcp user set`", u.name));
                }
                if let Some(id) = u.telegram_ids.iter().find(|id| f.by_telegram(**id).is_some()) {
                    return invalid(format!("Telegram id {id} already belongs to another user"));
                }
                let user = User {
                    role: u.role,
                    groups,
                    password_hash: u.password_hash,
                    telegram_ids: u.telegram_ids,
                    created_at: now,
                    updated_at: now,
                    sessions_not_before: None,
                };
                f.users.insert(u.name, user);
                Ok(())
            })
        })
    }

    /// Sets a user's password hash and ends their sessions.
    pub fn user_passwd(&self, actor: &Actor, name: &str, password_hash: String) -> Result<(), UserError> {
        self.administer(actor, "user_passwd", name, || {
            let now = chrono::Utc::now();
            self.root.update_users(|f| {
                let Some(u) = f.users.get_mut(name) else { return invalid(format!("no user {name:?} (hint: hcp user list)")) };
                u.password_hash = Some(password_hash);
                u.updated_at = now;
                u.sessions_not_before = Some(now);
                Ok(())
            })?;
            self.end_sessions(name)?;
            Ok(())
        })
    }

    pub fn user_set(&self, actor: &Actor, name: &str, change: UserChange) -> Result<(), UserError> {
        self.administer(actor, "user_set", name, || {
            let groups = change.groups.as_deref().map(check_groups).transpose()?;
            let now = chrono::Utc::now();
            self.root.update_users(|f| {
                if let Some(t) = &change.telegram_ids
                    && let Some(id) = t.iter().find(|id| f.by_telegram(**id).is_some_and(|(n, _)| n != name))
                {
                    return invalid(format!("Telegram id {id} already belongs to another user"));
                }
                let Some(u) = f.users.get_mut(name) else { return invalid(format!("no user {name:?} (hint: hcp user list)")) };
                if let Some(r) = change.role {
                    u.role = r;
                }
                if let Some(g) = groups {
                    u.groups = g;
                }
                if let Some(t) = change.telegram_ids {
                    u.telegram_ids = t;
                }
                u.updated_at = now;
                Ok(())
            })
        })
    }

    /// Removes a user with their tokens and sessions; returns how many tokens went.
    pub fn user_remove(&self, actor: &Actor, name: &str) -> Result<usize, UserError> {
        self.administer(actor, "user_remove", name, || {
            let tokens = self.root.update_users(|f| {
                if f.users.remove(name).is_none() {
                    return invalid(format!("no user {name:?} (hint: hcp user list)"));
                }
                let before = f.tokens.len();
                f.tokens.retain(|t| t.user != name);
                Ok(before - f.tokens.len())
            })?;
            self.end_sessions(name)?;
            Ok(tokens)
        })
    }

    /// Ends every session of a user (and any made before now); returns how many.
    pub fn user_logout(&self, actor: &Actor, name: &str) -> Result<usize, UserError> {
        self.administer(actor, "user_logout", name, || {
            let n = self.end_sessions(name)?;
            let now = chrono::Utc::now();
            self.root.update_users(|f| -> Result<(), UserError> {
                if let Some(u) = f.users.get_mut(name) {
                    u.sessions_not_before = Some(now);
                }
                Ok(())
            })?;
            Ok(n)
        })
    }

    fn end_sessions(&self, name: &str) -> Result<usize, UserError> {
        Ok(self.root.update_sessions(|s| -> std::io::Result<usize> {
            let before = s.sessions.len();
            s.sessions.retain(|_, v| v.user != name);
            Ok(before - s.sessions.len())
        })?)
    }

    /// A new API token for `user`, valid for `valid_for`: (the secret, shown only now; its
    /// record). Audited as `token_create` on `<id> (<user>)`.
    pub fn token_create(&self, actor: &Actor, user: &str, name: &str, valid_for: chrono::Duration) -> Result<(String, ApiToken), UserError> {
        let clean_name: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        let (token, rec) = new_token(user, &clean_name, chrono::Utc::now(), valid_for);
        let target = format!("{} ({user})", rec.id);
        self.administer(actor, "token_create", &target, || {
            self.root.update_users(|f| {
                if !f.users.contains_key(user) {
                    return invalid(format!("no user {user:?} (hint: hcp user add)"));
                }
                f.tokens.push(rec.clone());
                Ok(())
            })?;
            Ok((token, rec))
        })
    }

    /// Revokes a token; returns whose it was. Audited as `token_revoke` on `<id> (<user>)`.
    pub fn token_revoke(&self, actor: &Actor, id: &str) -> Result<String, UserError> {
        // The owner is part of the record's target; an unknown id is audited on the id alone.
        let owner = self.root.read_users().ok().and_then(|f| f.tokens.iter().find(|t| t.id == id).map(|t| t.user.clone()));
        let target = match &owner {
            Some(u) => format!("{id} ({u})"),
            None => id.to_owned(),
        };
        self.administer(actor, "token_revoke", &target, || {
            self.root.update_users(|f| {
                let Some(i) = f.tokens.iter().position(|t| t.id == id) else { return invalid(format!("no token {id:?} (hint: hcp token list)")) };
                Ok(f.tokens.remove(i).user)
            })
        })
    }
}
