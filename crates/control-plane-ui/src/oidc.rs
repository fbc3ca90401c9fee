//! OpenID Connect login (authorization code with PKCE S256, state and nonce): discovery of the
//! provider, the pending logins between the redirect to the provider and its callback, the ID
//! token checks (signature through the provider's JWKS, `iss`, `aud`, `exp`/`iat` with
//! [`CLOCK_SKEW`], nonce) and the mapping of claims to a user, a role and node groups.
//!
//! Sessions, rate limits, counters and the audit log are `Auth` (in `auth`)'s; this module
//! only talks to the provider. A provider that is down never stops the UI: discovery is retried
//! at the next login click, and the login page says why single sign-on is unavailable.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use homelab_store::DataRoot;
use homelab_store::users::Role;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::Value;

use crate::access::{AccessConfig, ct_eq, list, random_token, valid_user};

/// How far the provider's clock may be off ours for `exp` and `iat`.
pub const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How long a pending login (state, nonce, PKCE verifier) waits for the provider's callback.
pub const PENDING_TTL: Duration = Duration::from_secs(600);
/// At most this many pending logins; more are refused until some expire.
const MAX_PENDING: usize = 10_000;
/// Discovered metadata (endpoints, keys) is fetched again at the first login after this long.
const REDISCOVER_AFTER: Duration = Duration::from_secs(3600);
/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The cookie that binds a pending login to the browser that started it.
pub const PENDING_COOKIE: &str = "hcp_oidc";

type Client = CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// The settings, checked at start-up.
#[derive(Clone)]
pub struct Settings {
    pub issuer: String,
    pub client_id: String,
    client_secret: Option<String>,
    pub redirect_url: String,
    pub scopes: Vec<String>,
    pub role_claim: String,
    pub groups_claim: String,
    pub user_claim: String,
    pub default_role: Role,
    pub admin_groups: Vec<String>,
    pub operator_groups: Vec<String>,
}

/// Never prints the client secret.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "<redacted>"))
            .field("redirect_url", &self.redirect_url)
            .field("scopes", &self.scopes)
            .field("role_claim", &self.role_claim)
            .field("groups_claim", &self.groups_claim)
            .field("user_claim", &self.user_claim)
            .field("default_role", &self.default_role)
            .finish_non_exhaustive()
    }
}

fn http_url(var: &str, s: &str) -> anyhow::Result<String> {
    let s = s.trim();
    let ok = (s.starts_with("https://") || s.starts_with("http://")) && s.len() > "http://".len() && !s.contains(char::is_whitespace);
    if !ok {
        anyhow::bail!("{var} {s:?} must be an http:// or https:// URL");
    }
    Ok(s.to_owned())
}

impl Settings {
    /// `None` when `OIDC_ISSUER` is unset; an error naming the variable when the rest is half set.
    pub fn from_access(cfg: &AccessConfig, root: &DataRoot) -> anyhow::Result<Option<Settings>> {
        let set = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        let Some(issuer) = set(&cfg.oidc_issuer) else {
            let secret = cfg.oidc_client_secret.as_ref().map(|s| s.0.clone());
            for (var, v) in [("OIDC_CLIENT_ID", &cfg.oidc_client_id), ("OIDC_REDIRECT_URL", &cfg.oidc_redirect_url), ("OIDC_CLIENT_SECRET", &secret)] {
                if set(v).is_some() {
                    anyhow::bail!("{var} is set but OIDC_ISSUER is not: set OIDC_ISSUER to the provider's issuer URL to enable single sign-on");
                }
            }
            return Ok(None);
        };
        let issuer = http_url("OIDC_ISSUER", &issuer)?;
        let client_id = set(&cfg.oidc_client_id)
            .ok_or_else(|| anyhow::anyhow!("OIDC_CLIENT_ID is not set, but OIDC_ISSUER is: set the client id registered at the provider"))?;
        let redirect_url = set(&cfg.oidc_redirect_url).ok_or_else(|| {
            anyhow::anyhow!(
                "OIDC_REDIRECT_URL is not set, but OIDC_ISSUER is: set it to this UI's external URL + /auth/oidc/callback (as registered at the provider)"
            )
        })?;
        let redirect_url = http_url("OIDC_REDIRECT_URL", &redirect_url)?;
        if !redirect_url.ends_with("/auth/oidc/callback") {
            anyhow::bail!("OIDC_REDIRECT_URL {redirect_url:?} must end with /auth/oidc/callback (the UI's callback path, after BASE_PATH)");
        }
        let client_secret = match cfg.oidc_client_secret.as_ref().map(|s| s.0.trim().to_owned()).filter(|s| !s.is_empty()) {
            Some(s) => Some(s),
            None => match root.read_oidc_client_secret() {
                Ok(s) => s,
                Err(e) => anyhow::bail!("OIDC_CLIENT_SECRET is not set and {} cannot be read: {e}", homelab_store::Doc::OidcClientSecret),
            },
        };
        let scopes: Vec<String> = cfg.oidc_scopes.split([' ', ',']).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if !scopes.iter().any(|s| s == "openid") {
            anyhow::bail!("OIDC_SCOPES {:?} must include openid", cfg.oidc_scopes);
        }
        let claim = |var: &str, v: &str| -> anyhow::Result<String> {
            let v = v.trim();
            if v.is_empty() || v.len() > 100 {
                anyhow::bail!("{var} must name a claim");
            }
            Ok(v.to_owned())
        };
        let default_role = Role::parse(&cfg.oidc_default_role)
            .ok_or_else(|| anyhow::anyhow!("OIDC_DEFAULT_ROLE {:?}: use viewer, operator or admin", cfg.oidc_default_role))?;
        Ok(Some(Settings {
            issuer,
            client_id,
            client_secret,
            redirect_url,
            scopes,
            role_claim: claim("OIDC_ROLE_CLAIM", &cfg.oidc_role_claim)?,
            groups_claim: claim("OIDC_GROUPS_CLAIM", &cfg.oidc_groups_claim)?,
            user_claim: claim("OIDC_USER_CLAIM", &cfg.oidc_user_claim)?,
            default_role,
            admin_groups: list(&cfg.oidc_admin_groups),
            operator_groups: list(&cfg.oidc_operator_groups),
        }))
    }
}

