//! Issue 14, fitting the monitoring stack: alerts as a health source end to end with a real
//! Alertmanager and `amtool`, a real Prometheus scraping the UI (with its bearer token) and the
//! agent, `promtool` on the metrics and the shipped rules, the Grafana dashboard's queries, the
//! compose file on a fresh checkout and the node agent's systemd unit.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use homelab_core::ActionState;
use homelab_store::DataRoot;
use testkit::{Alertmanager, KillOnDrop, TempRoot, free_port, http, wait_for, wait_until, workspace_bin};

use crate::{hcp, text};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `promtool check metrics` on `text`: no error, no lint warning.
fn promtool_check_metrics(what: &str, text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is missing: run scripts/test-deps.sh as root (apt-get install prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = text_of(&out);
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics on {what}: {said}\n{text}");
}

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `hcp up` (every daemon and the agent of node `uptest`) with a few settings for speed.
struct Up {
    child: KillOnDrop,
    log: PathBuf,
    ui_port: u16,
    agent_port: u16,
}

impl Up {
    fn start(t: &TempRoot, ui_port: u16, env: &[(&str, &str)]) -> Up {
        let agent_port = free_port();
        let log = t.path().join("hcp-up.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_hcp"));
        cmd.args(["up", "--root", t.root().to_str().unwrap(), "--hosts", t.hosts().to_str().unwrap()])
            .env("NODE_NAME", "uptest")
            .env("LISTEN", format!("127.0.0.1:{ui_port}"))
            .env("LISTEN_PORT", agent_port.to_string())
            .env("LISTEN_ADDR", "127.0.0.1")
            .env("CHECK_INTERVAL", "1s")
            .env("SUPERVISOR_TICK", "1s")
            .env("VERIFY_TIMEOUT", "0")
            .env("RUST_LOG", "info")
            .env_remove("HOMELAB_ROOT")
            .env_remove("HOSTS_DIR")
            .env_remove("SUMMARY_TOKEN")
            .env_remove("ALERTMANAGER_TOKEN")
            .env_remove("ALERT_NODE_LABELS")
            .env_remove("ALERT_SERVICE_LABELS")
            .env_remove("NODE_ALIAS_MAP")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut up = Up { child: KillOnDrop(cmd.spawn().unwrap()), log, ui_port, agent_port };
        wait_until("the UI and the agent of hcp up listening", Duration::from_secs(60), || {
            if let Some(status) = up.child.0.try_wait().unwrap() {
                panic!("hcp up exited ({status}):\n{}", up.log());
            }
            std::net::TcpStream::connect(("127.0.0.1", up.ui_port)).is_ok() && std::net::TcpStream::connect(("127.0.0.1", up.agent_port)).is_ok()
        });
        up
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) {
        let status = self.child.terminate(Duration::from_secs(40));
        assert!(status.success(), "hcp up: {status}\n{}", self.log());
    }
}

