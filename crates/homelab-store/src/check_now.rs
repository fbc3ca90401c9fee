//! `state/check_now/<node>/<service>.json`: an operator's request that a node's agent run a
//! service's checks at once (UI button, `POST /api/v1/nodes/{node}/services/{service}/check-now`,
//! `hcp check-now NODE SERVICE`). One file per node and service, written atomically: asking
//! twice before the agent served it is one request. The agent polls its node's folder (local
//! mode) or gets the list in every ingest answer (remote mode), runs the checks, emits their
//! events, and the file is removed (by the agent, or by the ingest once those events arrive),
//! but only if it still holds the request that was served (a newer one written meanwhile is
//! served next). A file that does not parse, or names another node or service than its place,
//! is moved to `quarantine/check_now/<node>-<file>` with a `.reason` beside it.

use std::io;
use std::path::PathBuf;

use homelab_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{DataRoot, list_names, write_atomic};

/// The folder, relative to the data root.
pub const CHECK_NOW_DIR: &str = "state/check_now";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckNowRequest {
    pub node: String,
    pub service: String,
    /// Who asked (`ui:alice`, `cli:ops`, …).
    pub requested_by: String,
    #[serde(with = "homelab_core::ts_format")]
    #[schema(value_type = String, format = DateTime)]
    pub requested_at: Timestamp,
}

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

impl DataRoot {
    pub fn check_now_dir(&self, node: &str) -> PathBuf {
        self.path().join(CHECK_NOW_DIR).join(node)
    }

    /// Writes (or replaces) the request for `req.node` / `req.service`.
    pub fn request_check_now(&self, req: &CheckNowRequest) -> io::Result<()> {
        homelab_core::validate_name(&req.node).map_err(invalid)?;
        homelab_core::validate_name(&req.service).map_err(invalid)?;
        let dir = self.check_now_dir(&req.node);
        std::fs::create_dir_all(&dir)?;
        write_atomic(&dir.join(format!("{}.json", req.service)), &serde_json::to_vec_pretty(req).map_err(io::Error::other)?)
    }

    /// The requests waiting for `node`'s agent, oldest first. A file that does not parse, or
    /// names another node or service than its place, is quarantined (never served); one that
    /// cannot be read now is skipped with a warning.
    pub fn pending_check_now(&self, node: &str) -> io::Result<Vec<CheckNowRequest>> {
        if homelab_core::validate_name(node).is_err() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for name in list_names(&self.check_now_dir(node))? {
            let Some(service) = name.strip_suffix(".json").filter(|s| homelab_core::validate_name(s).is_ok()) else { continue };
            let bad = match self.read_json::<CheckNowRequest>(&format!("{CHECK_NOW_DIR}/{node}/{service}.json")) {
                Ok(Some(r)) if r.node == node && r.service == service => {
                    out.push(r);
                    continue;
                }
                Ok(Some(r)) => format!("names {}/{}, not {node}/{service}", r.node, r.service),
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => e.to_string(),
                Err(e) => {
                    tracing::warn!(node, service, error = %e, "cannot read a check-now request now; skipped");
                    continue;
                }
            };
            match self.quarantine_check_now(node, &name, &bad) {
                Ok(Some(to)) => tracing::warn!(node, service, reason = %bad, file = %to.display(), "bad check-now request quarantined"),
                Ok(None) => {}
                Err(e) => tracing::warn!(node, service, reason = %bad, error = %e, "bad check-now request; cannot quarantine it"),
            }
        }
        out.sort_by(|a, b| a.requested_at.cmp(&b.requested_at).then_with(|| a.service.cmp(&b.service)));
        Ok(out)
    }