/// A discovered provider.
struct Provider {
    client: Client,
    at: Instant,
}

/// What the browser's login waits with between the redirect and the callback.
struct Pending {
    /// SHA-256 of the pending-login cookie's value.
    cookie: String,
    nonce: Nonce,
    verifier: PkceCodeVerifier,
    created: Instant,
}

/// Who the provider says logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    /// From the role claim or the group mapping; the caller lets a local user's role win.
    pub role: Role,
    pub groups: Vec<String>,
}

/// The OpenID Connect side of the UI.
pub struct Oidc {
    pub settings: Settings,
    http: reqwest::Client,
    provider: tokio::sync::Mutex<Option<Provider>>,
    /// Why the last discovery failed (shown on the login page); `None` after a success.
    unavailable: Mutex<Option<String>>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl std::fmt::Debug for Oidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Oidc").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// An error and its causes on one line, cut to a readable length.
fn chain(e: &dyn std::error::Error) -> String {
    clean(&homelab_core::error_chain(e), 300)
}

/// One printable line of at most `max` characters.
pub fn clean(s: &str, max: usize) -> String {
    homelab_core::one_line(s, max).trim().to_owned()
}

impl Oidc {
    pub fn new(settings: Settings) -> anyhow::Result<Oidc> {
        // No redirects: the provider's answers are read as they come (openidconnect's advice, and
        // SSRF hygiene).
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(PROVIDER_TIMEOUT).build()?;
        IssuerUrl::new(settings.issuer.clone()).map_err(|e| anyhow::anyhow!("OIDC_ISSUER: {e}"))?;
        RedirectUrl::new(settings.redirect_url.clone()).map_err(|e| anyhow::anyhow!("OIDC_REDIRECT_URL: {e}"))?;
        Ok(Oidc { settings, http, provider: tokio::sync::Mutex::new(None), unavailable: Mutex::new(None), pending: Mutex::default() })
    }

    /// `Some(reason)` when the last discovery failed.
    pub fn unavailable(&self) -> Option<String> {
        self.unavailable.lock().unwrap().clone()
    }

    /// The discovered client: the cached one while young, else discovery now (at start-up in the
    /// background, and again at a login click after a failure).
    async fn client(&self) -> Result<Client, String> {
        let mut p = self.provider.lock().await;
        if let Some(p) = p.as_ref().filter(|p| p.at.elapsed() < REDISCOVER_AFTER) {
            return Ok(p.client.clone());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|e| e.to_string())?;
        match CoreProviderMetadata::discover_async(issuer, &self.http).await {
            Ok(meta) => {
                let redirect = RedirectUrl::new(self.settings.redirect_url.clone()).map_err(|e| e.to_string())?;
                let client = CoreClient::from_provider_metadata(
                    meta,
                    ClientId::new(self.settings.client_id.clone()),
                    self.settings.client_secret.clone().map(ClientSecret::new),
                )
                .set_redirect_uri(redirect);
                *p = Some(Provider { client: client.clone(), at: Instant::now() });
                *self.unavailable.lock().unwrap() = None;
                tracing::info!(issuer = %self.settings.issuer, "OpenID Connect provider discovered");
                Ok(client)
            }
            Err(e) => {
                let why = format!("the provider at {} cannot be reached or answered wrongly ({})", self.settings.issuer, chain(&e));
                tracing::warn!(reason = %why, "OpenID Connect discovery failed");
                *self.unavailable.lock().unwrap() = Some(why.clone());
                // A stale but once good client is better than none.
                match p.as_ref() {
                    Some(old) => Ok(old.client.clone()),
                    None => Err(why),
                }
            }
        }
    }