fn json_file(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The drift entries of `world/drift.json` for `node/service`.
fn drift_of(root: &Path, node: &str, service: &str) -> Vec<serde_json::Value> {
    let Some(v) = json_file(&root.join("world/drift.json")) else { return Vec::new() };
    let list = v["drifts"].as_array().cloned().unwrap_or_default();
    list.into_iter().filter(|d| d["node"] == node && d["service"] == service).collect()
}

fn service_state(root: &Path, node: &str, service: &str) -> Option<serde_json::Value> {
    json_file(&root.join("world/services.json")).map(|v| v["services"][node][service].clone()).filter(|s| !s.is_null())
}

/// The alert of a blackbox probe of ghost, as `amtool alert add` sends it; ended at `end`.
fn amtool_add(am: &Alertmanager, end: Option<&str>) {
    let mut cmd = Command::new("amtool");
    cmd.arg(format!("--alertmanager.url=http://127.0.0.1:{}", am.port)).args([
        "alert",
        "add",
        "ProbeFailed",
        "instance=https://ghost:443/x",
        "job=blackbox",
        "--annotation=summary=ghost does not answer",
    ]);
    if let Some(end) = end {
        cmd.arg(format!("--end={end}"));
    }
    let out = cmd.output().expect("amtool is missing: run scripts/test-deps.sh as root (apt-get install prometheus-alertmanager)");
    assert!(out.status.success(), "amtool alert add: {}\n{}", text_of(&out), am.log());
}

/// A service whose health comes only from alerts (`alert:` check): `amtool alert add` → an
/// Alertmanager webhook → the UI's receiver maps it through the check (not through its labels,
/// which name no node) → event → world unhealthy → drift → a pending redeploy. Resolving the alert
/// → healthy → no drift → the action is cancelled as resolved. Meanwhile the agent says nothing
/// about the service, and alerts do not count as the node's sign of life.
#[test]
fn an_alert_check_drives_drift_and_a_pending_action_end_to_end() {
    const TOKEN: &str = "alert-e2e-ui-token";
    let t = TempRoot::new();
    let ui_port = free_port();
    t.write_host(
        "uptest",
        &format!(
            "services:\n  ui:\n    checks:\n      - tcp: {{ port: {ui_port} }}\n  ghost:\n    compose_dir: /srv/ghost\n    checks:\n      - alert: {{ alertname: ProbeFailed, labels: {{ instance: \"https://ghost:443/x\" }} }}\n"
        ),
    );
    // MISSING_GRACE long: the supervisor must not read the alert-only service's quiet (no event
    // until an alert comes) as a missing service within the test.
    let up = Up::start(&t, ui_port, &[("UI_TOKEN", TOKEN), ("MISSING_GRACE", "1h")]);
    let root = t.root();
    let store = DataRoot::open(&root).unwrap();
    let id = "redeploy-uptest-ghost";
    let result = std::panic::catch_unwind(|| {
        // The agent reports its node and the ui service, never ghost.
        wait_for("the agent's first events folded", Duration::from_secs(60), || service_state(&root, "uptest", "ui"));
        let am = Alertmanager::start(&Alertmanager::webhook_config(ui_port, TOKEN, "alertname"));
        assert!(service_state(&root, "uptest", "ghost").is_none(), "no event about ghost before the alert");
        assert!(store.read_active(ActionState::Pending, id).unwrap().is_none(), "no action for ghost before the alert");

        amtool_add(&am, None);
        let state = wait_for("ghost unhealthy in world state", Duration::from_secs(60), || {
            service_state(&root, "uptest", "ghost").filter(|s| s["status"] == "unhealthy")
        });
        assert_eq!(state["reason"], "service_unhealthy", "{state}");
        assert!(state["detail"].as_str().unwrap().contains("ProbeFailed firing: ghost does not answer"), "{state}");
        let drift = wait_for("unhealthy_service drift for ghost", Duration::from_secs(30), || {
            drift_of(&root, "uptest", "ghost").into_iter().find(|d| d["kind"] == "unhealthy_service")
        });
        assert_eq!(drift["trigger"], "service_unhealthy", "{drift}");
        let action = wait_for("the pending redeploy of ghost", Duration::from_secs(30), || store.read_active(ActionState::Pending, id).ok().flatten());
        assert_eq!(action.trigger, "service_unhealthy");
        // The event is marked as an alert's, mapped through the check.
        let events = alert_events(&root);
        assert!(!events.is_empty() && events.iter().all(|e| e["node"] == "uptest" && e["service"] == "ghost" && e["data"]["matched"] == "check"), "{events:?}");

        // Resolved: the same alert, ended now.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        amtool_add(&am, Some(&now));
        wait_for("ghost healthy again", Duration::from_secs(60), || service_state(&root, "uptest", "ghost").filter(|s| s["status"] == "healthy"));
        let cancelled = wait_for("the redeploy cancelled as resolved", Duration::from_secs(30), || {
            store.list_actions(ActionState::Cancelled).ok()?.into_iter().find(|a| a.action.id == id)
        });
        let last = cancelled.action.history.last().unwrap();
        assert_eq!(last.note.as_deref(), Some(homelab_core::plan::DRIFT_RESOLVED_AUTO), "{:?}", cancelled.action.history);
        wait_until("no drift for ghost", Duration::from_secs(30), || drift_of(&root, "uptest", "ghost").is_empty());
        assert!(store.read_active(ActionState::Pending, id).unwrap().is_none());

        // The UI counted the webhooks and the events they wrote.
        let (code, metrics) = http(ui_port, "GET", "/metrics", &[("Authorization", &format!("Bearer {TOKEN}")), ("Accept", "text/plain")], "").unwrap();
        assert_eq!(code, 200, "{metrics}");
        let written = metrics
            .lines()
            .find_map(|l| l.strip_prefix("homelab_ingest_events_total{source=\"alertmanager\",outcome=\"written\"} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no alertmanager written counter in:\n{metrics}"));
        assert!(written >= 2.0, "{metrics}");
        assert!(metrics.contains("homelab_ingest_requests_total{endpoint=\"alertmanager\",code=\"200\"}"), "{metrics}");
    });
    let log = up.log();
    up.stop();
    if let Err(e) = result {
        eprintln!("hcp up log:\n{log}");
        std::panic::resume_unwind(e);
    }
}

/// Every event Alertmanager's alerts became.
fn alert_events(root: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for day in std::fs::read_dir(root.join("events")).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(day.path()).into_iter().flatten().flatten() {
            if f.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Some(e) = json_file(&f.path()).filter(|e| e["data"]["source"] == "alertmanager") {
                out.push(e);
            }
        }
    }
    out
}