    /// Removes a served request, unless a newer one replaced it meanwhile. Gone already: fine.
    pub fn finish_check_now(&self, served: &CheckNowRequest) -> io::Result<()> {
        if homelab_core::validate_name(&served.node).is_err() || homelab_core::validate_name(&served.service).is_err() {
            return Ok(());
        }
        let rel = format!("{CHECK_NOW_DIR}/{}/{}.json", served.node, served.service);
        match self.read_json::<CheckNowRequest>(&rel) {
            Ok(Some(now)) if now.requested_at != served.requested_at => return Ok(()),
            Ok(None) => return Ok(()),
            _ => {}
        }
        match std::fs::remove_file(self.path().join(rel)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Moves `state/check_now/<node>/<name>` to `quarantine/check_now/<node>-<name>` (a `.1`,
    /// `.2` … when taken), its `.reason` written first. `None` when someone else moved it first.
    fn quarantine_check_now(&self, node: &str, name: &str, reason: &str) -> io::Result<Option<PathBuf>> {
        let text = format!("unreadable check-now request (from {CHECK_NOW_DIR}/{node}/{name}): {reason}");
        match self.move_to_quarantine("check_now", &self.check_now_dir(node).join(name), &format!("{node}-{name}"), &text) {
            Ok(to) => Ok(Some(to)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_written_listed_and_removed_once_served() {
        let (_tmp, root) = DataRoot::temp();
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&chrono::Utc);
        let req =
            |service: &str, ts: &str| CheckNowRequest { node: "edge-1".into(), service: service.into(), requested_by: "cli:ops".into(), requested_at: at(ts) };
        root.request_check_now(&req("web", "2026-05-27T14:00:01Z")).unwrap();
        root.request_check_now(&req("db", "2026-05-27T14:00:00Z")).unwrap();
        assert!(root.request_check_now(&CheckNowRequest { node: "../x".into(), ..req("web", "2026-05-27T14:00:00Z") }).is_err());
        let pending = root.pending_check_now("edge-1").unwrap();
        assert_eq!(pending.iter().map(|r| r.service.as_str()).collect::<Vec<_>>(), ["db", "web"]);
        assert!(root.pending_check_now("nas-1").unwrap().is_empty());
        // A newer request for web replaced the one being served: it stays.
        root.request_check_now(&req("web", "2026-05-27T14:00:05Z")).unwrap();
        root.finish_check_now(&pending[1]).unwrap();
        root.finish_check_now(&pending[0]).unwrap();
        let left = root.pending_check_now("edge-1").unwrap();
        assert_eq!(left, [req("web", "2026-05-27T14:00:05Z")]);
        root.finish_check_now(&left[0]).unwrap();
        root.finish_check_now(&left[0]).unwrap();
        assert!(root.pending_check_now("edge-1").unwrap().is_empty());
    }

    #[test]
    fn a_bad_request_file_is_quarantined_with_its_reason_and_never_listed() {
        let (_tmp, root) = DataRoot::temp();
        let dir = root.check_now_dir("edge-1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("web.json"), b"{not json").unwrap();
        // In edge-1's folder but for nas-1: never served to either.
        let other = CheckNowRequest { node: "nas-1".into(), service: "db".into(), requested_by: "cli:ops".into(), requested_at: chrono::Utc::now() };
        std::fs::write(dir.join("db.json"), serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(root.pending_check_now("edge-1").unwrap().is_empty());
        assert!(list_names(&dir).unwrap().is_empty(), "both moved out");
        let listing = root.quarantine_listing(10).unwrap();
        assert_eq!(listing.by_kind["check_now"], 2);
        let reasons: Vec<_> = listing.recent.iter().map(|e| (e.file.as_str(), e.reason.as_str())).collect();
        assert!(reasons.iter().any(|(f, r)| *f == "quarantine/check_now/edge-1-web.json" && r.contains("state/check_now/edge-1/web.json")), "{reasons:?}");
        assert!(reasons.iter().any(|(f, r)| *f == "quarantine/check_now/edge-1-db.json" && r.contains("names nas-1/db, not edge-1/db")), "{reasons:?}");
        // The same name again gets a number.
        std::fs::write(dir.join("web.json"), b"[]").unwrap();
        assert!(root.pending_check_now("edge-1").unwrap().is_empty());
        assert!(root.quarantine_kind_dir("check_now").join("edge-1-web.json.1").exists());
    }
}
