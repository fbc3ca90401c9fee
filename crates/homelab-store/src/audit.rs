//! The audit log: `audit/YYYY-MM-DD.jsonl` under the data root, one JSON record per line.
//!
//! **Why append, not temp + rename.** Every other file of the data root is replaced whole. An
//! audit log only ever grows, and replacing it whole would rewrite the day's file on every record
//! (quadratic bytes), and two writers (the UI, `hcp`) would each rename their own copy into place,
//! the last one silently dropping the other's record. Appending with `O_APPEND` under an exclusive
//! `flock` never loses a record, never rewrites one already written, and `fsync` after each line
//! makes the record durable before the caller answers. The only thing a crash can leave is a torn
//! *last* line: readers skip a line that does not end in `\n` or does not parse, and the next
//! writer first ends such a line, so its own record always starts on a line of its own.
//!
//! Records never hold a secret: names, roles, addresses, action ids, token ids, outcomes.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::DataRoot;
use crate::atomic::sync_dir;

/// The folder below the data root.
pub const AUDIT_DIR: &str = "audit";
/// Default retention (`AUDIT_RETENTION_DAYS`).
pub const DEFAULT_RETENTION_DAYS: u32 = 90;

/// A day as the audit log names it, `YYYY-MM-DD` exactly (`2026-6-1` is refused).
pub fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().filter(|_| s.len() == 10)
}

/// `AUDIT_RETENTION_DAYS` from the environment (default [`DEFAULT_RETENTION_DAYS`]), for the
/// writers that are not the UI (`hcp`, Telegram, the supervisor).
pub fn retention_from_env() -> u32 {
    std::env::var("AUDIT_RETENTION_DAYS").ok().and_then(|v| v.trim().parse().ok()).filter(|d| *d > 0).unwrap_or(DEFAULT_RETENTION_DAYS)
}

/// One audited event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    pub time: DateTime<Utc>,
    /// The user (`alice`), `token` for the bootstrap UI token, `?` for an unknown login name.
    pub who: String,
    /// `viewer`, `operator`, `admin`, or empty when nobody was identified.
    #[serde(default)]
    pub role: String,
    /// `ui` (password/session), `api` (bearer), `proxy`, `telegram`, `cli`.
    pub channel: String,
    /// Source address (`192.0.2.1`), `telegram:<user id>`, or `local` for the CLI.
    #[serde(default)]
    pub source: String,
    /// `login`, `logout`, `approve`, `reject`, `retry`, `check_now`, `silence`, `silence_expire`,
    /// `user_add`, `user_passwd`, `user_remove`, `user_set`, `user_logout`, `token_create`,
    /// `token_revoke`, `token_refused`.
    pub what: String,
    /// What it was about: an action id, a user name, a token id.
    #[serde(default)]
    pub target: String,
    /// `ok`, `refused` (not allowed, wrong credentials), `rate_limited`, `conflict` (no longer
    /// pending, nothing to retry), `failed` (could not be written).
    pub outcome: String,
    /// A short reason without secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditRecord {
    pub fn new(who: &str, role: &str, channel: &str, source: &str, what: &str, target: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            time: Utc::now(),
            who: who.to_owned(),
            role: role.to_owned(),
            channel: channel.to_owned(),
            source: source.to_owned(),
            what: what.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail: None,
        }
    }

    pub fn detail(mut self, d: impl Into<String>) -> AuditRecord {
        self.detail = Some(homelab_core::one_line(&d.into(), 300));
        self
    }
}

/// What a read of the log found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AuditRead {
    pub records: Vec<AuditRecord>,
    /// Lines that did not parse or were torn (no final newline): skipped.
    pub skipped: usize,
}

/// Filters for [`DataRoot::read_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub who: Option<String>,
    pub what: Option<String>,
    pub outcome: Option<String>,
    pub target: Option<String>,
}

impl AuditFilter {
    pub fn keeps(&self, r: &AuditRecord) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w.is_empty() || w == have);
        eq(&self.who, &r.who) && eq(&self.what, &r.what) && eq(&self.outcome, &r.outcome) && eq(&self.target, &r.target)
    }
}

fn day_name(d: NaiveDate) -> String {
    format!("{}.jsonl", d.format("%Y-%m-%d"))
}

impl DataRoot {
    pub fn audit_dir(&self) -> PathBuf {
        self.path().join(AUDIT_DIR)
    }

