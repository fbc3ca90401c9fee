// tidy: long file: credentials, sessions, trusted-proxy headers, rate limits and the audit hook not yet split.
//! Who is asking: the operator behind a request (bearer token, session cookie, or a trusted
//! reverse-proxy header), what they may do (role × node group), how fast they may guess (rate
//! limits with back-off), and the checks that keep a browser's ambient credentials from being
//! used by another site (CSRF token, Origin and Sec-Fetch-Site).
//!
//! Every way in maps to a user with a role and node groups:
//! - the bootstrap `UI_TOKEN` (bearer, or as the login password): an admin;
//! - a local user's password (login form) → a session; a user's API token (bearer);
//! - a trusted proxy's user header (only from `TRUSTED_PROXIES`), with its groups header;
//! - Telegram presses are mapped by `homelab_ops::Ops::telegram_actor` (users.json's Telegram ids).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use homelab_ops::audit::record;
use homelab_ops::{Actor, Channel, Command, Outcome, Scope};
use homelab_store::DataRoot;
use homelab_store::audit::AuditRecord;
pub use homelab_store::users::Role;
use homelab_store::users::{SessionsFile, StoredSession, TOKEN_PREFIX, UsersFile, sha256_hex};
use thiserror::Error;

pub use crate::access::{AccessConfig, SESSION_TTL, Secret, ct_eq, list, random_token, valid_user};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hcp_session";
/// At most this many live sessions; the oldest go first.
const MAX_SESSIONS: usize = 1000;

/// Failures an address may make before back-off starts.
pub const ADDR_FREE_FAILURES: u32 = 10;
/// Failures against one user name (from any address) before back-off starts for addresses that
/// have not logged in as that user before.
pub const USER_FREE_FAILURES: u32 = 20;
/// The longest back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten after this long without a new one.
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// Why a request was refused. The message tells the caller what to do; it never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("authentication required: send `Authorization: Bearer <token>` or log in")]
    NoCredentials,
    #[error("wrong token")]
    WrongToken,
    #[error("the proxy user header is accepted only from TRUSTED_PROXIES addresses")]
    UntrustedProxy,
    #[error("the proxy user header does not hold a usable user name")]
    BadProxyUser,
    #[error("session expired or unknown: log in again")]
    BadSession,
    #[error("missing or wrong CSRF token: reload the page and try again")]
    Csrf,
    #[error("cross-site request refused")]
    CrossSite,
    #[error("too many failed attempts from this address: retry in {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    Forbidden(String),
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCredentials | Refusal::WrongToken | Refusal::BadSession | Refusal::UntrustedProxy | Refusal::BadProxyUser => StatusCode::UNAUTHORIZED,
            Refusal::Csrf | Refusal::CrossSite | Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// Seconds for `Retry-After` (429 only).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Refusal::RateLimited(s) => Some(*s),
            _ => None,
        }
    }
}

/// An authenticated operator: who, with which role and node groups, through which channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// What goes into `history[].by`: `api:token`, `api:alice`, `ui:alice`.
    pub by: String,
    /// For browser credentials (cookie, proxy header): the CSRF token the request must carry.
    pub csrf: Option<String>,
    /// The user (`alice`), or `token` for the bootstrap UI token.
    pub name: String,
    pub role: Role,
    /// Node groups an operator acts on.
    pub groups: Vec<String>,
    /// `ui` (session), `api` (bearer), `proxy` (trusted header).
    pub channel: Channel,
}

impl Operator {
    pub fn user(&self) -> &str {
        self.by.split_once(':').map_or(self.by.as_str(), |(_, u)| u)
    }

    fn admin(by: String, name: &str, channel: Channel, csrf: Option<String>) -> Operator {
        Operator { by, csrf, name: name.to_owned(), role: Role::Admin, groups: Vec::new(), channel }
    }

    /// This operator as the operations layer sees them, asking from `peer`.
    pub fn actor(&self, peer: Option<IpAddr>) -> Actor {
        Actor::user(&self.name, self.role, self.groups.clone(), self.channel, &source(peer), &self.by)
    }

    /// Users, tokens and the audit log are for admins only (the one rule, homelab_ops::permit).
    pub fn may_administer(&self) -> Result<(), String> {
        homelab_ops::permit(&self.actor(None), Command::ReadAudit, Scope::Global)
    }
}

/// An address or network from `TRUSTED_PROXIES` (`10.0.0.1`, `10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn parse(s: &str) -> Result<Net, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p.parse::<u8>().map_err(|_| format!("bad prefix length in {s:?}"))?)),
            None => (s, None),
        };
        let addr: IpAddr = ip.trim().parse().map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(format!("bad prefix length in {s:?}"));
        }
        Ok(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => mask(u32::from(n) as u128, u32::from(i) as u128, self.prefix, 32),
            (IpAddr::V6(n), IpAddr::V6(i)) => mask(u128::from(n), u128::from(i), self.prefix, 128),
            _ => false,
        }
    }
}