    /// Discovery at start-up, never blocking the UI.
    pub async fn discover(&self) {
        let _ = self.client().await;
    }

    /// A new pending login: returns (the provider's authorization URL, the pending-login cookie
    /// value). State, nonce and PKCE verifier stay here, keyed by the state.
    pub async fn begin(&self) -> Result<(String, String), String> {
        let client = self.client().await?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(AuthenticationFlow::<CoreResponseType>::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
            .set_pkce_challenge(challenge);
        for s in self.settings.scopes.iter().filter(|s| *s != "openid") {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.url();
        let cookie = random_token();
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap();
        pending.retain(|_, p| now.duration_since(p.created) < PENDING_TTL);
        if pending.len() >= MAX_PENDING {
            return Err("too many logins are in progress; try again in a few minutes".into());
        }
        pending.insert(state.secret().clone(), Pending { cookie: homelab_store::users::sha256_hex(&cookie), nonce, verifier, created: now });
        Ok((url.to_string(), cookie))
    }

    /// The provider's callback: the state is used up whatever happens next; the code is
    /// exchanged with the PKCE verifier, the ID token checked and its claims mapped.
    pub async fn finish(&self, state: &str, code: &str, cookie: Option<&str>) -> Result<Identity, String> {
        let pending = self.pending.lock().unwrap().remove(state);
        let Some(p) = pending else {
            return Err("this login is unknown or was already used (state); start again".into());
        };
        if p.created.elapsed() >= PENDING_TTL {
            return Err("this login took longer than 10 minutes; start again".into());
        }
        if !cookie.is_some_and(|c| ct_eq(&homelab_store::users::sha256_hex(c), &p.cookie)) {
            return Err("this login was started in another browser (the pending-login cookie does not match); start again".into());
        }
        let client = self.client().await?;
        let exchange = client.exchange_code(AuthorizationCode::new(code.to_owned())).map_err(|e| format!("the provider has no token endpoint: {e}"))?;
        let token = exchange.set_pkce_verifier(p.verifier).request_async(&self.http).await.map_err(|e| format!("the code exchange failed: {}", chain(&e)))?;
        let id_token = token.id_token().ok_or("the provider sent no ID token")?;
        let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
        let verifier = client
            .id_token_verifier()
            // exp may be up to CLOCK_SKEW in the past by our clock, iat up to CLOCK_SKEW ahead.
            .set_time_fn(move || chrono::Utc::now() - skew)
            .set_issue_time_verifier_fn(move |iat| if iat > chrono::Utc::now() + skew { Err(format!("issued in the future ({iat})")) } else { Ok(()) });
        id_token.claims(&verifier, &p.nonce).map_err(|e| format!("the ID token was refused: {}", chain(&e)))?;
        // Verified: the payload as signed, for claims of any name.
        let jwt = id_token.to_string();
        let payload = jwt.split('.').nth(1).ok_or("the ID token is not a signed JWT")?;
        let bytes =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).map_err(|_| "the ID token's payload is not base64url")?;
        let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).map_err(|_| "the ID token's payload is not a JSON object")?;
        self.identity(&claims)
    }

