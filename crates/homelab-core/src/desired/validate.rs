//! The walk over one services.yaml tree: every problem of the file, each with its place, the
//! path of the field (`services.web.checks[0].http.timeout_secs`) and what was expected; and,
//! when there is none, the validated [`HostSpec`].

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_saphyr::{Location, Spanned};

use super::keys::{auth_keys, check_keys, check_kinds, disk_keys, ssh_keys, window_keys};
use super::yaml::{Node, raw};
use super::*;

type Entries = [(Spanned<String>, Spanned<Node>)];

pub(super) struct Walker<'a> {
    file: &'a str,
    text: &'a str,
    pub errors: Vec<ConfigError>,
}

const TOP_KEYS: &[&str] = &["node", "ssh", "compose_command", "disk", "maintenance_windows", "services", "group", "groups"];
const SERVICE_KEYS: &[&str] = &["compose_dir", "containers", "depends_on", "monitor", "checks", "verify_window", "rollback"];
/// The largest `failure_threshold` / `success_threshold`: past that, a check would never flip.
const MAX_THRESHOLD: u64 = 1000;

fn example(kind: &str) -> &'static str {
    match kind {
        "http" => "{ url: \"http://127.0.0.1:8080/\" }",
        "tcp" => "{ port: 1883 }",
        "container" => "{}",
        "exec" => "{ container: db, command: [pg_isready] }",
        "systemd" => "{ unit: docker.service }",
        "mqtt" => "{ port: 1883 }",
        "alert" => "{ alertname: ProbeFailed }",
        _ => "{ … }",
    }
}

/// `a.b` / `a[0]`.
fn key(path: &str, k: &str) -> String {
    if path.is_empty() { k.to_owned() } else { format!("{path}.{k}") }
}
fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// The closest known key within two edits, for "did you mean".
pub(super) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known.iter().map(|k| (distance(word, k), *k)).filter(|(d, _)| *d <= 2).min_by_key(|(d, _)| *d).map(|(_, k)| k)
}

fn loc(n: &Spanned<impl Sized>) -> (u64, u64) {
    at(&n.referenced)
}
fn at(l: &Location) -> (u64, u64) {
    (l.line(), l.column())
}