/// A real Prometheus (Debian's 2.42) scrapes the UI's `/metrics` with the bearer token and the
/// agent's `/metrics`, loads the shipped rules, and answers `up == 1` for both; every query of
/// the Grafana dashboard parses and the main ones return series. `promtool check metrics` is
/// clean on both outputs.
#[test]
fn prometheus_scrapes_the_ui_and_the_agent() {
    const TOKEN: &str = "scrape-ui-token";
    const SUMMARY: &str = "scrape-summary-token";
    let t = TempRoot::new();
    let ui_port = free_port();
    t.write_host("uptest", &format!("services:\n  ui:\n    checks:\n      - tcp: {{ port: {ui_port} }}\n"));
    let up = Up::start(&t, ui_port, &[("UI_TOKEN", TOKEN), ("SUMMARY_TOKEN", SUMMARY)]);
    let agent_port = up.agent_port;
    let result = std::panic::catch_unwind(|| {
        // Reads need the token; with it, both formats.
        let (code, _) = http(ui_port, "GET", "/metrics", &[], "").unwrap();
        assert_eq!(code, 401);
        let bearer = format!("Bearer {SUMMARY}");
        let ui_text = wait_for("the UI's metrics with the agent's node", Duration::from_secs(60), || {
            let (code, body) = http(ui_port, "GET", "/metrics", &[("Authorization", &bearer), ("Accept", "text/plain;version=0.0.4")], "").ok()?;
            assert_eq!(code, 200, "{body}");
            body.contains("homelab_nodes{status=\"up\"} 1").then_some(body)
        });
        for want in
            ["homelab_build_info{version=", "homelab_daemon_heartbeat_timestamp_seconds{daemon=\"observer\"}", "# TYPE homelab_ingest_events_total counter"]
        {
            assert!(ui_text.contains(want), "UI metrics lack {want}:\n{ui_text}");
        }
        promtool_check_metrics("the UI's /metrics", &ui_text);
        let (_, om) = http(ui_port, "GET", "/metrics", &[("Authorization", &bearer), ("Accept", "application/openmetrics-text; version=1.0.0")], "").unwrap();
        assert!(om.contains("# EOF"), "OpenMetrics when asked for it");
        let agent_text = wait_for("the agent's check results", Duration::from_secs(30), || {
            let (_, body) = http(agent_port, "GET", "/metrics", &[], "").ok()?;
            body.contains("homelab_agent_check_up{service=\"ui\",check=\"tcp\"} 1").then_some(body)
        });
        promtool_check_metrics("the agent's /metrics", &agent_text);

        let prom = Prometheus::start(&format!(
            r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: ["{rules}"]
scrape_configs:
  - job_name: homelab
    metrics_path: /metrics
    authorization: {{ credentials: "{SUMMARY}" }}
    static_configs: [{{ targets: ["127.0.0.1:{ui_port}"] }}]
  - job_name: homelab-agent
    static_configs: [{{ targets: ["127.0.0.1:{agent_port}"] }}]
"#,
            rules = repo().join("docs/prometheus-rules.yml").display()
        ));
        let ups = wait_for("up == 1 for both targets", Duration::from_secs(60), || {
            let v = prom.query("up == 1")?;
            let jobs: std::collections::BTreeSet<String> = v.iter().filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned)).collect();
            (jobs.len() == 2).then_some(jobs)
        });
        assert_eq!(ups.into_iter().collect::<Vec<_>>(), ["homelab", "homelab-agent"]);
        let (code, rules) = http(prom.port, "GET", "/api/v1/rules", &[], "").unwrap();
        assert_eq!(code, 200);
        let rules: serde_json::Value = parse_json(&rules);
        let loaded: Vec<&serde_json::Value> = rules["data"]["groups"].as_array().unwrap().iter().flat_map(|g| g["rules"].as_array().unwrap()).collect();
        assert!(loaded.len() >= 4 && loaded.iter().all(|r| r["health"] != "err"), "{rules}");

        // The dashboard's queries, with every job selected.
        let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(repo().join("docs/grafana-dashboard.json")).unwrap()).unwrap();
        let mut empty = Vec::new();
        for p in dash["panels"].as_array().unwrap() {
            for target in p["targets"].as_array().unwrap() {
                let expr = target["expr"].as_str().unwrap().replace("$job", ".+");
                let v = wait_for(&format!("{expr} to evaluate"), Duration::from_secs(10), || prom.query_any(&expr));
                if v.is_empty() {
                    empty.push(p["title"].as_str().unwrap().to_owned());
                }
            }
        }
        for needed in ["Healthy services", "Scrape up", "Time since each daemon's last loop", "Agent checks passing (1) or failing (0)", "Stale nodes"] {
            assert!(!empty.contains(&needed.to_owned()), "{needed} returns no series");
        }
        eprintln!("dashboard panels without series yet (no such events in this short run): {empty:?}");
    });
    let log = up.log();
    up.stop();
    if let Err(e) = result {
        eprintln!("hcp up log:\n{log}");
        std::panic::resume_unwind(e);
    }
}

