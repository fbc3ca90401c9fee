//! `hcp check --hosts DIR`: validates every `services.yaml` the way `monit -t` does: every
//! problem of every file on its own line as `file:line:column: field.path: message (hint: …)`,
//! exit 1 if there is any error; warnings (an empty file, a node without services) are printed
//! as `file:line:column: warning: …` and do not fail the check; else one line saying what is in
//! force.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use homelab_core::desired::{ConfigError, DesiredState};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// The desired-state folder holding `<node>/services.yaml`.
    #[arg(long, env = "HOSTS_DIR", default_value = "hosts", value_name = "DIR")]
    pub hosts: PathBuf,
}

/// What a check found.
#[derive(Debug)]
pub struct Report {
    pub files: usize,
    pub desired: DesiredState,
    pub errors: Vec<ConfigError>,
    /// Valid, but probably not what was meant (an empty file, no services).
    pub warnings: Vec<ConfigError>,
}
impl Report {
    /// The one-line summary for a clean run.
    pub fn summary(&self) -> String {
        let nodes = self.desired.hosts.len();
        let services: usize = self.desired.hosts.values().map(|h| h.services.len()).sum();
        let monitored: usize = self.desired.hosts.values().map(|h| h.monitored().count()).sum();
        let checks: usize = self.desired.hosts.values().flat_map(|h| h.monitored()).map(|(_, s)| s.checks.len()).sum();
        format!(
            "OK: {} file{}, {nodes} node{}, {services} service{} ({monitored} monitored), {checks} check{}",
            self.files,
            plural(self.files),
            plural(nodes),
            plural(services),
            plural(checks)
        )
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Reads and validates hosts/. An unreadable or missing folder is an error of its own.
pub fn check_hosts(hosts: &std::path::Path) -> anyhow::Result<Report> {
    let parsed = homelab_store::hosts::read_hosts(hosts).map_err(|e| anyhow::anyhow!("{e} (hint: pass --hosts DIR or set HOSTS_DIR)"))?;
    let files = parsed.len();
    let mut warnings = Vec::new();
    for file in parsed.values().flatten() {
        // The text again, for the empty-file warning (a parse already read it once).
        let text = std::fs::read_to_string(&file.file).unwrap_or_default();
        warnings.extend(homelab_core::desired::host_file_warnings(file, &text));
    }
    let load = homelab_store::hosts::merge_hosts(parsed, &BTreeMap::new());
    let mut errors = load.errors;
    if files == 0 {
        errors.push(ConfigError {
            file: hosts.display().to_string(),
            line: 0,
            column: 0,
            message: "no <node>/services.yaml found".into(),
            hint: Some("each node gets a folder named after it holding services.yaml".into()),
        });
    }
    Ok(Report { files, desired: load.desired, errors, warnings })
}

/// A warning as `hcp check` prints it: `file:line:column: warning: message (hint: …)`.
pub fn warning_line(w: &ConfigError) -> String {
    let mut line = format!("{}:{}:{}: warning: {}", w.file, w.line, w.column, w.message);
    if let Some(h) = &w.hint {
        line.push_str(&format!(" (hint: {h})"));
    }
    line
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check_hosts(&args.hosts)?;
    for e in &report.errors {
        println!("{e}");
    }
    for w in &report.warnings {
        println!("{}", warning_line(w));
    }
    if report.errors.is_empty() {
        let warned = match report.warnings.len() {
            0 => String::new(),
            n => format!(" ({n} warning{})", plural(n)),
        };
        println!("{}: {}{warned}", args.hosts.display(), report.summary());
        return Ok(ExitCode::SUCCESS);
    }
    let bad: std::collections::BTreeSet<&str> = report.errors.iter().map(|e| e.file.as_str()).collect();
    eprintln!("{}: {} error{} in {} file{}", args.hosts.display(), report.errors.len(), plural(report.errors.len()), bad.len(), plural(bad.len()));
    Ok(ExitCode::FAILURE)
}