impl<'a> Walker<'a> {
    pub(super) fn new(file: &'a str, text: &'a str) -> Walker<'a> {
        Walker { file, text, errors: Vec::new() }
    }

    fn err(&mut self, place: (u64, u64), path: &str, message: impl Display, hint: Option<String>) {
        let message = if path.is_empty() { message.to_string() } else { format!("{path}: {message}") };
        self.errors.push(ConfigError { file: self.file.to_owned(), line: place.0, column: place.1, message, hint });
    }

    /// A mapping's entries (an empty value counts as an empty mapping). Duplicate keys are
    /// reported here, each with the line of the first one.
    fn map<'n>(&mut self, n: &'n Spanned<Node>, path: &str, what: &str) -> Option<&'n Entries> {
        match &n.value {
            Node::Map(entries) => {
                for (i, (k, _)) in entries.iter().enumerate() {
                    if let Some((first, _)) = entries[..i].iter().find(|(f, _)| f.value == k.value) {
                        self.err(
                            loc(k),
                            &key(path, &k.value),
                            format!("appears twice; the first is on line {}", first.referenced.line()),
                            Some("each key, and each service name, may appear once: merge the two or rename one".into()),
                        );
                    }
                }
                Some(entries)
            }
            Node::Null => Some(&[]),
            other => {
                self.err(loc(n), path, format!("expected {what}, found {}", other.describe()), None);
                None
            }
        }
    }

    /// Reports keys not in `known`.
    fn known(&mut self, entries: &Entries, path: &str, known: &[&str]) {
        for (k, _) in entries {
            if known.contains(&k.value.as_str()) {
                continue;
            }
            let hint = if k.value == "password" && path.ends_with("basic_auth") {
                "passwords never go inline in hosts/: name an environment variable (password_env) or a file (password_file)".to_owned()
            } else if let Some(close) = closest(&k.value, known) {
                format!("did you mean `{close}`? see docs/configuration.md")
            } else {
                "check the spelling against docs/configuration.md".to_owned()
            };
            self.err(loc(k), path, format!("unknown field `{}`; expected one of {}", k.value, known.join(", ")), Some(hint));
        }
    }

    fn get<'n>(entries: &'n Entries, name: &str) -> Option<&'n Spanned<Node>> {
        entries.iter().find(|(k, _)| k.value == name).map(|(_, v)| v)
    }

    /// An optional field: absent or empty is `None`.
    fn opt<'n>(entries: &'n Entries, name: &str) -> Option<&'n Spanned<Node>> {
        Self::get(entries, name).filter(|v| v.value != Node::Null)
    }

    /// A required field: missing (or empty) is reported at `place` (the mapping).
    fn req<'n>(&mut self, entries: &'n Entries, name: &str, path: &str, place: (u64, u64), example: &str) -> Option<&'n Spanned<Node>> {
        let found = Self::opt(entries, name);
        if found.is_none() {
            self.err(place, path, format!("`{name}` is required"), Some(format!("e.g. {name}: {example}")));
        }
        found
    }

    /// Text. A number or true/false where text is wanted is taken as written (`5` is "5").
    fn text(&mut self, n: &Spanned<Node>, path: &str) -> Option<String> {
        match &n.value {
            Node::Str(s) => Some(s.clone()),
            Node::Int(_) | Node::Float(_) | Node::Bool(_) => Some(raw(self.text, n).map(str::to_owned).unwrap_or_else(|| match &n.value {
                Node::Int(i) => i.to_string(),
                Node::Float(f) => f.to_string(),
                Node::Bool(b) => b.to_string(),
                _ => unreachable!(),
            })),
            other => {
                self.err(loc(n), path, format!("expected text, found {}", other.describe()), None);
                None
            }
        }
    }

    fn opt_text(&mut self, entries: &Entries, name: &str, path: &str) -> Option<String> {
        Self::opt(entries, name).and_then(|v| self.text(v, &key(path, name)))
    }

    fn bool(&mut self, n: &Spanned<Node>, path: &str) -> Option<bool> {
        match &n.value {
            Node::Bool(b) => Some(*b),
            other => {
                self.err(loc(n), path, format!("expected true or false, found {}", other.describe()), None);
                None
            }
        }
    }

    /// A whole number in `min..=max`.
    fn uint(&mut self, n: &Spanned<Node>, path: &str, min: u64, max: u64, what: &str) -> Option<u64> {
        match &n.value {
            Node::Int(i) if *i >= i128::from(min) && *i <= i128::from(max) => Some(*i as u64),
            Node::Int(i) => {
                self.err(loc(n), path, format!("{i} is out of range; expected {what} from {min} to {max}"), None);
                None
            }
            Node::Str(s) if s.trim().parse::<u64>().is_ok() => {
                self.err(loc(n), path, format!("expected {what} as a number, found the text {s:?}"), Some("remove the quotes".into()));
                None
            }
            other => {
                self.err(loc(n), path, format!("expected {what} (a whole number from {min} to {max}), found {}", other.describe()), None);
                None
            }
        }
    }

    /// A time in whole seconds: a number (`3`) or a duration (`3s`, `2m`).
    fn secs(&mut self, n: &Spanned<Node>, path: &str) -> Option<u64> {
        const EXPECTED: &str = "expected seconds (3) or a duration (3s, 2m, 1h)";
        match &n.value {
            Node::Int(i) if *i >= 1 && *i <= i128::from(u32::MAX) => Some(*i as u64),
            Node::Int(i) => {
                self.err(loc(n), path, format!("{i} is not a usable time; {EXPECTED} of at least 1s"), None);
                None
            }
            Node::Str(s) => match crate::duration::parse_duration(s) {
                Ok(d) if d.subsec_nanos() == 0 && d.as_secs() >= 1 => Some(d.as_secs()),
                Ok(_) => {
                    self.err(loc(n), path, format!("{s:?} is not whole seconds; {EXPECTED} of at least 1s"), None);
                    None
                }
                Err(_) => {
                    self.err(loc(n), path, format!("{s:?} is not a time; {EXPECTED}"), Some("units: ms, s, m, h, d".into()));
                    None
                }
            },
            other => {
                self.err(loc(n), path, format!("{EXPECTED}, found {}", other.describe()), None);
                None
            }
        }
    }

    /// A list (an empty value is an empty list). A single value where a list is wanted is an
    /// error with the two ways to write a list.
    fn list<'n>(&mut self, n: &'n Spanned<Node>, path: &str, of: &str, example: &str) -> Option<&'n [Spanned<Node>]> {
        match &n.value {
            Node::Seq(items) => Some(items),
            Node::Null => Some(&[]),
            other => {
                self.err(
                    loc(n),
                    path,
                    format!("expected a list of {of}, found {}", other.describe()),
                    Some(format!("write a list as {example}, or one `- item` per line")),
                );
                None
            }
        }
    }

    fn text_list(&mut self, n: &Spanned<Node>, path: &str, of: &str, example: &str) -> Option<Vec<String>> {
        let items = self.list(n, path, of, example)?;
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.text(item, &index(path, i)) {
                Some(s) => out.push(s),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// The whole file. `None` when there was any error.
    pub(super) fn host(&mut self, root: Option<&Spanned<Node>>, folder_node: &str) -> Option<HostSpec> {
        let empty: Vec<(Spanned<String>, Spanned<Node>)> = Vec::new();
        let entries: &Entries = match root {
            None => &empty,
            Some(r) => match &r.value {
                Node::Map(_) | Node::Null => self.map(r, "", "")?,
                other => {
                    self.err(
                        loc(r),
                        "",
                        format!("the file must be a mapping of keys such as `services:`, found {}", other.describe()),
                        Some("start with `services:` and list each service below it, indented by two spaces".into()),
                    );
                    return None;
                }
            },
        };
        self.known(entries, "", TOP_KEYS);

        let node = match Self::opt(entries, "node") {
            Some(n) => {
                let name = self.text(n, "node");
                if let Some(name) = &name
                    && let Err(e) = validate_name(name)
                {
                    self.err(loc(n), "node", format!("{e}"), None);
                }
                name.unwrap_or_default()
            }
            None => {
                if let Err(e) = validate_name(folder_node) {
                    self.err((1, 1), "", format!("the folder name is not a valid node name: {e}"), Some("rename the folder or set node:".into()));
                }
                folder_node.to_owned()
            }
        };

        let ssh = Self::opt(entries, "ssh").and_then(|n| self.ssh(n));

        let compose_command = match Self::opt(entries, "compose_command") {
            None => vec!["docker".to_owned(), "compose".to_owned()],
            Some(n) => {
                let text = self.text(n, "compose_command").unwrap_or_default();
                let argv: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
                if argv != ["docker", "compose"] && argv != ["docker-compose"] && !text.is_empty() {
                    self.err(loc(n), "compose_command", format!("{text:?} is not supported"), Some("use \"docker compose\" or \"docker-compose\"".into()));
                }
                argv
            }
        };

        let disk = Self::opt(entries, "disk").and_then(|n| self.disk(n));

        let mut windows = Vec::new();
        if let Some(n) = Self::opt(entries, "maintenance_windows")
            && let Some(items) = self.list(n, "maintenance_windows", "windows", "[{ days: [sat], start: \"02:00\", end: \"05:00\" }]")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(w) = self.window(item, &index("maintenance_windows", i)) {
                    windows.push(w);
                }
            }
        }

        // Node groups for operators' permissions (docs/users.md): `group: web` or `groups: [a, b]`.
        let mut groups: Vec<(String, (u64, u64))> = Vec::new();
        if let Some(n) = Self::opt(entries, "group")
            && let Some(g) = self.text(n, "group")
        {
            groups.push((g, loc(n)));
        }
        if let Some(n) = Self::opt(entries, "groups")
            && let Some(items) = self.list(n, "groups", "group names", "[web, media]")
        {
            for (i, item) in items.iter().enumerate() {
                if let Some(g) = self.text(item, &index("groups", i)) {
                    groups.push((g, loc(item)));
                }
            }
        }
        let mut group_names: Vec<String> = Vec::new();
        for (g, at) in groups {
            if g.is_empty() || g.len() > 64 || !g.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@')) {
                self.err(at, "groups", format!("{g:?} is not a valid group name"), Some("letters, digits, '.', '_', '-' or '@', at most 64".into()));
            } else if !group_names.contains(&g) {
                group_names.push(g);
            }
        }

        let mut services = BTreeMap::new();
        if let Some(n) = Self::opt(entries, "services")
            && let Some(svc_entries) = self.map(n, "services", "a mapping of service names, e.g. `web:` on its own line")
        {
            let names: Vec<&str> = svc_entries.iter().map(|(k, _)| k.value.as_str()).collect();
            for (k, v) in svc_entries {
                let path = key("services", &k.value);
                if let Err(e) = validate_name(&k.value) {
                    self.err(loc(k), &path, format!("not a valid service name: {e}"), None);
                }
                if let Some(spec) = self.service(v, &path, &k.value, &names) {
                    services.entry(k.value.clone()).or_insert(spec);
                }
            }
            let graph: BTreeMap<String, Vec<String>> = services.iter().map(|(n, s): (&String, &ServiceSpec)| (n.clone(), s.depends_on.clone())).collect();
            if let Some(cycle) = find_cycle(&graph)
                && let Some((k, _)) = svc_entries.iter().find(|(k, _)| k.value == cycle[0])
            {
                self.err(
                    loc(k),
                    &key("services", &cycle[0]),
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                    Some("depends_on must not loop back".into()),
                );
            }
        }

        if !self.errors.is_empty() {
            return None;
        }
        Some(HostSpec { node, ssh, compose_command, disk, maintenance_windows: windows, services, groups: group_names })
    }

    fn ssh(&mut self, n: &Spanned<Node>) -> Option<SshTarget> {
        let path = "ssh";
        let entries = self.map(n, path, "a mapping such as { host: 192.0.2.10, user: ops }")?;
        self.known(entries, path, ssh_keys());
        let host = self.req(entries, "host", path, loc(n), "192.0.2.10").and_then(|h| self.text(h, "ssh.host"));
        let port = Self::opt(entries, "port").and_then(|p| self.uint(p, "ssh.port", 1, 65535, "a port"));
        let user = self.opt_text(entries, "user", path);
        let identity_file = self.opt_text(entries, "identity_file", path);
        let known_hosts = self.opt_text(entries, "known_hosts", path);
        let docker_socket = self.opt_text(entries, "docker_socket", path);
        Some(SshTarget { host: host?, user, port: port.map(|p| p as u16), identity_file, known_hosts, docker_socket })
    }

    fn disk(&mut self, n: &Spanned<Node>) -> Option<DiskSpec> {
        let path = "disk";
        let entries = self.map(n, path, "a mapping such as { pressure_high_pct: 90 }")?;
        self.known(entries, path, disk_keys());
        let pct = |w: &mut Self, name: &str| Self::opt(entries, name).and_then(|v| w.uint(v, &key(path, name), 1, 100, "a percentage")).map(|v| v as u8);
        let medium = pct(self, "pressure_medium_pct");
        let high = pct(self, "pressure_high_pct");
        let spec = DiskSpec { pressure_medium_pct: medium, pressure_high_pct: high, mounts: None, cleanup: None };
        if spec.medium_pct() >= spec.high_pct() {
            let place = Self::opt(entries, "pressure_medium_pct").or(Self::opt(entries, "pressure_high_pct")).map_or(loc(n), loc);
            self.err(place, path, format!("pressure_medium_pct ({}) must be below pressure_high_pct ({})", spec.medium_pct(), spec.high_pct()), None);
        }
        let mounts = Self::opt(entries, "mounts").and_then(|m| {
            let list = self.text_list(m, "disk.mounts", "mount points", "[/, /srv]")?;
            let items = match &m.value {
                Node::Seq(items) => items.as_slice(),
                _ => &[],
            };
            for (i, (mount, item)) in list.iter().zip(items).enumerate() {
                if !mount.starts_with('/') {
                    self.err(loc(item), &index("disk.mounts", i), format!("{mount:?} is not an absolute path"), Some("mount points start with /".into()));
                }
            }
            Some(list)
        });
        let cleanup = Self::opt(entries, "cleanup").and_then(|c| {
            let e = self.map(c, "disk.cleanup", "a mapping such as { docker_prune: true }")?;
            self.known(e, "disk.cleanup", &["docker_prune"]);
            let prune = Self::opt(e, "docker_prune").and_then(|p| self.bool(p, "disk.cleanup.docker_prune")).unwrap_or(false);
            Some(DiskCleanup { docker_prune: prune })
        });
        Some(DiskSpec { mounts, cleanup, ..spec })
    }

    fn window(&mut self, n: &Spanned<Node>, path: &str) -> Option<MaintenanceWindow> {
        let entries = self.map(n, path, "a window such as { days: [sat, sun], start: \"02:00\", end: \"05:00\" }")?;
        self.known(entries, path, window_keys());
        let days = Self::opt(entries, "days").map(|d| self.text_list(d, &key(path, "days"), "days", "[sat, sun]"));
        let start = self.req(entries, "start", path, loc(n), "\"02:00\"").and_then(|s| self.text(s, &key(path, "start")));
        let end = self.req(entries, "end", path, loc(n), "\"05:00\"").and_then(|s| self.text(s, &key(path, "end")));
        let w = MaintenanceWindow { days: days.unwrap_or(Some(Vec::new()))?, start: start?, end: end? };
        if let Err(e) = crate::window::validate(&w) {
            self.err(loc(n), path, format!("maintenance window: {e}"), Some("days are mon … sun, times HH:MM in UTC".into()));
        }
        Some(w)
    }

    fn service(&mut self, n: &Spanned<Node>, path: &str, name: &str, names: &[&str]) -> Option<ServiceSpec> {
        let entries = self.map(n, path, "a mapping of service settings (compose_dir, containers, checks, …), or {}")?;
        self.known(entries, path, SERVICE_KEYS);
        let compose_dir = self.opt_text(entries, "compose_dir", path);
        let mut ok = true;
        let containers = match Self::opt(entries, "containers") {
            None => Vec::new(),
            Some(c) => {
                let p = key(path, "containers");
                let list = self.text_list(c, &p, "container names", "[web, db]");
                if let (Some(list), Node::Seq(items)) = (&list, &c.value) {
                    for (i, (name, item)) in list.iter().zip(items).enumerate() {
                        if name.is_empty() || name.contains('/') {
                            self.err(
                                loc(item),
                                &index(&p, i),
                                format!("{name:?} is not a container name"),
                                Some("a container name has no `/`; write the name docker ps shows".into()),
                            );
                        }
                    }
                }
                list.unwrap_or_else(|| {
                    ok = false;
                    Vec::new()
                })
            }
        };
        let mut depends_on = Vec::new();
        if let Some(d) = Self::opt(entries, "depends_on") {
            let p = key(path, "depends_on");
            if let Some(items) = self.list(d, &p, "service names", "[mosquitto]") {
                for (i, item) in items.iter().enumerate() {
                    let ip = index(&p, i);
                    let Some(dep) = self.text(item, &ip) else { continue };
                    if dep == name {
                        self.err(loc(item), &ip, format!("service {name:?} depends on itself"), None);
                    } else if !names.contains(&dep.as_str()) {
                        self.err(
                            loc(item),
                            &ip,
                            format!("service {name:?} depends on unknown service {dep:?}"),
                            Some(match closest(&dep, names) {
                                Some(c) => format!("did you mean {c:?}? depends_on names services of the same file"),
                                None => "depends_on names services of the same file".into(),
                            }),
                        );
                    } else {
                        depends_on.push(dep);
                    }
                }
            }
        }
        let monitor = Self::opt(entries, "monitor").map(|m| self.bool(m, &key(path, "monitor"))).unwrap_or(Some(true));
        let mut checks = Vec::new();
        if let Some(c) = Self::opt(entries, "checks") {
            let p = key(path, "checks");
            if let Some(items) = self.list(c, &p, "checks", "[{ tcp: { port: 1883 } }]") {
                for (i, item) in items.iter().enumerate() {
                    match self.check(item, &index(&p, i)) {
                        Some(check) => checks.push(check),
                        None => ok = false,
                    }
                }
            }
        }
        let verify_window_secs = Self::opt(entries, "verify_window").map(|v| self.secs(v, &key(path, "verify_window")));
        let rollback = Self::opt(entries, "rollback").map(|r| self.bool(r, &key(path, "rollback"))).unwrap_or(Some(true));
        if matches!(verify_window_secs, Some(None)) || rollback.is_none() {
            ok = false;
        }
        (ok && monitor.is_some()).then(|| ServiceSpec {
            compose_dir,
            containers,
            depends_on,
            monitor: monitor.unwrap_or(true),
            checks,
            verify_window_secs: verify_window_secs.flatten(),
            rollback: rollback.unwrap_or(true),
        })
    }

    fn check(&mut self, n: &Spanned<Node>, path: &str) -> Option<Check> {
        let kinds = check_kinds().join(", ");
        let entries = match &n.value {
            Node::Map(_) => self.map(n, path, "")?,
            Node::Str(s) if check_kinds().contains(&s.as_str()) => {
                self.err(loc(n), path, format!("`{s}` needs its settings"), Some(format!("write `- {s}: {}`", example(s))));
                return None;
            }
            other => {
                self.err(
                    loc(n),
                    path,
                    format!("expected a check such as `- tcp: {{ port: 1883 }}`, found {}", other.describe()),
                    Some(format!("a check is one of {kinds}")),
                );
                return None;
            }
        };
        let (kind_key, value) = match entries {
            [] => {
                self.err(loc(n), path, "an empty check", Some(format!("write one of {kinds}, e.g. `- tcp: {{ port: 1883 }}`")));
                return None;
            }
            [(k, v)] => (k, v),
            [first, rest @ ..] => {
                let kinds_here: Vec<&str> = entries.iter().map(|(k, _)| k.value.as_str()).filter(|k| check_kinds().contains(k)).collect();
                if let ([kind], Some((_, v))) = (kinds_here.as_slice(), entries.iter().find(|(k, _)| check_kinds().contains(&k.value.as_str())))
                    && v.value == Node::Null
                {
                    let fields: Vec<&str> = entries.iter().map(|(k, _)| k.value.as_str()).filter(|k| k != kind).collect();
                    self.err(
                        loc(&first.0),
                        path,
                        format!("the settings of `{kind}` ({}) are not indented under it", fields.join(", ")),
                        Some(format!("indent them two spaces further than `{kind}`, or write `- {kind}: {}`", example(kind))),
                    );
                } else {
                    let extra = rest.iter().map(|(k, _)| format!("`{}`", k.value)).collect::<Vec<_>>().join(", ");
                    self.err(
                        loc(&first.0),
                        path,
                        format!("a check has exactly one kind, found `{}` and {extra}", first.0.value),
                        Some("start each check with its own `- `".into()),
                    );
                }
                return None;
            }
        };
        let kind = kind_key.value.as_str();
        if !check_kinds().contains(&kind) {
            let hint = match closest(kind, check_kinds()) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "see the checks in docs/configuration.md".to_owned(),
            };
            self.err(loc(kind_key), path, format!("unknown check `{kind}`; expected one of {kinds}"), Some(hint));
            return None;
        }
        let path = key(path, kind);
        let shape = format!("the settings of a {kind} check, e.g. `{kind}: {}`", example(kind));
        let entries = self.map(value, &path, &shape)?;
        self.known(entries, &path, check_keys(kind));
        let before = self.errors.len();
        let place = loc(value);
        let timeout = |w: &mut Self| Self::opt(entries, "timeout_secs").and_then(|t| w.secs(t, &key(&path, "timeout_secs")));
        // Hysteresis: consecutive runs before the check's state flips (default 1, today's behaviour).
        let threshold = |w: &mut Self, name: &str| {
            Self::opt(entries, name).and_then(|t| w.uint(t, &key(&path, name), 1, MAX_THRESHOLD, "a number of consecutive runs")).map(|t| t as u32)
        };
        let (failure_threshold, success_threshold) =
            if kind == "alert" { (None, None) } else { (threshold(self, "failure_threshold"), threshold(self, "success_threshold")) };
        let check = match kind {
            "http" => {
                let url = self.req(entries, "url", &path, place, "\"http://127.0.0.1:8080/\"").and_then(|u| {
                    let s = self.text(u, &key(&path, "url"))?;
                    if let Err((e, hint)) = validate_url(&s) {
                        self.err(loc(u), &key(&path, "url"), e, Some(hint));
                    }
                    Some(s)
                });
                let expect_status = match Self::opt(entries, "expect_status") {
                    None => Some(vec![200]),
                    Some(s) => {
                        let p = key(&path, "expect_status");
                        self.list(s, &p, "HTTP status codes", "[200, 204]").map(|items| {
                            items
                                .iter()
                                .enumerate()
                                .filter_map(|(i, item)| self.uint(item, &index(&p, i), 100, 599, "an HTTP status code").map(|c| c as u16))
                                .collect::<Vec<u16>>()
                        })
                    }
                };
                let body_contains = self.opt_text(entries, "body_contains", &path);
                let basic_auth = Self::opt(entries, "basic_auth").and_then(|a| self.basic_auth(a, &key(&path, "basic_auth")));
                let insecure_skip_verify =
                    Self::opt(entries, "insecure_skip_verify").and_then(|b| self.bool(b, &key(&path, "insecure_skip_verify"))).unwrap_or(false);
                let timeout_secs = timeout(self);
                Check::Http(HttpCheck {
                    url: url.unwrap_or_default(),
                    expect_status: expect_status.unwrap_or_default(),
                    body_contains,
                    basic_auth,
                    insecure_skip_verify,
                    timeout_secs,
                    failure_threshold,
                    success_threshold,
                })
            }
            "tcp" | "mqtt" => {
                let port = if kind == "tcp" {
                    self.req(entries, "port", &path, place, "1883").and_then(|p| self.uint(p, &key(&path, "port"), 1, 65535, "a port"))
                } else {
                    Self::opt(entries, "port").map_or(Some(1883), |p| self.uint(p, &key(&path, "port"), 1, 65535, "a port"))
                };
                let host = self.opt_text(entries, "host", &path).unwrap_or_else(default_loopback);
                let timeout_secs = timeout(self);
                let port = port.unwrap_or_default() as u16;
                if kind == "tcp" {
                    Check::Tcp(TcpCheck { port, host, timeout_secs, failure_threshold, success_threshold })
                } else {
                    Check::Mqtt(MqttCheck { port, host, timeout_secs, failure_threshold, success_threshold })
                }
            }
            "container" => Check::Container(ContainerCheck { timeout_secs: timeout(self), failure_threshold, success_threshold }),
            "exec" => {
                let container = self.req(entries, "container", &path, place, "db").and_then(|c| self.text(c, &key(&path, "container")));
                let command = self.req(entries, "command", &path, place, "[pg_isready, -U, postgres]").and_then(|c| {
                    let p = key(&path, "command");
                    let argv = self.text_list(c, &p, "arguments", "[pg_isready, -U, postgres]")?;
                    if argv.is_empty() {
                        self.err(loc(c), &p, "the command is empty", Some("write the program and its arguments, e.g. [pg_isready, -U, postgres]".into()));
                    }
                    Some(argv)
                });
                let timeout_secs = timeout(self);
                Check::Exec(ExecCheck {
                    container: container.unwrap_or_default(),
                    command: command.unwrap_or_default(),
                    timeout_secs,
                    failure_threshold,
                    success_threshold,
                })
            }
            "systemd" => {
                let unit = self.req(entries, "unit", &path, place, "docker.service").and_then(|u| self.text(u, &key(&path, "unit")));
                Check::Systemd(SystemdCheck { unit: unit.unwrap_or_default(), timeout_secs: timeout(self), failure_threshold, success_threshold })
            }
            _ => {
                let alertname = self.req(entries, "alertname", &path, place, "ProbeFailed").and_then(|a| {
                    let s = self.text(a, &key(&path, "alertname"))?;
                    if s.trim().is_empty() {
                        self.err(loc(a), &key(&path, "alertname"), "alertname must not be empty", Some("see docs/alertmanager.md".into()));
                    }
                    Some(s)
                });
                let mut labels = BTreeMap::new();
                if let Some(l) = Self::opt(entries, "labels") {
                    let p = key(&path, "labels");
                    if let Some(pairs) = self.map(l, &p, "a mapping of label names to values, e.g. { job: blackbox }") {
                        for (k, v) in pairs {
                            let lp = key(&p, &k.value);
                            if k.value == "alertname" {
                                self.err(loc(k), &lp, "put the alert name in `alertname`, not in `labels`", Some("see docs/alertmanager.md".into()));
                            } else if !is_label_name(&k.value) {
                                self.err(
                                    loc(k),
                                    &lp,
                                    format!("{:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*)", k.value),
                                    Some("see docs/alertmanager.md".into()),
                                );
                            }
                            if let Some(v) = self.text(v, &lp) {
                                labels.insert(k.value.clone(), v);
                            }
                        }
                    }
                }
                Check::Alert(AlertCheck { alertname: alertname.unwrap_or_default(), labels })
            }
        };
        (self.errors.len() == before).then_some(check)
    }

    fn basic_auth(&mut self, n: &Spanned<Node>, path: &str) -> Option<BasicAuth> {
        let entries = self.map(n, path, "a mapping such as { user: admin, password_env: ADMIN_PW }")?;
        self.known(entries, path, auth_keys());
        let user = self.req(entries, "user", path, loc(n), "admin").and_then(|u| self.text(u, &key(path, "user")));
        let password_env = self.opt_text(entries, "password_env", path);
        let password_file = self.opt_text(entries, "password_file", path);
        let inline = Self::get(entries, "password").is_some();
        if password_env.is_none() == password_file.is_none() && !inline {
            self.err(
                loc(n),
                path,
                "basic_auth needs exactly one of password_env or password_file",
                Some("passwords never go inline in hosts/: name an environment variable of the agent or a file".into()),
            );
        }
        Some(BasicAuth { user: user?, password_env, password_file })
    }
}

