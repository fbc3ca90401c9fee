//! E-mail over SMTP with lettre: STARTTLS (default), implicit TLS, or plain text to a relay on
//! this machine only. One mail per message, plain text, `Message-ID: <id@homelab>` and
//! `X-Homelab-Id: <id>` from the idempotency id, so a resend after a crash is recognisably the
//! same mail.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use homelab_core::notify::{Message, Notice, NoticeKind};
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue, To};
use lettre::message::{Mailbox, Mailboxes};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// How the connection is protected (`SMTP_TLS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `starttls` (default, port 587): plain connect, then STARTTLS, required.
    StartTls,
    /// `tls` (port 465): TLS from the first byte.
    Tls,
    /// `none` (port 25): plain text, only to 127.0.0.1, `localhost` or `::1`.
    None,
}

/// The e-mail channel's configuration. The password never leaves it (Debug hides it).
#[derive(Clone)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    /// `SMTP_USER` and `SMTP_PASSWORD` (or `state/secrets/smtp_password`), both or neither.
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// `SMTP_CA_FILE`: its path and its PEM certificates, trusted besides the usual roots.
    pub ca: Option<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("user", &self.credentials.as_ref().map(|(u, _)| u))
            .field("password", &self.credentials.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from.to_string())
            .field("to", &self.to.iter().map(ToString::to_string).collect::<Vec<_>>())
            .field("ca_file", &self.ca.as_ref().map(|(p, _)| p))
            .finish()
    }
}

impl Email {
    /// `None` when `SMTP_HOST` is not set; an error naming the variable when the rest is wrong.
    pub(crate) fn from_lookup(var: &dyn Fn(&str) -> Option<String>, file: &dyn Fn(&str) -> Option<String>) -> Option<anyhow::Result<Email>> {
        let host = var("SMTP_HOST")?;
        Some((|| {
            let tls = match var("SMTP_TLS").as_deref() {
                None | Some("starttls") => SmtpTls::StartTls,
                Some("tls") => SmtpTls::Tls,
                Some("none") => SmtpTls::None,
                Some(other) => anyhow::bail!("SMTP_TLS: {other:?} is not one of starttls, tls, none"),
            };
            if tls == SmtpTls::None && !matches!(host.as_str(), "127.0.0.1" | "localhost" | "::1" | "[::1]") {
                anyhow::bail!(
                    "SMTP_TLS: none is only allowed to a relay on this machine (127.0.0.1, localhost, ::1), not {host:?}: no plain-text mail over a network"
                );
            }
            let default_port = match tls {
                SmtpTls::StartTls => 587,
                SmtpTls::Tls => 465,
                SmtpTls::None => 25,
            };
            let port = match var("SMTP_PORT") {
                None => default_port,
                Some(p) => p.parse().ok().filter(|p| *p != 0).with_context(|| format!("SMTP_PORT: {p:?} is not a port number (1-65535)"))?,
            };
            let password = var("SMTP_PASSWORD").or_else(|| file("smtp_password"));
            let credentials = match (var("SMTP_USER"), password) {
                (Some(user), Some(password)) => Some((user, password)),
                (None, None) => None,
                (Some(_), None) => anyhow::bail!("SMTP_PASSWORD: is not set (nor state/secrets/smtp_password), but SMTP_USER is"),
                (None, Some(_)) => anyhow::bail!("SMTP_USER: is not set, but a password is (SMTP_PASSWORD or state/secrets/smtp_password)"),
            };
            let from_text = var("SMTP_FROM").context("SMTP_FROM: is not set, but SMTP_HOST is: the sender address is required")?;
            let from = from_text.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("SMTP_FROM: {from_text:?} is not an e-mail address ({e})"))?;
            let to_text = var("SMTP_TO").context("SMTP_TO: is not set, but SMTP_HOST is: at least one recipient is required")?;
            let to = to_text
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(|a| a.parse::<Mailbox>().map_err(|e| anyhow::anyhow!("SMTP_TO: {a:?} is not an e-mail address ({e})")))
                .collect::<anyhow::Result<Vec<_>>>()?;
            if to.is_empty() {
                anyhow::bail!("SMTP_TO: names no address");
            }
            let ca = match var("SMTP_CA_FILE") {
                None => None,
                Some(path) => {
                    let pem = std::fs::read(&path).with_context(|| format!("SMTP_CA_FILE: cannot read {path:?}"))?;
                    // lettre takes a file without certificates as an empty list; the
                    // certificates themselves are parsed once, by tls_parameters below.
                    if !pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") {
                        anyhow::bail!("SMTP_CA_FILE: {path:?} holds no PEM certificate");
                    }
                    Some((path, pem))
                }
            };
            let email = Email { host, port, tls, credentials, from, to, ca };
            if let Some((path, _)) = &email.ca {
                // Parses the certificates now: a broken file is a start-up error, not a silent channel.
                email.tls_parameters().map_err(|e| anyhow::anyhow!("SMTP_CA_FILE: {path:?}: {e:#}"))?;
            }
            Ok(email)
        })())
    }

    /// The transport: one connection per mail (a few mails a day; nothing to keep open).
    /// `timeout` bounds the connect, three times it the whole delivery (lettre bounds only the
    /// connect: a server that stops answering would otherwise hold every channel up).
    pub fn mailer(&self, timeout: Duration) -> anyhow::Result<Mailer> {
        let tls = match self.tls {
            SmtpTls::StartTls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters()?),
            SmtpTls::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.trim_matches(['[', ']'])).port(self.port).tls(tls).timeout(Some(timeout));
        if let Some((user, password)) = &self.credentials {
            b = b.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Mailer { transport: b.build(), deadline: timeout * 3 })
    }

    /// The usual roots (webpki-roots) and those of `SMTP_CA_FILE`; the name checked is `host`.
    fn tls_parameters(&self) -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(self.host.trim_matches(['[', ']']).to_owned());
        if let Some((path, pem)) = &self.ca {
            b = b.add_root_certificate(Certificate::from_pem(pem).with_context(|| format!("SMTP_CA_FILE: {path:?}"))?);
        }
        b.build_rustls().context("setting up TLS for SMTP")
    }
}

