//! E-mail against a real SMTP server: aiosmtpd (`tests/smtp_sink.py`, from PyPI) on 127.0.0.1,
//! started by each test, writing every mail it accepts to a folder. STARTTLS with a self-signed
//! certificate made by the openssl CLI and AUTH; transient 451s; a server that is down and comes
//! back; a permanent 550; a refused login; a server that never answers. The notifier is the real one ([`homelab_notify::run`])
//! configured through [`NotifyConfig::from_lookup`] like in production.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use homelab_core::drift::{DriftEntry, DriftFile, NextStep};
use homelab_notify::NotifyConfig;
use homelab_store::DataRoot;
use testkit::{KillOnDrop, free_port, wait_for, wait_until};
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "pw-Zq8s-not-in-logs";

/// Everything every test of this binary logged (one global subscriber for all of them).
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::new("homelab_notify=trace,homelab_store=trace,lettre=trace,warn");
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(false).with_writer(|| LogWriter).try_init();
    });
}

fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// The SMTP server, killed on drop.
struct Sink {
    _child: KillOnDrop,
    dir: tempfile::TempDir,
    port: u16,
}

/// A mail as the server got it: headers (unfolded) and the decoded text body (`\n` line ends).
#[derive(Debug)]
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
}

impl Sink {
    fn start(port: u16, args: &[&str]) -> Sink {
        let dir = tempfile::Builder::new().prefix("smtp-sink-").tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("sink.log")).unwrap();
        let child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/smtp_sink.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3");
        let mut sink = Sink { _child: KillOnDrop(child), dir, port };
        wait_until("the SMTP sink to listen", DEADLINE, || {
            if let Some(status) = sink._child.0.try_wait().unwrap() {
                panic!("smtp_sink.py exited ({status}); is aiosmtpd installed (scripts/test-deps.sh)?\n{}", sink.log());
            }
            sink.dir.path().join("ready").exists()
        });
        sink
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sink.log")).unwrap_or_default()
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(self.dir.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == ext)).collect();
        v.sort();
        v
    }

    /// The accepted mails, in the order they arrived.
    fn mails(&self) -> Vec<Mail> {
        self.files("eml")
            .into_iter()
            .map(|p| {
                let raw = std::fs::read_to_string(&p).unwrap();
                let head = raw.split("\r\n\r\n").next().unwrap();
                let mut headers: Vec<(String, String)> = Vec::new();
                for line in head.split("\r\n") {
                    match (line.starts_with([' ', '\t']), headers.last_mut()) {
                        (true, Some((_, v))) => v.push_str(line),
                        _ => {
                            let (k, v) = line.split_once(':').unwrap();
                            headers.push((k.to_owned(), v.trim().to_owned()));
                        }
                    }
                }
                Mail { headers, body: std::fs::read_to_string(p.with_extension("body")).unwrap().replace("\r\n", "\n") }
            })
            .collect()
    }

    /// The answers of refused transactions, in order.
    fn refused(&self) -> Vec<String> {
        self.files("refused").iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
    }
}

/// A self-signed certificate for 127.0.0.1 and localhost: `(cert.pem, key.pem)`. Not a CA
/// (`CA:FALSE`): rustls refuses a CA certificate as the server's own (`CaUsedAsEndEntity`).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (scripts/test-deps.sh installs it)");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

fn row() -> DriftEntry {
    common::web_unhealthy(NextStep::ActionCreated)
}

fn set_drift(root: &DataRoot, rows: Vec<DriftEntry>) {
    root.write_drift(&DriftFile { generated_at: chrono::Utc::now(), drifts: rows }).unwrap();
}

/// A notifier with only the e-mail channel, configured from these variables (plus fast ticks and
/// resolutions), running on its own runtime until dropped.
struct Notifier {
    rt: tokio::runtime::Runtime,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    root: DataRoot,
    _dir: tempfile::TempDir,
}