/// A check URL: `http` or `https`, a host, an optional numeric port; no credentials.
/// The error comes with a hint.
pub fn validate_url(url: &str) -> Result<(), (String, String)> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err((format!("{url:?} has no scheme"), format!("write it as http://{url} (or https://)")));
    };
    let scheme_lc = scheme.to_ascii_lowercase();
    if scheme_lc != "http" && scheme_lc != "https" {
        return Err((
            format!("{url:?}: the scheme {scheme:?} is not supported"),
            "an http check takes http:// or https:// URLs; use tcp: for other ports".into(),
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err((format!("{url:?} holds credentials"), "never put a password in hosts/: use basic_auth with password_env or password_file".into()));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, after)) => (h, after.strip_prefix(':')),
            None => return Err((format!("{url:?}: the IPv6 address has no closing `]`"), "write it as http://[::1]:8080/".into())),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err((format!("{url:?} has no host"), format!("write it as {scheme}://127.0.0.1:8080/ or with the host name")));
    }
    if host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err((format!("{url:?}: the host has a space in it"), "a URL has no spaces; encode them or remove them".into()));
    }
    if let Some(p) = port
        && p.parse::<u16>().ok().filter(|p| *p > 0).is_none()
    {
        return Err((format!("{url:?}: the port {p:?} is not a number from 1 to 65535"), format!("e.g. {scheme}://{host}:8080/")));
    }
    Ok(())
}
