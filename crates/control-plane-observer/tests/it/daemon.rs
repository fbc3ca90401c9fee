//! The observer as a daemon: reacting to new files, surviving kill -9 mid-stream, SIGTERM.

use super::*;

#[test]
fn new_event_files_show_up_in_world_promptly() {
    let t = TempRoot::new();
    let _d = Daemon::start(&t, &[], &[]);
    wait_until("initial world", Duration::from_secs(10), || t.root().join("world/services.json").exists());
    let mut e = ev(0, 1, "n1", "containers_not_running", Some("z2m"));
    e.ts = chrono::Utc::now();
    write(&t.root(), &e);
    wait_world(&t, "the event folded", |s| s.services.get("n1").and_then(|m| m.get("z2m")).is_some());
    // A new day folder created after start is watched too (a different day than today: a
    // delivery that comes a day late).
    let mut other_day = ev(0, 2, "n2", "service_healthy", Some("web"));
    other_day.ts = chrono::Utc::now() - chrono::Duration::days(1);
    write(&t.root(), &other_day);
    wait_world(&t, "event in a new day folder folded", |s| s.services.contains_key("n2"));
}

#[test]
fn kill_9_mid_stream_then_restart_gives_the_same_world_as_a_replay() {
    let t = TempRoot::new();
    let mut n = 0u128;
    for round in 0..4 {
        let mut d = Daemon::start(&t, &[], &[]);
        for i in 0..60i64 {
            n += 1;
            let kind = ["service_healthy", "http_check_failed", "containers_not_running"][(n % 3) as usize];
            write(&t.root(), &ev(round * 100 + i, n, ["n1", "n2", "n3"][(n % 3) as usize], kind, Some(["a", "b"][(n % 2) as usize])));
        }
        // Kill at an arbitrary point of folding.
        d.0.kill().unwrap();
        d.0.wait().unwrap();
    }
    // One clean pass to finish whatever the last kill interrupted.
    once(&t, &[], &[]);
    let after_crashes = services(&t).services;
    std::fs::remove_file(t.root().join("state/observer_checkpoint.json")).unwrap();
    once(&t, &[], &[]);
    assert_eq!(after_crashes, services(&t).services);
    let total: usize = after_crashes.values().map(|m| m.len()).sum();
    assert_eq!(total, 6);
}

#[test]
fn sigterm_is_a_clean_shutdown() {
    let t = TempRoot::new();
    let mut d = Daemon::start(&t, &[], &[]);
    wait_until("heartbeat written", Duration::from_secs(10), || t.root().join("state/heartbeat/observer.json").exists());
    let status = Command::new("kill").args(["-TERM", &d.0.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = wait_for("observer exit", Duration::from_secs(10), || d.0.try_wait().unwrap());
    assert!(code.success(), "exit status {code:?}");
}