/// A real Prometheus server on 127.0.0.1 with a temp config and storage; killed on drop.
struct Prometheus {
    _child: KillOnDrop,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Prometheus {
    const BIN: &'static str = "/usr/bin/prometheus";

    fn start(config: &str) -> Prometheus {
        assert!(Path::new(Self::BIN).exists(), "{} is missing: run scripts/test-deps.sh as root (apt-get install prometheus)", Self::BIN);
        let dir = tempfile::Builder::new().prefix("prometheus-test-").tempdir().unwrap();
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let out = Command::new("promtool").arg("check").arg("config").arg(dir.path().join("prometheus.yml")).output().unwrap();
        assert!(out.status.success(), "promtool check config: {}", text_of(&out));
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(Self::BIN)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut child = KillOnDrop(child);
        let log_path = dir.path().join("prometheus.log");
        wait_until("Prometheus ready", Duration::from_secs(60), || {
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!("prometheus exited ({status}):\n{}", std::fs::read_to_string(&log_path).unwrap_or_default());
            }
            matches!(http(port, "GET", "/-/ready", &[], ""), Ok((200, _)))
        });
        Prometheus { _child: child, _dir: dir, port }
    }

    /// The result vector of an instant query; `None` while it is empty or fails.
    fn query(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        self.query_any(q).filter(|v| !v.is_empty())
    }

