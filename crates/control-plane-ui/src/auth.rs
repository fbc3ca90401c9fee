//! Who is asking: the operator behind a mutation (bearer token, session cookie, or a trusted
//! reverse-proxy header), and the checks that keep a browser's ambient credentials from being
//! used by another site (CSRF token, Origin and Sec-Fetch-Site).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode, header};
use thiserror::Error;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "hcp_session";
/// Sessions last this long after login.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions; the oldest go first.
const MAX_SESSIONS: usize = 1000;

/// Why a request was refused. The message tells the caller what to do; it never echoes a secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("authentication required: send `Authorization: Bearer <UI_TOKEN>` or log in")]
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
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::NoCredentials | Refusal::WrongToken | Refusal::BadSession | Refusal::UntrustedProxy | Refusal::BadProxyUser => {
                StatusCode::UNAUTHORIZED
            }
            Refusal::Csrf | Refusal::CrossSite => StatusCode::FORBIDDEN,
        }
    }
}

/// An authenticated operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// What goes into `history[].by`: `api:token`, `ui:alice`.
    pub by: String,
    /// For browser credentials (cookie, proxy header): the CSRF token the request must carry.
    pub csrf: Option<String>,
}

impl Operator {
    pub fn user(&self) -> &str {
        self.by.split_once(':').map_or(self.by.as_str(), |(_, u)| u)
    }
}

#[derive(Debug, Clone)]
struct Session {
    user: String,
    csrf: String,
    expires: Instant,
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

/// Compares secrets without stopping at the first difference.
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh random token (two v4 UUIDs: 244 random bits), hex.
pub fn random_token() -> String {
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

/// A user name as shown in history (`ui:<user>`): letters, digits, `.`, `_`, `-`, `@`, at most 64.
pub fn valid_user(u: &str) -> bool {
    !u.is_empty() && u.len() <= 64 && u.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'))
}

/// The credentials the UI accepts and the sessions it has handed out.
pub struct Auth {
    pub ui_token: String,
    pub summary_token: Option<String>,
    pub trusted_proxies: Vec<Net>,
    pub user_header: header::HeaderName,
    sessions: Mutex<HashMap<String, Session>>,
    /// Per proxy user, the CSRF token their forms carry (proxy users have no session).
    proxy_csrf: Mutex<HashMap<String, String>>,
}

/// Never prints a secret.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("ui_token", &"<redacted>")
            .field("summary_token", &self.summary_token.as_ref().map(|_| "<redacted>"))
            .field("trusted_proxies", &self.trusted_proxies)
            .field("user_header", &self.user_header)
            .finish_non_exhaustive()
    }
}

impl Auth {
    pub fn new(ui_token: String, summary_token: Option<String>, trusted_proxies: Vec<Net>, user_header: header::HeaderName) -> Auth {
        Auth { ui_token, summary_token, trusted_proxies, user_header, sessions: Mutex::default(), proxy_csrf: Mutex::default() }
    }

    fn trusted(&self, peer: Option<IpAddr>) -> bool {
        peer.is_some_and(|ip| self.trusted_proxies.iter().any(|n| n.contains(ip)))
    }

    /// Starts a session for `user`; returns (session id, csrf token).
    pub fn login(&self, user: &str) -> (String, String) {
        let id = random_token();
        let csrf = random_token();
        let mut sessions = self.sessions.lock().unwrap();
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), Session { user: user.to_owned(), csrf: csrf.clone(), expires: now + SESSION_TTL });
        (id, csrf)
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().unwrap().remove(&id);
        }
    }

    fn session(&self, id: &str) -> Option<Session> {
        let sessions = self.sessions.lock().unwrap();
        sessions.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    fn proxy_csrf(&self, user: &str) -> String {
        self.proxy_csrf.lock().unwrap().entry(user.to_owned()).or_insert_with(random_token).clone()
    }

    /// Who is behind this request, if anyone. Does not check CSRF (see [`Auth::for_mutation`]).
    /// A credential that is present but wrong is a refusal, never a fallback to the next kind.
    pub fn identify(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Operator, Refusal> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let token = value.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).ok_or(Refusal::WrongToken)?;
            return if ct_eq(token, &self.ui_token) { Ok(Operator { by: "api:token".into(), csrf: None }) } else { Err(Refusal::WrongToken) };
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
            return Ok(Operator { by: format!("ui:{user}"), csrf: Some(self.proxy_csrf(user)) });
        }
        if let Some(id) = cookie(headers, SESSION_COOKIE) {
            let s = self.session(&id).ok_or(Refusal::BadSession)?;
            return Ok(Operator { by: format!("ui:{}", s.user), csrf: Some(s.csrf) });
        }
        Err(Refusal::NoCredentials)
    }

    /// The operator allowed to change something: identified, and for browser credentials the
    /// request is same-origin and carries the CSRF token (`form_csrf` from a form field, or the
    /// `X-CSRF-Token` header).
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
            return Ok(self.identify(headers, peer).ok());
        };
        if let Some(token) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
            && ct_eq(token.trim(), summary_token)
        {
            return Ok(None);
        }
        self.identify(headers, peer).map(Some)
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
        let host = headers
            .get("x-forwarded-host")
            .or_else(|| headers.get(header::HOST))
            .and_then(|v| v.to_str().ok())
            .ok_or(Refusal::CrossSite)?;
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
