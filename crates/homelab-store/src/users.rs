//! Users, roles, API tokens and sessions: `state/secrets/users.json` and
//! `state/secrets/sessions.json` (both mode 0600, written atomically under a lock).
//!
//! - Passwords are kept as Argon2id PHC strings at OWASP's parameters (m = 19 MiB, t = 2, p = 1).
//! - API tokens and session ids are kept as SHA-256 of the token. They are 256-bit random values
//!   (never chosen by a person), so a fast hash is enough: nobody can search 2^256 preimages,
//!   however fast each guess is. A slow hash only helps low-entropy secrets (passwords), and would
//!   cost 19 MiB and tens of milliseconds on every API request.
//! - Who belongs to which node group lives here, never in hosts/ (hosts/ only names a node's
//!   groups: `group:` / `groups:` in `services.yaml`).

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::DataRoot;
use crate::atomic::{sync_parent, temp_path};

/// The prefix of every API token, so a leaked one is easy to recognise (and grep for).
pub const TOKEN_PREFIX: &str = "hcpt_";

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Approves, rejects and retries actions of nodes in their groups.
    Operator,
    /// Everything, users and tokens included.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One local user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub role: Role,
    /// Node groups this user may act on (operators; admins act everywhere).
    #[serde(default)]
    pub groups: Vec<String>,
    /// Argon2id PHC string; `None`: no password login (API tokens, proxy or Telegram only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
    /// Telegram user ids whose button presses count as this user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telegram_ids: Vec<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Sessions started before this time are void (`hcp user logout`, password change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_not_before: Option<DateTime<Utc>>,
}

/// One API token: never the token itself, only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Public id (`t` + 8 hex), shown in lists and the audit log.
    pub id: String,
    pub name: String,
    pub user: String,
    /// Hex SHA-256 of the whole token string.
    pub sha256: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// `state/secrets/users.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersFile {
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
}

impl UsersFile {
    /// The token record and its user for a presented token, when it is known, unexpired and its
    /// user still exists. Compares every hash without stopping early.
    pub fn find_token(&self, token: &str, now: DateTime<Utc>) -> Option<(&ApiToken, &User)> {
        let h = sha256_hex(token);
        let mut found = None;
        for t in &self.tokens {
            if ct_eq(t.sha256.as_bytes(), h.as_bytes()) {
                found = Some(t);
            }
        }
        let t = found.filter(|t| t.expires_at > now)?;
        Some((t, self.users.get(&t.user)?))
    }

    /// The user a Telegram account is mapped to.
    pub fn by_telegram(&self, telegram_id: i64) -> Option<(&str, &User)> {
        self.users.iter().find(|(_, u)| u.telegram_ids.contains(&telegram_id)).map(|(n, u)| (n.as_str(), u))
    }

    /// True when some user has a Telegram id: presses then count only from mapped accounts.
    pub fn maps_telegram(&self) -> bool {
        self.users.values().any(|u| !u.telegram_ids.is_empty())
    }
}

/// One persisted browser session, keyed by the SHA-256 of its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    pub user: String,
    /// Started with the bootstrap `UI_TOKEN` (an admin that is not a local user).
    #[serde(default)]
    pub bootstrap: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Role at login, for a single sign-on user who is not a local user (a local user's own
    /// role applies otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Node groups at login, the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// How the session started when not by password: `oidc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// `state/secrets/sessions.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsFile {
    #[serde(default)]
    pub sessions: BTreeMap<String, StoredSession>,
}

/// Hex SHA-256.
pub fn sha256_hex(s: &str) -> String {
    format!("{:x}", sha2::Sha256::digest(s.as_bytes()))
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// 256 random bits as hex (getrandom through UUID v4 would give 244; read the OS directly).
pub fn random_hex32() -> String {
    let mut buf = [0u8; 32];
    if getrandom_fill(&mut buf).is_err() {
        // /dev/urandom is always there on Linux; fall back to four v4 UUIDs' randomness.
        return format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

fn getrandom_fill(buf: &mut [u8]) -> io::Result<()> {
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

/// A new API token: the string to show once, and its record (hash only).
pub fn new_token(user: &str, name: &str, now: DateTime<Utc>, valid_for: chrono::Duration) -> (String, ApiToken) {
    let id = format!("t{}", &random_hex32()[..8]);
    let token = format!("{TOKEN_PREFIX}{id}_{}", random_hex32());
    let rec = ApiToken { id, name: name.to_owned(), user: user.to_owned(), sha256: sha256_hex(&token), created_at: now, expires_at: now + valid_for };
    (token, rec)
}

fn argon2() -> argon2::Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: Argon2id, m = 19 MiB, t = 2, p = 1.
    let params = argon2::Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// Hashes a password (Argon2id, random salt) into a PHC string.
pub fn hash_password(password: &str) -> io::Result<String> {
    use argon2::password_hash::PasswordHasher as _;
    argon2().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| io::Error::other(format!("cannot hash the password: {e}")))
}

/// True when `password` matches the PHC string (parameters are taken from the string).
pub fn verify_password(phc: &str, password: &str) -> bool {
    use argon2::password_hash::PasswordVerifier as _;
    argon2().verify_password(password.as_bytes(), phc).is_ok()
}

/// A PHC string for a password nobody has, so an unknown user costs as much as a known one.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&random_hex32()).unwrap_or_default())
}

/// A valid user or group name: letters, digits, `.`, `_`, `-`, `@`, 1 to 64 characters.
pub fn valid_name(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// Writes `bytes` to `path` atomically with mode 0600 (temp, fsync, rename, fsync folder).
pub fn write_secret_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let tmp = temp_path(path)?;
    let written = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display())));
    }
    sync_parent(path)
}