impl Notifier {
    fn start(vars: &[(&str, impl AsRef<str>)], secrets: &[(&str, &str)]) -> Notifier {
        capture_logs();
        let mut v: BTreeMap<String, String> = [("NOTIFY_TICK", "50ms"), ("NOTIFY_RESOLVE_AFTER", "300ms"), ("NOTIFY_TIMEOUT", "5s")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.extend(vars.iter().map(|(a, b)| (a.to_string(), b.as_ref().to_owned())));
        let f: BTreeMap<String, String> = secrets.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        let mut cfg = NotifyConfig::from_lookup(|k| v.get(k).cloned(), |k| f.get(k).cloned()).expect("e-mail is on").expect("a valid configuration");
        cfg.min_backoff = Duration::from_millis(50);
        cfg.max_backoff = Duration::from_millis(300);
        let dir = tempfile::tempdir().unwrap();
        let root = DataRoot::open(dir.path()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let stop = CancellationToken::new();
        let task = rt.spawn(homelab_notify::run(cfg, root.clone(), stop.clone()));
        Notifier { rt, stop, task: Some(task), root, _dir: dir }
    }

    fn outbox(&self) -> Vec<String> {
        self.root.list_outbox().unwrap()
    }

    fn counter(&self, name: &str) -> u64 {
        let hb: Option<serde_json::Value> = self.root.read_heartbeat("notify").unwrap();
        hb.and_then(|hb| hb["counters"][name].as_u64()).unwrap_or(0)
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let result = self.rt.block_on(task);
            if !std::thread::panicking() {
                result.unwrap().unwrap();
            }
        }
    }
}

fn plain(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("SMTP_HOST", "127.0.0.1".into()),
        ("SMTP_PORT", port.to_string()),
        ("SMTP_TLS", "none".into()),
        ("SMTP_FROM", "homelab@example.org".into()),
        ("SMTP_TO", "ops@example.org".into()),
    ]
}

#[test]
fn starttls_with_auth_delivers_start_and_resolution_as_two_mails() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let sink = Sink::start(free_port(), &["--starttls", cert.to_str().unwrap(), key.to_str().unwrap(), "--user", "homelab", "--password", PASSWORD]);
    let port = sink.port.to_string();
    let vars = [
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_USER", "homelab"),
        ("SMTP_FROM", "Homelab <homelab@example.org>"),
        ("SMTP_TO", "ops@example.org, Second Person <second@example.org>"),
        ("SMTP_CA_FILE", cert.to_str().unwrap()),
    ];
    // The password from its secrets file, as an operator would keep it.
    let n = Notifier::start(&vars, &[("smtp_password", &format!("{PASSWORD}\n"))]);
    set_drift(&n.root, vec![row()]);
    wait_until("the start mail", DEADLINE, || sink.mails().len() == 1);
    wait_until("an empty outbox", DEADLINE, || n.outbox().is_empty());
    set_drift(&n.root, vec![]);
    wait_until("the resolution mail", DEADLINE, || sink.mails().len() == 2);
    wait_until("an empty outbox", DEADLINE, || n.outbox().is_empty());

    let mails = sink.mails();
    let (start, resolved) = (&mails[0], &mails[1]);
    assert_eq!(start.header("Subject"), "[homelab] FIRING n1/web: unhealthy_service (containers_not_running)");
    assert_eq!(resolved.header("Subject"), "[homelab] RESOLVED n1/web: unhealthy_service (containers_not_running)");
    for m in &mails {
        // Over TLS, logged in, from and to the configured addresses (both recipients).
        assert_eq!((m.header("X-Sink-Tls"), m.header("X-Sink-Login")), ("yes", "homelab"));
        assert_eq!(m.header("X-Sink-Mail-From"), "homelab@example.org");
        assert_eq!(m.header("X-Sink-Rcpt-To"), "ops@example.org,second@example.org");
        assert_eq!(m.header("From"), "Homelab <homelab@example.org>");
        assert!(m.header("To").contains("ops@example.org") && m.header("To").contains("\"Second Person\" <second@example.org>"), "{}", m.header("To"));
        // The Message-ID is the idempotency id.
        let id = m.header("X-Homelab-Id");
        assert_eq!(m.header("Message-ID"), format!("<{id}@homelab>"));
        assert!(m.header("Content-Type").starts_with("text/plain"), "{}", m.header("Content-Type"));
        assert!(m.body.contains(&format!("id: {id}\n")), "{}", m.body);
    }
    assert_ne!(start.header("Message-ID"), resolved.header("Message-ID"));
    for needle in [
        "FIRING n1/web",
        "container-restart-n1-web is proposed",
        "action: container-restart-n1-web",
        "kind: started",
        "decision: action_created",
        "node: n1",
        "service: web",
    ] {
        assert!(start.body.contains(needle), "{needle:?} not in {}", start.body);
    }
    assert!(resolved.body.contains("kind: resolved"), "{}", resolved.body);
    // The heartbeat is written after each pass's deliveries.
    wait_until("the heartbeat to count both", DEADLINE, || n.counter("email_sent") == 2);
    assert_eq!(n.counter("email_failures"), 0);
    // The password is nowhere in what was logged (and logging did happen), nor in the data root.
    let logs = logs();
    assert!(logs.contains("notifications on") && logs.contains("email"), "{logs}");
    assert!(!logs.contains(PASSWORD));
    let state = std::fs::read_to_string(n.root.path().join("state/notify.json")).unwrap();
    assert!(!state.contains(PASSWORD));
}