    /// Maps verified claims: the user from `OIDC_USER_CLAIM` (else `sub`), the role from
    /// `OIDC_ROLE_CLAIM` (else the group mapping, else `OIDC_DEFAULT_ROLE`), node groups from
    /// `OIDC_GROUPS_CLAIM`.
    pub fn identity(&self, claims: &serde_json::Map<String, Value>) -> Result<Identity, String> {
        let s = &self.settings;
        let text = |k: &str| claims.get(k).and_then(Value::as_str).map(str::trim).filter(|v| !v.is_empty());
        let (claim, user) = match text(&s.user_claim) {
            Some(u) => (s.user_claim.as_str(), u),
            None => ("sub", text("sub").ok_or("the ID token has no subject (sub)")?),
        };
        if !valid_user(user) {
            return Err(format!("the user name in claim {claim} ({:?}) is not usable: letters, digits, '.', '_', '-', '@', at most 64", clean(user, 80)));
        }
        let groups: Vec<String> = match claims.get(&s.groups_claim) {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).flat_map(list).collect(),
            Some(Value::String(v)) => list(v),
            _ => Vec::new(),
        };
        let role = match claims.get(&s.role_claim) {
            Some(Value::String(r)) if !r.trim().is_empty() => Role::parse(r)
                .ok_or_else(|| format!("the role claim {} is {:?}: the provider must send viewer, operator or admin", s.role_claim, clean(r, 40)))?,
            _ if groups.iter().any(|g| s.admin_groups.contains(g)) => Role::Admin,
            _ if groups.iter().any(|g| s.operator_groups.contains(g)) => Role::Operator,
            _ => s.default_role,
        };
        Ok(Identity { user: user.to_owned(), role, groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc(f: impl FnOnce(&mut AccessConfig)) -> anyhow::Result<Option<Settings>> {
        let tmp = tempfile::tempdir().unwrap();
        let root = DataRoot::open(tmp.path()).unwrap();
        let mut cfg = AccessConfig::default();
        f(&mut cfg);
        Settings::from_access(&cfg, &root)
    }

    fn full(c: &mut AccessConfig) {
        c.oidc_issuer = Some("https://id.example/".into());
        c.oidc_client_id = Some("hcp".into());
        c.oidc_redirect_url = Some("https://ui.example/auth/oidc/callback".into());
    }

    #[test]
    fn half_set_configuration_names_the_variable() {
        assert!(oidc(|_| {}).unwrap().is_none());
        let err = |f: fn(&mut AccessConfig)| oidc(f).unwrap_err().to_string();
        assert!(err(|c| c.oidc_client_id = Some("x".into())).starts_with("OIDC_CLIENT_ID is set but OIDC_ISSUER is not"));
        assert!(
            err(|c| {
                full(c);
                c.oidc_client_id = None;
            })
            .starts_with("OIDC_CLIENT_ID is not set")
        );
        assert!(
            err(|c| {
                full(c);
                c.oidc_redirect_url = None;
            })
            .starts_with("OIDC_REDIRECT_URL is not set")
        );
        assert!(
            err(|c| {
                full(c);
                c.oidc_issuer = Some("id.example".into());
            })
            .starts_with("OIDC_ISSUER")
        );
        assert!(
            err(|c| {
                full(c);
                c.oidc_scopes = "profile email".into();
            })
            .contains("must include openid")
        );
        assert!(
            err(|c| {
                full(c);
                c.oidc_default_role = "root".into();
            })
            .starts_with("OIDC_DEFAULT_ROLE")
        );
        let s = oidc(|c| {
            full(c);
            c.oidc_client_secret = Some(crate::access::Secret("sup3r".into()));
        })
        .unwrap()
        .unwrap();
        assert!(!format!("{s:?}").contains("sup3r"), "Debug hides the client secret");
    }

    #[test]
    fn claims_map_to_user_role_and_groups() {
        let s = oidc(|c| {
            full(c);
            c.oidc_admin_groups = "ops".into();
            c.oidc_operator_groups = "web".into();
        })
        .unwrap()
        .unwrap();
        let o = Oidc::new(s).unwrap();
        let map = |v: Value| v.as_object().unwrap().clone();
        let id =
            o.identity(&map(serde_json::json!({"sub": "x1", "preferred_username": "olga", "hcp_role": "operator", "groups": ["web", "bad name"]}))).unwrap();
        assert_eq!(id, Identity { user: "olga".into(), role: Role::Operator, groups: vec!["web".into()] });
        let id = o.identity(&map(serde_json::json!({"sub": "x1", "groups": "ops|web"}))).unwrap();
        assert_eq!((id.user.as_str(), id.role, id.groups.len()), ("x1", Role::Admin, 2), "sub when no user claim; admin group");
        let id = o.identity(&map(serde_json::json!({"sub": "x1", "groups": "web,db"}))).unwrap();
        assert_eq!(id.role, Role::Operator);
        assert_eq!(o.identity(&map(serde_json::json!({"sub": "x1"}))).unwrap().role, Role::Viewer);
        assert!(o.identity(&map(serde_json::json!({"sub": "x1", "hcp_role": "root"}))).unwrap_err().contains("viewer, operator or admin"));
        assert!(o.identity(&map(serde_json::json!({"preferred_username": "a b"}))).unwrap_err().contains("not usable"));
    }
}