    /// The result of an instant query (possibly empty); `None` only when the request fails.
    /// Panics when Prometheus calls the query invalid.
    fn query_any(&self, q: &str) -> Option<Vec<serde_json::Value>> {
        let path = format!("/api/v1/query?query={}", urlencode(q));
        let (code, body) = http(self.port, "GET", &path, &[], "").ok()?;
        let v = parse_json(&body);
        assert!(code == 200 && v["status"] == "success", "query {q}: {code} {body}");
        match &v["data"]["result"] {
            serde_json::Value::Array(a) => Some(a.clone()),
            other => Some(vec![other.clone()]),
        }
    }
}

/// A JSON body as `testkit::http` returns it: plain, or with HTTP/1.1 chunked framing left in.
fn parse_json(body: &str) -> serde_json::Value {
    if let Ok(v) = serde_json::from_str(body) {
        return v;
    }
    let (mut rest, mut out) = (body, String::new());
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or_else(|_| panic!("not JSON, not chunked: {body}"));
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `promtool check rules` and `promtool test rules` on the shipped rules.
#[test]
fn the_shipped_alert_rules_pass_promtool() {
    let docs = repo().join("docs");
    let out = Command::new("promtool").args(["check", "rules", "prometheus-rules.yml"]).current_dir(&docs).output().expect("promtool (scripts/test-deps.sh)");
    assert!(out.status.success(), "promtool check rules: {}", text_of(&out));
    let out = Command::new("promtool").args(["test", "rules", "prometheus-rules.test.yml"]).current_dir(&docs).output().unwrap();
    assert!(out.status.success(), "promtool test rules: {}", text_of(&out));
    let rules = std::fs::read_to_string(docs.join("prometheus-rules.yml")).unwrap();
    for alert in ["HomelabDaemonNotLooping", "HomelabActionsFailing", "HomelabQuarantineGrowing", "HomelabIngestFailing", "HomelabNotificationRefused"] {
        assert!(rules.contains(&format!("alert: {alert}")), "{alert}");
    }
}

/// The dashboard works provisioned: a `datasource` variable instead of an import-time input,
/// `$job` in every query, and rate()/increase() only on counters (`_total`), never on the
/// gauges that count files on disk.
#[test]
fn the_dashboard_has_a_datasource_variable_job_everywhere_and_rates_only_counters() {
    let text = std::fs::read_to_string(repo().join("docs/grafana-dashboard.json")).unwrap();
    assert!(!text.contains("DS_PROMETHEUS"), "no import-time datasource input");
    let dash: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vars = dash["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"), "{vars:?}");
    assert!(vars.iter().any(|v| v["name"] == "job"));
    let mut n = 0;
    for p in dash["panels"].as_array().unwrap() {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        for target in p["targets"].as_array().unwrap() {
            n += 1;
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("job=~\"$job\""), "{}: {expr}", p["title"]);
            assert_eq!(target["datasource"]["uid"], "${datasource}");
            for f in ["rate(", "increase("] {
                for (i, _) in expr.match_indices(f) {
                    let metric: String = expr[i + f.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                    assert!(metric.ends_with("_total"), "{}: {f} on {metric}, not a counter", p["title"]);
                }
            }
        }
    }
    assert!(n >= 14, "{n} queries");
}

