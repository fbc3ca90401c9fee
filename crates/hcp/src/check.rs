//! `hcp check --hosts DIR`: validates every `services.yaml` the way `monit -t` does: every
//! problem on its own line as `file:line:column: message (hint: …)`, exit 1 if there is any,
//! else one line saying what is in force.

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
    let files = homelab_store::hosts::read_hosts(hosts).map_err(|e| anyhow::anyhow!("{e} (hint: pass --hosts DIR or set HOSTS_DIR)"))?.len();
    let load = homelab_store::hosts::load_hosts(hosts, &BTreeMap::new())?;
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
    Ok(Report { files, desired: load.desired, errors })
}

/// The YAML parser repeats the location inside its message ("error: line 8 column 5: …");
/// the location is already in front, so that prefix goes.
pub fn tidy(e: &ConfigError) -> ConfigError {
    let mut e = e.clone();
    if let Some(rest) = e.message.strip_prefix("error: ") {
        let rest = match rest.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
            Some((loc, msg)) if loc.split(" column ").all(|n| n.chars().all(|c| c.is_ascii_digit())) => msg,
            _ => rest,
        };
        e.message = rest.to_owned();
    }
    e
}

pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check_hosts(&args.hosts)?;
    if report.errors.is_empty() {
        println!("{}: {}", args.hosts.display(), report.summary());
        return Ok(ExitCode::SUCCESS);
    }
    for e in &report.errors {
        println!("{}", tidy(e));
    }
    let bad: std::collections::BTreeSet<&str> = report.errors.iter().map(|e| e.file.as_str()).collect();
    eprintln!("{}: {} error{} in {} file{}", args.hosts.display(), report.errors.len(), plural(report.errors.len()), bad.len(), plural(bad.len()));
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_drops_the_repeated_location() {
        let e = |m: &str| ConfigError { file: "f".into(), line: 8, column: 5, message: m.into(), hint: None };
        let cases = [
            ("error: line 8 column 5: unknown field `checkz`", "unknown field `checkz`"),
            ("error: something else", "something else"),
            ("dependency cycle: a -> b -> a", "dependency cycle: a -> b -> a"),
        ];
        for (raw, want) in cases {
            assert_eq!(tidy(&e(raw)).message, want, "{raw}");
        }
    }
}