/// An SMTP transport and the time one delivery may take.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    deadline: Duration,
}

/// `X-Homelab-Id: <id>`, as on the webhook and ntfy.
#[derive(Clone)]
struct HomelabId(String);

impl Header for HomelabId {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str(crate::ID_HEADER)
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(HomelabId(s.to_owned()))
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// The subject, short enough for a phone's lock screen: `[homelab] FIRING n1/web:
/// unhealthy_service (containers_not_running)`, `[homelab] RESOLVED …`, `[homelab] FLAPPING …`,
/// or `[homelab] digest: 3 started, 0 flapping, 2 resolved`.
pub fn subject(m: &Message) -> String {
    match m.notices.as_slice() {
        [n] if !m.digest => format!("[homelab] {}", headline(n)),
        // The digest's title is ASCII already: "homelab digest: …".
        _ => format!("[homelab] {}", m.title().trim_start_matches("homelab ")),
    }
}

/// `FIRING n1/web: unhealthy_service (containers_not_running)` (ASCII, no emoji).
fn headline(n: &Notice) -> String {
    let word = match n.kind {
        NoticeKind::Started => "FIRING",
        NoticeKind::Flapping => "FLAPPING",
        NoticeKind::Resolved => "RESOLVED",
    };
    format!("{word} {}: {} ({})", n.incident, n.drift, n.trigger)
}

/// The body: per notice its headline, the sentence of the drift row, and every field the
/// webhook JSON has; the id last, as on the other channels.
pub fn body(m: &Message) -> String {
    let mut out = String::new();
    for n in &m.notices {
        out.push_str(&headline(n));
        out.push('\n');
        out.push_str(&n.reason);
        out.push_str("\n\n");
        let fields = [
            ("kind", Some(n.kind.as_str().to_owned())),
            ("incident", Some(n.incident.clone())),
            ("node", Some(n.node.clone())),
            ("service", n.service.clone()),
            ("drift", Some(n.drift.clone())),
            ("trigger", Some(n.trigger.clone())),
            ("decision", Some(n.decision.clone())),
            ("action", n.action_id.clone()),
            ("since", Some(n.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
            ("at", Some(n.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                out.push_str(&format!("{k}: {v}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("id: {}\n", m.id));
    out
}

/// The mail for `m`. Fails only for an id that cannot be a Message-ID (an edited outbox file).
pub fn mail(e: &Email, m: &Message) -> Result<lettre::Message, String> {
    if m.id.is_empty() || !m.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(format!("id {:?} cannot be a Message-ID", m.id));
    }
    lettre::Message::builder()
        .from(e.from.clone())
        .header(To::from(e.to.iter().cloned().collect::<Mailboxes>()))
        .subject(subject(m))
        // The same Date on a resend, like the Message-ID.
        .date(SystemTime::from(m.created_at))
        .message_id(Some(format!("<{}@homelab>", m.id)))
        .header(HomelabId(m.id.clone()))
        .header(ContentType::TEXT_PLAIN)
        .body(body(m))
        .map_err(|e| e.to_string())
}

/// Sends `m`. A permanent refusal of the mail itself (a 5xx to the sender, a recipient or the
/// content) is [`crate::SendError::Refused`]; everything else is retried: 4xx, connection and
/// TLS trouble, and a refused login (530, 534, 535, 538: the channel's configuration, not this
/// message).
pub async fn send(mailer: &Mailer, e: &Email, m: &Message) -> Result<(), crate::SendError> {
    let mail = mail(e, m).map_err(crate::SendError::Refused)?;
    match tokio::time::timeout(mailer.deadline, mailer.transport.send(mail)).await {
        Err(_) => Err(crate::SendError::Retry(format!("no answer within {:?}", mailer.deadline))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => {
            let auth = err.status().is_some_and(|c| matches!(c.to_string().as_str(), "530" | "534" | "535" | "538"));
            if err.is_permanent() && !auth { Err(crate::SendError::Refused(err.to_string())) } else { Err(crate::SendError::Retry(err.to_string())) }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{Channel, NotifyConfig};

    fn cfg(vars: &[(&str, &str)], files: &[(&str, &str)]) -> Option<Result<NotifyConfig, String>> {
        let v: BTreeMap<String, String> = vars.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let f: BTreeMap<String, String> = files.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        NotifyConfig::from_lookup(|k| v.get(k).cloned(), |k| f.get(k).cloned()).map(|r| r.map_err(|e| format!("{e:#}")))
    }

    fn email(vars: &[(&str, &str)], files: &[(&str, &str)]) -> Email {
        match cfg(vars, files).expect("on").expect("valid").channels.as_slice() {
            [Channel::Email(e)] => (**e).clone(),
            other => panic!("{other:?}"),
        }
    }

    const BASE: [(&str, &str); 3] = [("SMTP_HOST", "mail.example.org"), ("SMTP_FROM", "homelab@example.org"), ("SMTP_TO", "ops@example.org")];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = BASE.iter().copied().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).collect();
        v.extend(extra.iter().copied().filter(|(_, val)| !val.is_empty()));
        v
    }

    #[test]
    fn configuration_table() {
        assert!(cfg(&[("SMTP_FROM", "a@b.c")], &[]).is_none(), "no SMTP_HOST, no channel");
        // Defaults: STARTTLS on 587, no login; implicit TLS on 465; plain text on 25.
        let e = email(&BASE, &[]);
        assert_eq!((e.tls, e.port, e.credentials.is_none(), e.to.len()), (SmtpTls::StartTls, 587, true, 1));
        assert_eq!((email(&with(&[("SMTP_TLS", "tls")]), &[]).tls, email(&with(&[("SMTP_TLS", "tls")]), &[]).port), (SmtpTls::Tls, 465));
        let local = email(&with(&[("SMTP_HOST", "localhost"), ("SMTP_TLS", "none")]), &[]);
        assert_eq!((local.tls, local.port), (SmtpTls::None, 25));
        for host in ["127.0.0.1", "::1"] {
            let v: Vec<_> = BASE.iter().copied().filter(|(k, _)| *k != "SMTP_HOST").chain([("SMTP_HOST", host), ("SMTP_TLS", "none")]).collect();
            assert_eq!(email(&v, &[]).tls, SmtpTls::None);
        }
        assert_eq!(email(&with(&[("SMTP_PORT", "2525")]), &[]).port, 2525);
        let two = email(&with(&[("SMTP_TO", "a@example.org, Bea <b@example.org>,")]), &[]);
        assert_eq!(two.to.iter().map(|m| m.email.to_string()).collect::<Vec<_>>(), ["a@example.org", "b@example.org"]);
        // The password from its secrets file (trimmed), or the variable.
        let e = email(&with(&[("SMTP_USER", "u")]), &[("smtp_password", "s3cret-pw\n")]);
        assert_eq!(e.credentials, Some(("u".to_owned(), "s3cret-pw".to_owned())));
        assert!(!format!("{e:?}").contains("s3cret-pw") && format!("{e:?}").contains("<redacted>"), "{e:?}");
        let all = cfg(&with(&[("SMTP_USER", "u"), ("SMTP_PASSWORD", "s3cret-pw")]), &[]).unwrap().unwrap();
        assert!(!format!("{all:?}").contains("s3cret-pw"), "{all:?}");

        // Each half-set or wrong value: an error that starts with the variable to fix.
        let ca_dir = tempfile::tempdir().unwrap();
        let not_pem = ca_dir.path().join("not.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let not_x509 = ca_dir.path().join("not-x509.pem");
        std::fs::write(&not_x509, "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n").unwrap();
        let not_x509: &'static str = Box::leak(not_x509.to_str().unwrap().to_owned().into_boxed_str());
        let not_pem = not_pem.to_str().unwrap().to_owned();
        let not_pem: &'static str = Box::leak(not_pem.into_boxed_str());
        let table: &[(&[(&'static str, &'static str)], &str)] = &[
            (&[("SMTP_FROM", "")], "SMTP_FROM: is not set"),
            (&[("SMTP_FROM", "not an address")], "SMTP_FROM: \"not an address\" is not an e-mail address"),
            (&[("SMTP_TO", "")], "SMTP_TO: is not set"),
            (&[("SMTP_TO", " , ")], "SMTP_TO: names no address"),
            (&[("SMTP_TO", "ops@example.org, nobody")], "SMTP_TO: \"nobody\" is not an e-mail address"),
            (&[("SMTP_TLS", "none")], "SMTP_TLS: none is only allowed to a relay on this machine"),
            (&[("SMTP_TLS", "ssl")], "SMTP_TLS: \"ssl\" is not one of starttls, tls, none"),
            (&[("SMTP_PORT", "0")], "SMTP_PORT: \"0\" is not a port number"),
            (&[("SMTP_PORT", "70000")], "SMTP_PORT: \"70000\" is not a port number"),
            (&[("SMTP_PORT", "smtp")], "SMTP_PORT: \"smtp\" is not a port number"),
            (&[("SMTP_USER", "u")], "SMTP_PASSWORD: is not set"),
            (&[("SMTP_PASSWORD", "s3cret-pw")], "SMTP_USER: is not set"),
            (&[("SMTP_CA_FILE", "/nonexistent/ca.pem")], "SMTP_CA_FILE: cannot read \"/nonexistent/ca.pem\""),
            (&[("SMTP_CA_FILE", not_pem)], "SMTP_CA_FILE: "),
            (&[("SMTP_CA_FILE", not_x509)], "SMTP_CA_FILE: "),
        ];
        for (extra, want) in table {
            let e = cfg(&with(extra), &[]).expect("on").expect_err(want);
            assert!(e.starts_with(want), "{extra:?}: {e}");
            assert!(!e.contains("s3cret-pw"), "{e}");
        }
    }

    #[test]
    fn subjects_are_short_and_ascii() {
        use homelab_core::notify::Notice;
        let t = chrono::Utc::now();
        let n = |kind, service: &str| Notice {
            kind,
            incident: format!("web-1/{service}"),
            node: "web-1".into(),
            service: Some(service.into()),
            drift: "unhealthy_service".into(),
            trigger: "container_died".into(),
            decision: "action_created".into(),
            reason: "r".into(),
            action_id: None,
            since: t,
            at: t,
        };
        let one = |kind| Message { id: "e-00000001".into(), created_at: t, digest: false, notices: vec![n(kind, "nginx")] };
        assert_eq!(subject(&one(NoticeKind::Started)), "[homelab] FIRING web-1/nginx: unhealthy_service (container_died)");
        assert_eq!(subject(&one(NoticeKind::Resolved)), "[homelab] RESOLVED web-1/nginx: unhealthy_service (container_died)");
        assert_eq!(subject(&one(NoticeKind::Flapping)), "[homelab] FLAPPING web-1/nginx: unhealthy_service (container_died)");
        let digest = Message { id: "e-00000002".into(), created_at: t, digest: true, notices: vec![n(NoticeKind::Started, "a"), n(NoticeKind::Resolved, "b")] };
        assert_eq!(subject(&digest), "[homelab] digest: 1 started, 0 flapping, 1 resolved");
        let b = body(&digest);
        assert!(b.contains("FIRING web-1/a") && b.contains("RESOLVED web-1/b") && b.ends_with("id: e-00000002\n"), "{b}");
        // An id that cannot be a Message-ID (an edited outbox file) is refused, not sent.
        let e = email(&BASE, &[]);
        assert!(mail(&e, &Message { id: "x>y".into(), ..one(NoticeKind::Started) }).is_err());
        let raw = String::from_utf8(mail(&e, &one(NoticeKind::Started)).unwrap().formatted()).unwrap();
        assert!(raw.contains("Message-ID: <e-00000001@homelab>\r\n") && raw.contains("X-Homelab-Id: e-00000001\r\n"), "{raw}");
    }
}