/// `hcp check` takes `alert:` checks and points at a bad one with its line and column.
#[test]
fn hcp_check_accepts_alert_checks_and_points_at_bad_ones() {
    let t = TempRoot::new();
    t.write_host("vps", "services:\n  ghost:\n    checks:\n      - alert: { alertname: ProbeFailed, labels: { instance: \"https://ghost:443/x\" } }\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    t.write_host("vps", "services:\n  ghost:\n    checks:\n      - tcp: { port: 1 }\n      - alert: { alertname: X, labels: { bad-label: y } }\n");
    let out = hcp(&["check", "--hosts", t.hosts().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The label itself, with the field path.
    assert!(
        text(&out).contains("services.yaml:5:42: services.ghost.checks[1].alert.labels.bad-label: \"bad-label\" is not a Prometheus label name"),
        "{}",
        text(&out)
    );
    // The repository's example hosts/ validates too (it shows an alert: check).
    let out = hcp(&["check", "--hosts", repo().join("hosts").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// `docker-compose config` on a fresh checkout (no secrets.env, no .env) passes, and the UI gets
/// BASE_PATH from compose/.env. Its healthcheck is `hcp health --ui`, which reads the UI's own
/// LISTEN and BASE_PATH inside the container: compose.rs shows it healthy with and without a
/// prefix on the real engine.
#[test]
fn compose_config_passes_on_a_fresh_checkout_and_the_healthcheck_follows_base_path() {
    let t = tempfile::tempdir().unwrap();
    for dir in ["compose", "hosts"] {
        testkit::copy_tree(&repo().join(dir), &t.path().join(dir)).unwrap();
    }
    for leftover in ["compose/secrets.env", "compose/.env"] {
        let _ = std::fs::remove_file(t.path().join(leftover));
    }
    let config = || {
        let out = Command::new("docker-compose")
            .args(["-f", "compose/docker-compose.yml", "config"])
            .current_dir(t.path())
            .env_remove("BASE_PATH")
            .env_remove("HOMELAB_SECRETS_ENV")
            .output()
            .expect("docker-compose is missing: run scripts/test-deps.sh as root");
        assert!(out.status.success(), "docker-compose config: {}", text_of(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let fresh = config();
    assert!(fresh.contains("- health\n      - --ui"), "{fresh}");
    std::fs::write(
        t.path().join("compose/.env"),
        "BASE_PATH=/homelab
HOMELAB_SECRETS_ENV=secrets.env
",
    )
    .unwrap();
    std::fs::write(
        t.path().join("compose/secrets.env"),
        "SUMMARY_TOKEN=from-secrets-env
",
    )
    .unwrap();
    let behind_proxy = config();
    assert!(behind_proxy.contains("- health\n      - --ui"), "{behind_proxy}");
    assert!(behind_proxy.contains("BASE_PATH: /homelab"), "{behind_proxy}");
    assert!(behind_proxy.contains("SUMMARY_TOKEN: from-secrets-env"), "secrets.env is read once named: {behind_proxy}");
}

/// The node agent's unit passes `systemd-analyze verify` and, where the offline security
/// scan works, scores at most 3.5 (it says about 1.5).
#[test]
fn the_node_agent_unit_verifies_and_is_hardened() {
    let t = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(repo().join("scripts/node-agent/node-agent.service")).unwrap();
    for key in [
        "CapabilityBoundingSet=",
        "SystemCallFilter=",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "ProtectKernelTunables=yes",
        "SupplementaryGroups=docker",
    ] {
        assert!(unit.contains(key), "{key}");
    }
    // The binary of this build where the unit expects /usr/local/bin/node-agent.
    let unit = unit.replace("ExecStart=/usr/local/bin/node-agent", &format!("ExecStart={}", workspace_bin("node-agent").display()));
    let path = t.path().join("node-agent.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is missing: run scripts/test-deps.sh as root (apt-get install systemd)");
    assert!(out.status.success() && text_of(&out).trim().is_empty(), "systemd-analyze verify: {}", text_of(&out));
    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&path).output().unwrap();
    let said = text_of(&out);
    let score = said.lines().find_map(|l| l.split("node-agent.service: ").nth(1)).and_then(|r| r.split_whitespace().next()).and_then(|s| s.parse::<f64>().ok());
    match score {
        Some(score) => {
            println!("systemd-analyze security --offline: node-agent.service exposure {score}");
            assert!(
                score <= 3.5,
                "exposure {score}:
{said}"
            );
        }
        None => println!(
            "systemd-analyze security --offline does not work here; verified only:
{said}"
        ),
    }
}