#[test]
fn transient_451s_are_retried_with_back_off_and_the_mail_arrives_once() {
    let sink = Sink::start(free_port(), &["--fail-first", "2"]);
    let vars = plain(sink.port);
    let n = Notifier::start(&vars, &[]);
    set_drift(&n.root, vec![row()]);
    wait_until("the start mail", DEADLINE, || sink.mails().len() == 1);
    wait_until("an empty outbox", DEADLINE, || n.outbox().is_empty());
    wait_until("the heartbeat to count the send", DEADLINE, || n.counter("email_sent") == 1);

    let refused = sink.refused();
    assert_eq!(refused.len(), 2, "{refused:?}");
    let id = sink.mails()[0].header("Message-ID").to_owned();
    for r in &refused {
        // The same mail each time: same Message-ID.
        assert!(r.starts_with("451 ") && r.contains(&id), "{r}");
    }
    assert_eq!((n.counter("email_failures"), n.counter("email_refused")), (2, 0));
    assert!(n.root.quarantine_listing(10).unwrap().by_kind["outbox"] == 0);
    assert!(logs().contains("notification not delivered; will retry"));
    // Nothing more arrives: delivered once.
    assert_eq!(sink.mails().len(), 1);
}

#[test]
fn mails_wait_in_the_outbox_while_the_server_is_down_and_arrive_in_order() {
    let port = free_port();
    let vars = plain(port);
    let n = Notifier::start(&vars, &[]);
    set_drift(&n.root, vec![row()]);
    wait_until("a failed try (nothing listens)", DEADLINE, || n.counter("email_failures") >= 1);
    set_drift(&n.root, vec![]);
    // Start and resolution both wait, in order.
    wait_until("two mails in the outbox", DEADLINE, || n.outbox().len() == 2);
    let waiting = n.outbox();
    assert!(waiting.iter().all(|f| f.ends_with("-email.json")) && waiting[0] < waiting[1], "{waiting:?}");

    let sink = Sink::start(port, &[]);
    wait_until("both mails", DEADLINE, || sink.mails().len() == 2);
    wait_until("an empty outbox", DEADLINE, || n.outbox().is_empty());
    let mails = sink.mails();
    assert!(mails[0].header("Subject").starts_with("[homelab] FIRING n1/web"), "{mails:?}");
    assert!(mails[1].header("Subject").starts_with("[homelab] RESOLVED n1/web"), "{mails:?}");
    wait_until("the heartbeat to count both", DEADLINE, || n.counter("email_sent") == 2);
}