    /// Appends one record to its day's file and fsyncs it. On the first record of a day (the
    /// file is created), files older than `retention_days` are removed.
    pub fn append_audit(&self, rec: &AuditRecord, retention_days: u32) -> io::Result<()> {
        let dir = self.audit_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(day_name(rec.time.date_naive()));
        let created = !path.exists();
        let mut f = std::fs::OpenOptions::new().read(true).append(true).create(true).mode(0o640).open(&path)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).map_err(io::Error::from)?;
        let mut line = serde_json::to_vec(rec).map_err(io::Error::other)?;
        line.push(b'\n');
        // A torn last line (a crash mid-write) is ended first, so this record stands alone.
        let len = f.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        f.write_all(&line)?;
        f.sync_data()?;
        if created {
            sync_dir(&dir)?;
            let _ = self.prune_audit(retention_days, rec.time.date_naive());
        }
        Ok(())
    }

    /// Removes day files whose day ended `retention_days` or more days before `today`.
    pub fn prune_audit(&self, retention_days: u32, today: NaiveDate) -> io::Result<usize> {
        let mut removed = 0;
        for day in self.audit_days()? {
            if (today - day).num_days() >= i64::from(retention_days.max(1)) {
                std::fs::remove_file(self.audit_dir().join(day_name(day)))?;
                removed += 1;
            }
        }
        if removed > 0 {
            sync_dir(&self.audit_dir())?;
        }
        Ok(removed)
    }

    /// The days that have a file, oldest first.
    pub fn audit_days(&self) -> io::Result<Vec<NaiveDate>> {
        let mut days: Vec<NaiveDate> = crate::list_names(&self.audit_dir())?
            .iter()
            .filter_map(|n| n.strip_suffix(".jsonl"))
            .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .collect();
        days.sort();
        Ok(days)
    }

    /// The records of one day that pass `filter`, in the order written.
    pub fn read_audit(&self, day: NaiveDate, filter: &AuditFilter) -> io::Result<AuditRead> {
        let bytes = match std::fs::read(self.audit_dir().join(day_name(day))) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(AuditRead::default()),
            Err(e) => return Err(e),
        };
        let mut out = AuditRead::default();
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            out.skipped += 1; // a torn last line
        }
        for line in bytes[..complete].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<AuditRecord>(line) {
                Ok(r) if filter.keeps(&r) => out.records.push(r),
                Ok(_) => {}
                Err(_) => out.skipped += 1,
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_survive_a_torn_line_and_old_days_go() {
        let (_tmp, root) = DataRoot::temp();
        let r1 = AuditRecord::new("alice", "admin", "ui", "192.0.2.1", "login", "alice", "ok");
        root.append_audit(&r1, 90).unwrap();
        let day = r1.time.date_naive();
        let path = root.audit_dir().join(day_name(day));
        // A crash mid-write leaves half a line.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"time\":\"20").unwrap();
        let read = root.read_audit(day, &AuditFilter::default()).unwrap();
        assert_eq!((read.records.len(), read.skipped), (1, 1));
        let r2 = AuditRecord::new("bob", "operator", "api", "192.0.2.2", "approve", "x", "refused").detail("not in group web");
        root.append_audit(&r2, 90).unwrap();
        let read = root.read_audit(day, &AuditFilter::default()).unwrap();
        assert_eq!(read.records, vec![r1.clone(), r2.clone()]);
        assert_eq!(read.skipped, 1, "the torn line stays skipped, the new record is whole");
        let only = root.read_audit(day, &AuditFilter { who: Some("bob".into()), ..Default::default() }).unwrap();
        assert_eq!(only.records, vec![r2]);

        // Retention: a file 91 days old goes when a new day starts.
        let old = day - chrono::Duration::days(91);
        std::fs::write(root.audit_dir().join(day_name(old)), b"").unwrap();
        let keep = day - chrono::Duration::days(10);
        std::fs::write(root.audit_dir().join(day_name(keep)), b"").unwrap();
        assert_eq!(root.prune_audit(90, day).unwrap(), 1);
        assert_eq!(root.audit_days().unwrap(), vec![keep, day]);
    }

    #[test]
    fn concurrent_appends_never_interleave() {
        let (_tmp, root) = DataRoot::temp();
        let at = Utc::now();
        std::thread::scope(|s| {
            for t in 0..8 {
                let root = root.clone();
                s.spawn(move || {
                    for i in 0..25 {
                        let mut r = AuditRecord::new(&format!("u{t}"), "admin", "cli", "local", "approve", &format!("a{i}"), "ok").detail("x".repeat(200));
                        r.time = at;
                        root.append_audit(&r, 90).unwrap();
                    }
                });
            }
        });
        let read = root.read_audit(at.date_naive(), &AuditFilter::default()).unwrap();
        assert_eq!((read.records.len(), read.skipped), (200, 0));
    }
}
