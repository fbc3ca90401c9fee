//! `hcp check-now NODE SERVICE [--wait 10s]`: ask a node's agent to run a service's checks at
//! once. Writes `state/check_now/<node>/<service>.json` (the file the UI's button and
//! `POST /api/v1/nodes/{node}/services/{service}/check-now` write too); the agent serves it
//! within a second or so and emits the result as fresh events; the file goes once served (a
//! local agent removes it, the ingest endpoint does when a remote agent's result arrives), which
//! is what `--wait` waits for.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use homelab_core::duration::parse_duration;
use homelab_core::{NodeName, ServiceName};
use homelab_store::DataRoot;

use crate::RootArg;

#[derive(Debug, clap::Args)]
pub struct CheckNowArgs {
    #[arg(skip)]
    pub root: RootArg,
    /// The node, as in hosts/.
    pub node: String,
    /// The service on that node.
    pub service: String,
    /// Wait until the agent has served the request (exit 1 if it has not within this time).
    #[arg(long, value_parser = parse_duration)]
    pub wait: Option<Duration>,
}

pub fn run(args: &CheckNowArgs) -> anyhow::Result<ExitCode> {
    let node = NodeName::parse(&args.node).map_err(|e| anyhow::anyhow!("node {:?}: {e}", args.node))?;
    let service = ServiceName::parse(&args.service).map_err(|e| anyhow::anyhow!("service {:?}: {e}", args.service))?;
    let root = DataRoot::open_existing(&args.root.root).with_context(|| format!("cannot open the data root {}", args.root.root.display()))?;
    let (ops, actor) = crate::actions::local_operator(&root);
    let req = ops.check_now(&actor, &node, &service)?;
    println!("asked {}'s agent to check {} now; the result shows as fresh events", args.node, args.service);
    let Some(wait) = args.wait else { return Ok(ExitCode::SUCCESS) };
    let deadline = Instant::now() + wait;
    loop {
        let pending = root.pending_check_now(&args.node)?;
        if !pending.iter().any(|r| r.service == req.service && r.requested_at == req.requested_at) {
            println!("served");
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            eprintln!("not served within {wait:?}: is the agent of {} running with this data root (or connected)?", args.node);
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_request_and_waits_for_it_to_be_served() {
        let tmp = tempfile::tempdir().unwrap();
        let root = DataRoot::open(tmp.path()).unwrap();
        let args = |service: &str, wait: Option<Duration>| CheckNowArgs {
            root: RootArg { root: tmp.path().into() },
            node: "edge-1".into(),
            service: service.into(),
            wait,
        };
        assert_eq!(run(&args("web", None)).unwrap(), ExitCode::SUCCESS);
        let pending = root.pending_check_now("edge-1").unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].requested_by.starts_with("cli:"), "{pending:?}");
        // Nobody serves it: --wait gives up with exit 1.
        assert_eq!(run(&args("web", Some(Duration::from_millis(200)))).unwrap(), ExitCode::FAILURE);
        // An "agent" that serves it: --wait returns 0.
        let served = root.clone();
        let agent = std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(10) {
                for r in served.pending_check_now("edge-1").unwrap() {
                    served.finish_check_now(&r).unwrap();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        assert_eq!(run(&args("web", Some(Duration::from_secs(10)))).unwrap(), ExitCode::SUCCESS);
        assert!(run(&args("../x", None)).is_err());
        drop(agent);
    }
}