#[test]
fn a_permanent_550_quarantines_the_mail_and_the_next_one_is_still_delivered() {
    let sink = Sink::start(free_port(), &["--refuse-first", "1"]);
    let vars = plain(sink.port);
    let n = Notifier::start(&vars, &[]);
    set_drift(&n.root, vec![row()]);
    let quarantined = wait_for("the refused start in quarantine/outbox/", DEADLINE, || {
        let l = n.root.quarantine_listing(10).unwrap();
        (l.by_kind["outbox"] == 1).then(|| l.recent[0].clone())
    });
    assert!(quarantined.file.starts_with("quarantine/outbox/") && quarantined.file.ends_with("-email.json"), "{quarantined:?}");
    assert!(
        quarantined.reason.contains("email refused") && quarantined.reason.contains("550") && quarantined.reason.contains("refused by the sink"),
        "{}",
        quarantined.reason
    );
    // The quarantined file is still the outbox entry: a person can move it back to resend it.
    let entry: homelab_notify::OutboxEntry = serde_json::from_slice(&std::fs::read(n.root.path().join(&quarantined.file)).unwrap()).unwrap();
    assert_eq!(entry.message.notices[0].kind, homelab_core::notify::NoticeKind::Started);
    assert!(sink.refused()[0].contains(&format!("<{}@homelab>", entry.message.id)));

    // The channel is not blocked: the resolution goes through.
    set_drift(&n.root, vec![]);
    wait_until("the resolution mail", DEADLINE, || sink.mails().len() == 1);
    assert!(sink.mails()[0].header("Subject").starts_with("[homelab] RESOLVED n1/web"));
    wait_until("an empty outbox", DEADLINE, || n.outbox().is_empty());
    wait_until("the heartbeat to count the delivery", DEADLINE, || n.counter("email_sent") == 1);
    assert_eq!((n.counter("email_refused"), n.counter("email_failures")), (1, 0));
    assert!(logs().contains("notification refused for good; moved to quarantine"));
}

#[test]
fn a_refused_login_is_retried_not_quarantined() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let sink = Sink::start(free_port(), &["--starttls", cert.to_str().unwrap(), key.to_str().unwrap(), "--user", "homelab", "--password", "the-right-one"]);
    let port = sink.port.to_string();
    let wrong = "wrong-pw-Kx71";
    let vars = [
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", port.as_str()),
        ("SMTP_USER", "homelab"),
        ("SMTP_PASSWORD", wrong),
        ("SMTP_FROM", "homelab@example.org"),
        ("SMTP_TO", "ops@example.org"),
        ("SMTP_CA_FILE", cert.to_str().unwrap()),
    ];
    let n = Notifier::start(&vars, &[]);
    set_drift(&n.root, vec![row()]);
    wait_until("three refused logins", DEADLINE, || n.counter("email_failures") >= 3);
    // A 535 is about the channel, not the mail: it waits in the outbox for a fixed password.
    assert_eq!(n.outbox().len(), 1);
    assert_eq!((n.root.quarantine_listing(10).unwrap().by_kind["outbox"], n.counter("email_refused")), (0, 0));
    assert!(sink.mails().is_empty());
    let logs = logs();
    assert!(logs.contains("permanent error (535)"), "{logs}");
    assert!(!logs.contains(wrong));
}

#[test]
fn a_server_that_never_answers_does_not_hold_the_notifier() {
    // Connections complete in the kernel's backlog, but nothing ever answers (not even the
    // greeting): each delivery must give up by itself.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut vars = plain(silent.local_addr().unwrap().port());
    vars.push(("NOTIFY_TIMEOUT", "200ms".into()));
    let n = Notifier::start(&vars, &[]);
    set_drift(&n.root, vec![row()]);
    wait_until("two deliveries to give up", DEADLINE, || n.counter("email_failures") >= 2);
    assert_eq!(n.outbox().len(), 1);
    assert!(logs().contains("no answer within"));
}