fn mask(net: u128, ip: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = bits - prefix;
    (net >> shift) == (ip >> shift)
}

/// Parses `TRUSTED_PROXIES`: comma-separated addresses or networks.
pub fn parse_proxies(s: &str) -> Result<Vec<Net>, String> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty()).map(Net::parse).collect()
}

/// The key rate limits count an address under: IPv4 as is, IPv6 by its /64 (one host usually
/// has a whole /64, so counting single addresses would let it rotate).
fn addr_key(ip: Option<IpAddr>) -> IpAddr {
    match ip {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        Some(v4) => v4,
        None => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    }
}

#[derive(Debug, Clone, Copy)]
struct Strikes {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Failed logins and bad tokens, per address and per user name, with exponential back-off
/// (2 s, 4 s, 8 s, … up to [`MAX_BACKOFF`]) once the free failures are used up. A blocked
/// request is answered at once with 429 and `Retry-After`; nothing ever sleeps, so nobody else
/// waits. The per-user limit spares addresses that logged in as that user before, so an
/// attacker guessing alice's password from elsewhere cannot lock alice out.
#[derive(Debug, Default)]
pub struct Limiter {
    by_addr: HashMap<IpAddr, Strikes>,
    by_user: HashMap<String, Strikes>,
    known: HashMap<(String, IpAddr), Instant>,
}

fn backoff(failures: u32, free: u32) -> Option<Duration> {
    if failures < free {
        return None;
    }
    let exp = (failures - free).min(20) + 1;
    Some(Duration::from_secs(1u64 << exp).min(MAX_BACKOFF))
}

impl Limiter {
    fn forget_old(&mut self, now: Instant) {
        if self.by_addr.len() + self.by_user.len() > 10_000 {
            self.by_addr.retain(|_, s| now.duration_since(s.last) < FORGET_AFTER);
            self.by_user.retain(|_, s| now.duration_since(s.last) < FORGET_AFTER);
        }
        if self.known.len() > 10_000 {
            self.known.retain(|_, t| now.duration_since(*t) < Duration::from_secs(30 * 86_400));
        }
    }

    fn wait(s: Option<&Strikes>, now: Instant) -> Option<Duration> {
        let s = s?;
        s.blocked_until.filter(|u| *u > now).map(|u| u - now)
    }

    /// `Some(wait)` when this address (or, for a password login, this user from an address
    /// that never logged in as them) must wait.
    pub fn check(&self, ip: Option<IpAddr>, user: Option<&str>, now: Instant) -> Option<Duration> {
        let addr = addr_key(ip);
        let by_addr = Self::wait(self.by_addr.get(&addr), now);
        let by_user = user.filter(|u| !self.known.contains_key(&((*u).to_owned(), addr))).and_then(|u| Self::wait(self.by_user.get(u), now));
        by_addr.into_iter().chain(by_user).max()
    }

    /// Records a failure; returns the back-off it started, if any.
    pub fn fail(&mut self, ip: Option<IpAddr>, user: Option<&str>, now: Instant) -> Option<Duration> {
        self.forget_old(now);
        let bump = |s: &mut Strikes, free: u32| {
            if now.duration_since(s.last) >= FORGET_AFTER && s.blocked_until.is_none_or(|u| u <= now) {
                s.failures = 0;
            }
            s.failures += 1;
            s.last = now;
            let b = backoff(s.failures, free);
            s.blocked_until = b.map(|b| now + b);
            b
        };
        let fresh = Strikes { failures: 0, last: now, blocked_until: None };
        let a = bump(self.by_addr.entry(addr_key(ip)).or_insert(fresh), ADDR_FREE_FAILURES);
        let u = user.and_then(|u| bump(self.by_user.entry(u.to_owned()).or_insert(fresh), USER_FREE_FAILURES));
        a.into_iter().chain(u).max()
    }

    /// A correct login: this address is now known for this user. Counters are not reset (one
    /// valid account must not reopen guessing for another).
    pub fn success(&mut self, ip: Option<IpAddr>, user: &str, now: Instant) {
        self.known.insert((user.to_owned(), addr_key(ip)), now);
    }
}

/// Authentication counters for `/metrics` (`auth_attempts_total{kind, outcome}`).
#[derive(Debug, Default)]
pub struct AuthCounters {
    login_ok: AtomicU64,
    login_refused: AtomicU64,
    login_rate_limited: AtomicU64,
    token_refused: AtomicU64,
    token_rate_limited: AtomicU64,
    oidc_ok: AtomicU64,
    oidc_refused: AtomicU64,
    oidc_rate_limited: AtomicU64,
}

impl AuthCounters {
    /// `(kind, outcome, count)`: kind `login`, `token` or `oidc`; outcome `ok`, `refused`, `rate_limited`.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("login", "ok", g(&self.login_ok)),
            ("login", "refused", g(&self.login_refused)),
            ("login", "rate_limited", g(&self.login_rate_limited)),
            ("token", "refused", g(&self.token_refused)),
            ("token", "rate_limited", g(&self.token_rate_limited)),
            ("oidc", "ok", g(&self.oidc_ok)),
            ("oidc", "refused", g(&self.oidc_refused)),
            ("oidc", "rate_limited", g(&self.oidc_rate_limited)),
        ]
    }
}

fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// A document read again only when its store stamp changed: users.json and sessions.json
/// are read on every request that carries a credential.
struct Cached<T> {
    stamp: Option<homelab_store::Stamp>,
    value: Arc<T>,
}

impl<T: Default> Default for Cached<T> {
    fn default() -> Self {
        Cached { stamp: None, value: Arc::new(T::default()) }
    }
}

fn read_cached<T: Default>(
    cache: &Mutex<Cached<T>>,
    stamp: std::io::Result<Option<homelab_store::Stamp>>,
    read: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<Arc<T>> {
    let stamp = stamp?;
    let mut c = cache.lock().unwrap_or_else(|e| e.into_inner());
    if c.stamp == stamp && stamp.is_some() {
        return Ok(c.value.clone());
    }
    let value: T = if stamp.is_some() { read()? } else { T::default() };
    *c = Cached { stamp, value: Arc::new(value) };
    Ok(c.value.clone())
}

/// The CSRF token of a session: derived from its id, so it needs no storage.
fn csrf_of(session_id: &str) -> String {
    sha256_hex(&format!("csrf:{session_id}"))[..40].to_owned()
}

/// The credentials the UI accepts, its users, sessions and rate limits.
pub struct Auth {
    pub ui_token: String,
    pub summary_token: Option<String>,
    pub trusted_proxies: Vec<Net>,
    pub user_header: header::HeaderName,
    pub groups_header: header::HeaderName,
    root: Option<DataRoot>,
    /// Where login records go: the operations layer's audit writer, with `AUDIT_RETENTION_DAYS`.
    audit_log: Option<homelab_ops::Ops>,
    session_ttl: Duration,
    proxy_default_role: Role,
    proxy_admin_groups: Vec<String>,
    proxy_operator_groups: Vec<String>,
    pub audit_retention_days: u32,
    limiter: Mutex<Limiter>,
    pub counters: AuthCounters,
    users: Mutex<Cached<UsersFile>>,
    sessions: Mutex<Cached<SessionsFile>>,
    /// Per proxy user, the CSRF token their forms carry (proxy users have no session).
    proxy_csrf: Mutex<HashMap<String, String>>,
    /// Single sign-on, when `OIDC_ISSUER` is set.
    pub oidc: Option<Arc<crate::oidc::Oidc>>,
}

/// Never prints a secret.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ui_token", &"<redacted>")
            .field("summary_token", &self.summary_token.as_ref().map(|_| "<redacted>"))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("user_header", &self.user_header)
            .field("groups_header", &self.groups_header)
            .field("session_ttl", &self.session_ttl)
            .field("proxy_default_role", &self.proxy_default_role)
            .finish_non_exhaustive()
    }
}

/// Why a password login failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoginError {
    #[error("Use a name of letters, digits, '.', '_', '-' or '@'.")]
    BadName,
    #[error("Wrong user name or password.")]
    Wrong,
    #[error("Too many failed logins: try again in {0} s.")]
    RateLimited(u64),
    #[error("Logins cannot be recorded now (the data root cannot be written); try again later.")]
    Unavailable,
}

impl LoginError {
    pub fn status(&self) -> StatusCode {
        match self {
            LoginError::BadName => StatusCode::BAD_REQUEST,
            LoginError::Wrong => StatusCode::UNAUTHORIZED,
            LoginError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            LoginError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            LoginError::RateLimited(s) => Some(*s),
            LoginError::Unavailable => Some(30),
            _ => None,
        }
    }
}

