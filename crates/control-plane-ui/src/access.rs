//! What users, sessions, proxy roles, single sign-on and the audit log are configured with, and
//! the small credential helpers both [`crate::auth`] and [`crate::oidc`] use.

use std::time::Duration;

/// Sessions last this long after login unless `SESSION_TTL` says otherwise.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

fn parse_duration(s: &str) -> Result<Duration, String> {
    homelab_core::duration::parse_duration(s).map_err(|e| e.to_string())
}

/// Flags and environment of users, sessions, proxy roles and the audit log (flattened into the
/// UI's `Config`).
#[derive(Debug, Clone, clap::Args)]
pub struct AccessConfig {
    /// How long a browser session lasts after login (sessions survive a restart of the UI).
    #[arg(long, env = "SESSION_TTL", default_value = "12h", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// The header a trusted proxy puts the user's groups in (`|` or `,` separated).
    #[arg(long, env = "TRUSTED_GROUPS_HEADER", default_value = "X-authentik-groups")]
    pub trusted_groups_header: String,
    /// Role of a proxy user who is not a local user and in none of the groups below.
    #[arg(long, env = "PROXY_DEFAULT_ROLE", default_value = "admin")]
    pub proxy_default_role: String,
    /// Proxy groups whose members are admins (comma-separated).
    #[arg(long, env = "PROXY_ADMIN_GROUPS", default_value = "")]
    pub proxy_admin_groups: String,
    /// Proxy groups whose members are operators (comma-separated).
    #[arg(long, env = "PROXY_OPERATOR_GROUPS", default_value = "")]
    pub proxy_operator_groups: String,
    /// Days of `audit/YYYY-MM-DD.jsonl` kept.
    #[arg(long, env = "AUDIT_RETENTION_DAYS", default_value_t = homelab_store::audit::DEFAULT_RETENTION_DAYS)]
    pub audit_retention_days: u32,
    /// OpenID Connect issuer URL; setting it enables single sign-on (docs/users.md).
    #[arg(long, env = "OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,
    /// The client id registered at the provider.
    #[arg(long, env = "OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,
    /// The client secret (else `state/secrets/oidc_client_secret`; none for a public client).
    #[arg(long, env = "OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<Secret>,
    /// Where the provider sends the browser back: this UI's external URL + `/auth/oidc/callback`.
    #[arg(long, env = "OIDC_REDIRECT_URL")]
    pub oidc_redirect_url: Option<String>,
    /// Scopes asked for (space or comma separated; must include `openid`).
    #[arg(long, env = "OIDC_SCOPES", default_value = "openid profile email")]
    pub oidc_scopes: String,
    /// The claim holding the role (`viewer`, `operator`, `admin`).
    #[arg(long, env = "OIDC_ROLE_CLAIM", default_value = "hcp_role")]
    pub oidc_role_claim: String,
    /// The claim holding the node groups (array of strings, or `,`/`|` separated).
    #[arg(long, env = "OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// The claim holding the user name (`sub` when it is missing).
    #[arg(long, env = "OIDC_USER_CLAIM", default_value = "preferred_username")]
    pub oidc_user_claim: String,
    /// Role of a single sign-on user without a role claim and in none of the groups below.
    #[arg(long, env = "OIDC_DEFAULT_ROLE", default_value = "viewer")]
    pub oidc_default_role: String,
    /// Groups (from the groups claim) whose members are admins (comma-separated).
    #[arg(long, env = "OIDC_ADMIN_GROUPS", default_value = "")]
    pub oidc_admin_groups: String,
    /// Groups (from the groups claim) whose members are operators (comma-separated).
    #[arg(long, env = "OIDC_OPERATOR_GROUPS", default_value = "")]
    pub oidc_operator_groups: String,
}

/// A secret setting: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

impl Default for AccessConfig {
    fn default() -> AccessConfig {
        AccessConfig {
            session_ttl: SESSION_TTL,
            trusted_groups_header: "X-authentik-groups".into(),
            proxy_default_role: "admin".into(),
            proxy_admin_groups: String::new(),
            proxy_operator_groups: String::new(),
            audit_retention_days: homelab_store::audit::DEFAULT_RETENTION_DAYS,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_client_secret: None,
            oidc_redirect_url: None,
            oidc_scopes: "openid profile email".into(),
            oidc_role_claim: "hcp_role".into(),
            oidc_groups_claim: "groups".into(),
            oidc_user_claim: "preferred_username".into(),
            oidc_default_role: "viewer".into(),
            oidc_admin_groups: String::new(),
            oidc_operator_groups: String::new(),
        }
    }
}

/// Compares secrets without stopping at the first difference.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token (256 random bits), hex.
pub fn random_token() -> String {
    homelab_store::users::random_hex32()
}

/// A user name as shown in history (`ui:<user>`): letters, digits, `.`, `_`, `-`, `@`, at most 64.
pub fn valid_user(u: &str) -> bool {
    homelab_store::users::valid_name(u)
}

/// Group names from a `,` or `|` separated list (invalid names dropped).
pub fn list(s: &str) -> Vec<String> {
    s.split([',', '|']).map(str::trim).filter(|g| valid_user(g)).map(str::to_owned).collect()
}