impl DataRoot {
    /// `state/secrets/users.json`; a missing file is no users.
    pub fn read_users(&self) -> io::Result<UsersFile> {
        Ok(self.read_json(crate::Doc::Users.name())?.unwrap_or_default())
    }

    /// `state/secrets/sessions.json`; a missing file is no sessions.
    pub fn read_sessions(&self) -> io::Result<SessionsFile> {
        Ok(self.read_json(crate::Doc::Sessions.name())?.unwrap_or_default())
    }

    /// Read-modify-write of users.json under an exclusive lock (`state/secrets/.users.lock`), so
    /// two `hcp` commands never lose each other's change. `f` returning `Err` writes nothing.
    pub fn update_users<T, E: From<io::Error>>(&self, f: impl FnOnce(&mut UsersFile) -> Result<T, E>) -> Result<T, E> {
        self.update_secret_json(crate::Doc::Users.name(), f)
    }

    /// Read-modify-write of sessions.json under its lock.
    pub fn update_sessions<T, E: From<io::Error>>(&self, f: impl FnOnce(&mut SessionsFile) -> Result<T, E>) -> Result<T, E> {
        self.update_secret_json(crate::Doc::Sessions.name(), f)
    }

    fn update_secret_json<V, T, E>(&self, rel: &str, f: impl FnOnce(&mut V) -> Result<T, E>) -> Result<T, E>
    where
        V: Default + Serialize + serde::de::DeserializeOwned + PartialEq,
        E: From<io::Error>,
    {
        let path = self.path().join(rel);
        let dir = path.parent().expect("secret files live in a folder");
        std::fs::create_dir_all(dir)?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("secret");
        let lock = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(dir.join(format!(".{name}.lock")))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(io::Error::from)?;
        let mut value: V = self.read_json(rel)?.unwrap_or_default();
        let before = serde_json::to_vec(&value).map_err(io::Error::other)?;
        let out = f(&mut value)?;
        let after = serde_json::to_vec_pretty(&value).map_err(io::Error::other)?;
        if serde_json::to_vec(&value).map_err(io::Error::other)? != before {
            write_secret_atomic(&path, &after)?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_owasp_argon2id_and_verify() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsE"));
        assert!(!verify_password("not a phc string", "x"));
        // Two hashes of one password differ (random salt).
        assert_ne!(h, hash_password("correct horse").unwrap());
    }

    #[test]
    fn tokens_are_found_by_hash_until_they_expire() {
        let now = Utc::now();
        let (token, rec) = new_token("alice", "ci", now, chrono::Duration::days(1));
        assert!(token.starts_with("hcpt_t") && token.len() > 70 && !rec.sha256.contains(&token[10..]));
        let mut f = UsersFile::default();
        f.users.insert(
            "alice".into(),
            User {
                role: Role::Operator,
                groups: vec!["web".into()],
                password_hash: None,
                telegram_ids: vec![],
                created_at: now,
                updated_at: now,
                sessions_not_before: None,
            },
        );
        f.tokens.push(rec);
        assert_eq!(f.find_token(&token, now).map(|(t, _)| t.user.as_str()), Some("alice"));
        assert!(f.find_token(&format!("{token}x"), now).is_none());
        assert!(f.find_token(&token, now + chrono::Duration::days(2)).is_none());
        f.users.clear();
        assert!(f.find_token(&token, now).is_none(), "a token of a removed user is void");
    }

    #[test]
    fn updates_are_0600_and_locked() {
        let (_tmp, root) = DataRoot::temp();
        let now = Utc::now();
        std::thread::scope(|s| {
            for i in 0..8 {
                let root = root.clone();
                s.spawn(move || {
                    root.update_users(|f| -> io::Result<()> {
                        f.users.insert(
                            format!("u{i}"),
                            User {
                                role: Role::Viewer,
                                groups: vec![],
                                password_hash: None,
                                telegram_ids: vec![],
                                created_at: now,
                                updated_at: now,
                                sessions_not_before: None,
                            },
                        );
                        Ok(())
                    })
                    .unwrap();
                });
            }
        });
        assert_eq!(root.read_users().unwrap().users.len(), 8, "no update lost");
        assert_eq!(root.file_mode(crate::Doc::Users).unwrap(), 0o600);
        // An Err writes nothing.
        let r: io::Result<()> = root.update_users(|f| {
            f.users.clear();
            Err(io::Error::other("no"))
        });
        assert!(r.is_err());
        assert_eq!(root.read_users().unwrap().users.len(), 8);
    }
}