/// The source address as the audit log writes it (empty when unknown).
pub(crate) fn source(peer: Option<IpAddr>) -> String {
    peer.map(|p| p.to_string()).unwrap_or_default()
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Auth {
    pub fn new(ui_token: String, summary_token: Option<String>, trusted_proxies: Vec<Net>, user_header: header::HeaderName) -> Auth {
        Auth {
            ui_token,
            summary_token,
            trusted_proxies,
            user_header,
            groups_header: header::HeaderName::from_static("x-authentik-groups"),
            root: None,
            audit_log: None,
            session_ttl: SESSION_TTL,
            proxy_default_role: Role::Admin,
            proxy_admin_groups: Vec::new(),
            proxy_operator_groups: Vec::new(),
            audit_retention_days: homelab_store::audit::DEFAULT_RETENTION_DAYS,
            limiter: Mutex::default(),
            counters: AuthCounters::default(),
            users: Mutex::default(),
            sessions: Mutex::default(),
            proxy_csrf: Mutex::default(),
            oidc: None,
        }
    }

    /// Users, sessions and the audit log in `root`, with the settings of `cfg`.
    pub fn with_access(mut self, root: DataRoot, cfg: &AccessConfig) -> anyhow::Result<Auth> {
        self.groups_header = cfg
            .trusted_groups_header
            .to_ascii_lowercase()
            .parse()
            .map_err(|_| anyhow::anyhow!("TRUSTED_GROUPS_HEADER {:?} is not a header name", cfg.trusted_groups_header))?;
        self.proxy_default_role = Role::parse(&cfg.proxy_default_role)
            .ok_or_else(|| anyhow::anyhow!("PROXY_DEFAULT_ROLE {:?}: use viewer, operator or admin", cfg.proxy_default_role))?;
        self.proxy_admin_groups = list(&cfg.proxy_admin_groups);
        self.proxy_operator_groups = list(&cfg.proxy_operator_groups);
        self.session_ttl = cfg.session_ttl.max(Duration::from_secs(60));
        self.audit_retention_days = cfg.audit_retention_days.max(1);
        if let Err(e) = root.read_users() {
            anyhow::bail!("{} cannot be read: {e}", homelab_store::Doc::Users);
        }
        if let Some(settings) = crate::oidc::Settings::from_access(cfg, &root)? {
            self.oidc = Some(Arc::new(crate::oidc::Oidc::new(settings)?));
        }
        self.audit_log = Some(homelab_ops::Ops::new(root.clone()).with_audit_retention(self.audit_retention_days));
        self.root = Some(root);
        Ok(self)
    }

    pub fn session_ttl(&self) -> Duration {
        self.session_ttl
    }

    fn trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(ip)))
    }

    /// users.json as of now (cached while unchanged). Unreadable: logged, and no user is known
    /// (fail closed; the bootstrap token still works).
    pub fn users(&self) -> Arc<UsersFile> {
        let Some(root) = &self.root else { return Arc::default() };
        read_cached(&self.users, root.users_stamp(), || root.read_users()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "users file unreadable: only the bootstrap UI token is accepted");
            Arc::default()
        })
    }

    fn stored_sessions(&self) -> Arc<SessionsFile> {
        let Some(root) = &self.root else { return Arc::default() };
        read_cached(&self.sessions, root.sessions_stamp(), || root.read_sessions()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "sessions file unreadable: everybody has to log in again");
            Arc::default()
        })
    }

    /// Appends to the audit log (blocking: fsync). A failure is logged, never a secret.
    pub fn audit(&self, rec: &AuditRecord) {
        if let Some(log) = &self.audit_log {
            log.write_audit(rec);
        }
    }

    /// Appends off the async runtime and waits for it (fsync): the answer goes out after the
    /// record is durable.
    pub async fn audit_now(self: &Arc<Self>, rec: AuditRecord) {
        let me = self.clone();
        let _ = tokio::task::spawn_blocking(move || me.audit(&rec)).await;
    }

    /// Same, off the async runtime when there is one.
    pub fn audit_later(self: &Arc<Self>, rec: AuditRecord) {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                let me = self.clone();
                h.spawn_blocking(move || me.audit(&rec));
            }
            Err(_) => self.audit(&rec),
        }
    }

    /// Starts a session for `user` (persisted hashed in state/secrets/sessions.json, so it
    /// survives a restart); returns (session id, csrf token). `bootstrap`: logged in with the UI
    /// token (an admin whether or not `user` is a local user).
    pub fn start_session(&self, user: &str, bootstrap: bool) -> std::io::Result<(String, String)> {
        let now = chrono::Utc::now();
        self.store_session(StoredSession { user: user.to_owned(), bootstrap, created_at: now, expires_at: now, role: None, groups: Vec::new(), via: None })
    }

    /// Persists `rec` (its expiry set from now) under a fresh id; returns (session id, csrf).
    fn store_session(&self, mut rec: StoredSession) -> std::io::Result<(String, String)> {
        let id = random_token();
        let now = chrono::Utc::now();
        let ttl = chrono::Duration::from_std(self.session_ttl).unwrap_or(chrono::Duration::hours(12));
        rec.created_at = now;
        rec.expires_at = now + ttl;
        let Some(root) = &self.root else { return Err(std::io::Error::other("no data root for sessions")) };
        root.update_sessions(|f| -> std::io::Result<()> {
            f.sessions.retain(|_, s| s.expires_at > now);
            while f.sessions.len() >= MAX_SESSIONS {
                let Some(oldest) = f.sessions.iter().min_by_key(|(_, s)| s.created_at).map(|(k, _)| k.clone()) else { break };
                f.sessions.remove(&oldest);
            }
            f.sessions.insert(sha256_hex(&id), rec);
            Ok(())
        })?;
        let csrf = csrf_of(&id);
        Ok((id, csrf))
    }

    /// Starts a bootstrap session for `user` (kept for callers of the single-token login).
    pub fn login(&self, user: &str) -> (String, String) {
        self.start_session(user, true).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot persist a session");
            (String::new(), String::new())
        })
    }

    /// Ends the session of this request's cookie.
    pub fn logout(&self, headers: &HeaderMap) {
        let (Some(id), Some(root)) = (cookie(headers, SESSION_COOKIE), &self.root) else { return };
        let key = sha256_hex(&id);
        let removed = root.update_sessions(|f| -> std::io::Result<Option<StoredSession>> { Ok(f.sessions.remove(&key)) });
        if let Ok(Some(s)) = removed {
            self.audit(&record(&Actor::unidentified(&s.user, Channel::Ui, "", ""), "logout", &s.user, Outcome::Ok));
        }
    }

    /// The operator behind a session id, when the session is live and its user still allowed.
    fn session(&self, id: &str) -> Option<Operator> {
        if id.is_empty() {
            return None;
        }
        let sessions = self.stored_sessions();
        let s = sessions.sessions.get(&sha256_hex(id))?;
        if s.expires_at <= chrono::Utc::now() {
            return None;
        }
        let csrf = Some(csrf_of(id));
        if s.bootstrap {
            return Some(Operator::admin(format!("ui:{}", s.user), &s.user, Channel::Ui, csrf));
        }
        let users = self.users();
        let (role, groups) = match users.users.get(&s.user) {
            Some(u) if u.sessions_not_before.is_some_and(|t| s.created_at < t) => return None,
            Some(u) => (u.role, u.groups.clone()),
            // A single sign-on user who is not a local user keeps what the provider said at login.
            None => match (s.via.as_deref(), s.role) {
                (Some("oidc"), Some(role)) => (role, s.groups.clone()),
                _ => return None,
            },
        };
        Some(Operator { by: format!("ui:{}", s.user), csrf, name: s.user.clone(), role, groups, channel: Channel::Ui })
    }

    fn proxy_csrf(&self, user: &str) -> String {
        self.proxy_csrf.lock().unwrap().entry(user.to_owned()).or_insert_with(random_token).clone()
    }

    /// The role and groups of a proxy user: a local user of that name decides; else the groups
    /// header (`PROXY_ADMIN_GROUPS`, `PROXY_OPERATOR_GROUPS`), else `PROXY_DEFAULT_ROLE`.
    fn proxy_identity(&self, user: &str, headers: &HeaderMap) -> (Role, Vec<String>) {
        if let Some(u) = self.users().users.get(user) {
            return (u.role, u.groups.clone());
        }
        let groups: Vec<String> = headers.get_all(&self.groups_header).iter().filter_map(|v| v.to_str().ok()).flat_map(list).collect();
        let role = if groups.iter().any(|g| self.proxy_admin_groups.contains(g)) {
            Role::Admin
        } else if groups.iter().any(|g| self.proxy_operator_groups.contains(g)) {
            Role::Operator
        } else {
            self.proxy_default_role
        };
        (role, groups)
    }

    fn bearer(&self, value: &header::HeaderValue, peer: Option<IpAddr>) -> Result<Operator, Refusal> {
        if let Some(wait) = self.limiter.lock().unwrap().check(peer, None, Instant::now()) {
            inc(&self.counters.token_rate_limited);
            return Err(Refusal::RateLimited(secs(wait)));
        }
        let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
        if !token.is_empty() && ct_eq(token, &self.ui_token) {
            return Ok(Operator::admin("api:token".into(), "token", Channel::Api, None));
        }
        if token.starts_with(TOKEN_PREFIX) {
            let users = self.users();
            if let Some((t, u)) = users.find_token(token, chrono::Utc::now()) {
                return Ok(Operator {
                    by: format!("api:{}", t.user),
                    csrf: None,
                    name: t.user.clone(),
                    role: u.role,
                    groups: u.groups.clone(),
                    channel: Channel::Api,
                });
            }
        }
        inc(&self.counters.token_refused);
        let started = self.limiter.lock().unwrap().fail(peer, None, Instant::now());
        tracing::warn!(peer = ?peer, "request with a wrong bearer token");
        let mut rec = record(&Actor::unidentified("?", Channel::Api, &source(peer), ""), "token_refused", "", Outcome::Refused);
        if let Some(b) = started {
            rec = rec.detail(format!("wrong bearer token; this address now waits {} s", secs(b)));
        }
        self.audit(&rec);
        Err(Refusal::WrongToken)
    }

    /// Who is behind this request, if anyone. Does not check CSRF (see [`Auth::for_mutation`]).
    /// A credential that is present but wrong is a refusal, never a fallback to the next kind.
    pub fn identify(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Operator, Refusal> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            return self.bearer(value, peer);
        }
        if let Some(value) = headers.get(&self.user_header) {
            if !self.trusted(peer) {
                tracing::warn!(peer = ?peer, header = %self.user_header, "proxy user header from an address not in TRUSTED_PROXIES; ignored");
                return Err(Refusal::UntrustedProxy);
            }
            let user = value.to_str().map_err(|_| Refusal::BadProxyUser)?.trim();
            if !valid_user(user) {
                return Err(Refusal::BadProxyUser);
            }
            let (role, groups) = self.proxy_identity(user, headers);
            return Ok(Operator { by: format!("ui:{user}"), csrf: Some(self.proxy_csrf(user)), name: user.to_owned(), role, groups, channel: Channel::Proxy });
        }
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            return self.session(&id).ok_or(Refusal::BadSession);
        }
        Err(Refusal::NoCredentials)
    }

    /// The operator allowed to change something: identified, and for browser credentials the
    /// request is same-origin and carries the CSRF token (`form_csrf` from a form field, or the
    /// `X-CSRF-Token` header). What they may change is decided per action (`homelab_ops::permit`, applied by each command of `homelab_ops::Ops`).
    pub fn for_mutation(&self, headers: &HeaderMap, peer: Option<IpAddr>, form_csrf: Option<&str>) -> Result<Operator, Refusal> {
        let op = self.identify(headers, peer)?;
        if let Some(expected) = &op.csrf {
            check_same_origin(headers)?;
            let given = form_csrf.or_else(|| headers.get("x-csrf-token").and_then(|v| v.to_str().ok()));
            if !given.is_some_and(|g| ct_eq(g, expected)) {
                return Err(Refusal::Csrf);
            }
        }
        Ok(op)
    }

    /// Read access: open unless `SUMMARY_TOKEN` is set; then the summary token, the UI token,
    /// a session or a trusted proxy user.
    pub fn for_read(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Option<Operator>, Refusal> {
        let Some(summary_token) = &self.summary_token else {
            return match self.identify(headers, peer) {
                Ok(op) => Ok(Some(op)),
                // Too many wrong tokens: say so even where reading is open.
                Err(r @ Refusal::RateLimited(_)) => Err(r),
                Err(_) => Ok(None),
            };
        };
        if let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
            && ct_eq(token.trim(), summary_token)
        {
            return Ok(None);
        }
        self.identify(headers, peer).map(Some)
    }

    /// The login form: the bootstrap `UI_TOKEN` as password (an admin session under any valid
    /// name), or a local user's password (Argon2id, checked off the async runtime). Rate-limited
    /// per address and per user; every outcome is audited and counted.
    pub async fn password_login(self: &Arc<Self>, peer: Option<IpAddr>, user: &str, password: &str) -> Result<String, LoginError> {
        if !valid_user(user) {
            return Err(LoginError::BadName);
        }
        let src = source(peer);
        if let Some(wait) = self.limiter.lock().unwrap().check(peer, Some(user), Instant::now()) {
            inc(&self.counters.login_rate_limited);
            return Err(LoginError::RateLimited(secs(wait)));
        }
        let users = self.users();
        let known = users.users.get(user).cloned();
        let (p, bootstrap_pw) = (password.to_owned(), ct_eq(password.trim(), &self.ui_token));
        let verdict = tokio::task::spawn_blocking(move || -> Result<(String, Role), ()> {
            if bootstrap_pw {
                return Ok(("token".into(), Role::Admin));
            }
            let ok = match known.as_ref().and_then(|k| k.password_hash.as_deref()) {
                Some(phc) => homelab_store::users::verify_password(phc, &p),
                None => {
                    // Same work for an unknown name, so timing does not tell which names exist.
                    let _ = homelab_store::users::verify_password(homelab_store::users::dummy_hash(), &p);
                    false
                }
            };
            match (ok, known) {
                (true, Some(k)) => Ok(("password".into(), k.role)),
                _ => Err(()),
            }
        })
        .await
        .unwrap_or(Err(()));
        match verdict {
            Ok((how, role)) => {
                let id = match self.start_session(user, how == "token") {
                    Ok((id, _)) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot persist a session");
                        return Err(LoginError::Unavailable);
                    }
                };
                self.limiter.lock().unwrap().success(peer, user, Instant::now());
                inc(&self.counters.login_ok);
                tracing::info!(user, role = %role, how, "logged in");
                let who = Actor::user(user, role, Vec::new(), Channel::Ui, &src, &format!("ui:{user}"));
                let rec = record(&who, "login", user, Outcome::Ok).detail(format!("with the {how}"));
                self.audit_now(rec).await;
                Ok(id)
            }
            Err(()) => {
                inc(&self.counters.login_refused);
                let started = self.limiter.lock().unwrap().fail(peer, Some(user), Instant::now());
                tracing::warn!(peer = ?peer, "failed login");
                // An unknown name is not recorded as typed: people type passwords into it.
                let who = if users.users.contains_key(user) { user } else { "?" };
                let mut rec = record(&Actor::unidentified(who, Channel::Ui, &src, ""), "login", who, Outcome::Refused);
                rec = rec.detail(match started {
                    Some(b) => format!("wrong user name or password; now waits {} s", secs(b)),
                    None => "wrong user name or password".into(),
                });
                self.audit_now(rec).await;
                Err(LoginError::Wrong)
            }
        }
    }
}

/// Why a single sign-on login failed. The text is shown as "Single sign-on failed: …" and
/// audited; it never holds a code, token or secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OidcError {
    #[error("single sign-on is not configured (OIDC_ISSUER)")]
    Off,
    #[error("too many failed logins from this address: try again in {0} s")]
    RateLimited(u64),
    #[error("{0}")]
    Refused(String),
    #[error("logins cannot be recorded now (the data root cannot be written); try again later")]
    Unavailable,
}

impl OidcError {
    pub fn status(&self) -> StatusCode {
        match self {
            OidcError::Off => StatusCode::NOT_FOUND,
            OidcError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            OidcError::Refused(_) => StatusCode::UNAUTHORIZED,
            OidcError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn retry_after(&self) -> Option<u64> {
        match self {
            OidcError::RateLimited(s) => Some(*s),
            OidcError::Unavailable => Some(30),
            _ => None,
        }
    }
}

/// What the provider's redirect back carries.
#[derive(Debug, Default, serde::Deserialize)]
pub struct OidcCallback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl Auth {
    fn oidc_limited(&self, peer: Option<IpAddr>) -> Result<(), OidcError> {
        if let Some(wait) = self.limiter.lock().unwrap().check(peer, None, Instant::now()) {
            inc(&self.counters.oidc_rate_limited);
            return Err(OidcError::RateLimited(secs(wait)));
        }
        Ok(())
    }

    /// The "Log in with single sign-on" click: (the provider's URL to redirect to, the
    /// pending-login cookie value). `Err(Refused)` says why the provider cannot be used now.
    pub async fn oidc_begin(&self, peer: Option<IpAddr>) -> Result<(String, String), OidcError> {
        let oidc = self.oidc.as_ref().ok_or(OidcError::Off)?;
        self.oidc_limited(peer)?;
        oidc.begin().await.map_err(OidcError::Refused)
    }

    /// The provider's redirect back: checks it (crate::oidc), starts a persisted session for the
    /// user it names and returns (its id, the user). Every outcome is audited (channel `oidc`), counted, and
    /// a failure counts against the address like a wrong password.
    pub async fn oidc_callback(self: &Arc<Self>, peer: Option<IpAddr>, q: &OidcCallback, pending_cookie: Option<&str>) -> Result<(String, String), OidcError> {
        let oidc = self.oidc.as_ref().ok_or(OidcError::Off)?;
        self.oidc_limited(peer)?;
        let src = source(peer);
        let checked = match (q.error.as_deref(), q.state.as_deref(), q.code.as_deref()) {
            (Some(e), state, _) => {
                // The state is used up all the same.
                if let Some(st) = state {
                    let _ = oidc.finish(st, "", None).await;
                }
                let desc = q.error_description.as_deref().map(|d| format!(" ({})", crate::oidc::clean(d, 200))).unwrap_or_default();
                Err(format!("the provider answered {}{desc}", crate::oidc::clean(e, 60)))
            }
            (None, Some(state), Some(code)) => oidc.finish(state, code, pending_cookie).await,
            _ => Err("the provider's answer has no state or no code".into()),
        };
        let id = match checked {
            Ok(id) => id,
            Err(why) => {
                inc(&self.counters.oidc_refused);
                let started = self.limiter.lock().unwrap().fail(peer, None, Instant::now());
                tracing::warn!(peer = ?peer, reason = %why, "single sign-on login refused");
                let detail = match started {
                    Some(b) => format!("{why}; this address now waits {} s", secs(b)),
                    None => why.clone(),
                };
                let rec = record(&Actor::unidentified("?", Channel::Oidc, &src, ""), "login", "", Outcome::Refused).detail(detail);
                self.audit_now(rec).await;
                return Err(OidcError::Refused(why));
            }
        };
        // A local user of that name: their role and groups apply (looked up on every request).
        let role = self.users().users.get(&id.user).map(|u| u.role).unwrap_or(id.role);
        let now = chrono::Utc::now();
        let rec = StoredSession {
            user: id.user.clone(),
            bootstrap: false,
            created_at: now,
            expires_at: now,
            role: Some(id.role),
            groups: id.groups.clone(),
            via: Some("oidc".into()),
        };
        let session = match self.store_session(rec) {
            Ok((sid, _)) => sid,
            Err(e) => {
                tracing::error!(error = %e, "cannot persist a session");
                return Err(OidcError::Unavailable);
            }
        };
        self.limiter.lock().unwrap().success(peer, &id.user, Instant::now());
        inc(&self.counters.oidc_ok);
        tracing::info!(user = %id.user, role = %role, "logged in with single sign-on");
        let who = Actor::user(&id.user, role, id.groups.clone(), Channel::Oidc, &src, &format!("ui:{}", id.user));
        let rec =
            record(&who, "login", &id.user, Outcome::Ok).detail(format!("single sign-on through {}; groups [{}]", oidc.settings.issuer, id.groups.join(", ")));
        self.audit_now(rec).await;
        Ok((session, id.user))
    }
}

/// Refuses requests a browser marks as coming from another site: `Sec-Fetch-Site` other than
/// `same-origin`/`none`, or an `Origin` whose host is not this request's host.
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(Refusal::CrossSite);
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| Refusal::CrossSite)?;
        let host = headers.get("x-forwarded-host").or_else(|| headers.get(header::HOST)).and_then(|v| v.to_str().ok()).ok_or(Refusal::CrossSite)?;
        let origin_host = origin.split_once("://").map(|(_, h)| h).ok_or(Refusal::CrossSite)?;
        if !origin_host.eq_ignore_ascii_case(host) {
            return Err(Refusal::CrossSite);
        }
    }
    Ok(())
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then(|| v.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxy_networks() {
        let nets = parse_proxies("127.0.0.1, 10.0.0.0/8,::1").unwrap();
        let cases: &[(&str, bool)] =
            &[("127.0.0.1", true), ("127.0.0.2", false), ("10.1.2.3", true), ("11.0.0.1", false), ("::1", true), ("::ffff:10.9.9.9", true)];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(nets.iter().any(|n| n.contains(ip)), *want, "{ip}");
        }
        assert!(parse_proxies("10.0.0.0/33").is_err());
        assert!(parse_proxies("proxy.local").is_err());
        assert!(parse_proxies("").unwrap().is_empty());
    }

    #[test]
    fn same_origin_table() {
        let cases: &[(&[(&str, &str)], bool)] = &[
            (&[("host", "ui.lan:18180")], true),
            (&[("host", "ui.lan:18180"), ("origin", "http://ui.lan:18180")], true),
            (&[("host", "ui.lan:18180"), ("origin", "https://evil.example")], false),
            (&[("host", "ui.lan:18180"), ("origin", "null")], false),
            (&[("host", "ui.lan:18180"), ("sec-fetch-site", "cross-site")], false),
            (&[("host", "ui.lan:18180"), ("sec-fetch-site", "same-site")], false),
            (&[("host", "ui.lan:18180"), ("sec-fetch-site", "same-origin")], true),
            (&[("host", "127.0.0.1:9"), ("x-forwarded-host", "ui.example"), ("origin", "https://ui.example")], true),
        ];
        for (hs, ok) in cases {
            let mut h = HeaderMap::new();
            for (k, v) in *hs {
                h.insert(*k, v.parse().unwrap());
            }
            assert_eq!(check_same_origin(&h).is_ok(), *ok, "{hs:?}");
        }
    }

    #[test]
    fn limiter_backs_off_spares_known_addresses_and_forgets() {
        let t0 = Instant::now();
        let mut l = Limiter::default();
        let (a, b, home): (IpAddr, IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "203.0.113.1".parse().unwrap());
        l.success(Some(home), "ada", t0);
        for _ in 0..ADDR_FREE_FAILURES - 1 {
            assert_eq!(l.fail(Some(a), Some("ada"), t0), None);
        }
        assert_eq!(l.fail(Some(a), Some("ada"), t0), Some(Duration::from_secs(2)));
        assert_eq!(l.check(Some(a), Some("ada"), t0), Some(Duration::from_secs(2)));
        assert_eq!(l.check(Some(b), Some("bob"), t0), None, "another address and user are not touched");
        // After the wait, the next failure doubles it.
        let t1 = t0 + Duration::from_secs(2);
        assert_eq!(l.check(Some(a), Some("ada"), t1), None);
        assert_eq!(l.fail(Some(a), Some("ada"), t1), Some(Duration::from_secs(4)));
        // Per user: many addresses guessing ada block new addresses, not her known one.
        for i in 0..USER_FREE_FAILURES {
            l.fail(Some(IpAddr::from([198, 51, 100, i as u8])), Some("ada"), t1);
        }
        assert!(l.check(Some(b), Some("ada"), t1).is_some());
        assert_eq!(l.check(Some(home), Some("ada"), t1), None);
        // IPv6 counts by /64.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        for _ in 0..ADDR_FREE_FAILURES {
            l.fail(Some(v6a), None, t1);
        }
        assert!(l.check(Some(v6b), None, t1).is_some());
        // Capped, and forgotten after a quiet while.
        for _ in 0..40 {
            l.fail(Some(b), None, t1);
        }
        assert_eq!(l.check(Some(b), None, t1), Some(MAX_BACKOFF));
        let later = t1 + MAX_BACKOFF + FORGET_AFTER;
        assert_eq!(l.check(Some(b), None, later), None);
        assert_eq!(l.fail(Some(b), None, later), None, "old failures are forgotten");
    }

    #[test]
    fn cookies_and_users() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; hcp_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert!(valid_user("alice@example.org"));
        assert!(!valid_user("alice bob"));
        assert!(!valid_user(""));
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
    }
}
