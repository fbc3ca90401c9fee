//! The invariants of ARCHITECTURE.md ("Invariants"), checked on the workspace's source.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use tidy::{Offence, crates, cycles, data_root_paths, long_file, module_path, module_refs, report, rust_files, top_modules, workspace};

fn rel(ws: &Path, p: &Path) -> String {
    p.strip_prefix(ws).unwrap_or(p).display().to_string()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// Production source of a crate: `src/**/*.rs` without `tests.rs` files (test modules inside
/// files are skipped by the lexer).
fn production_files(krate: &Path) -> Vec<std::path::PathBuf> {
    rust_files(&krate.join("src")).into_iter().filter(|p| p.file_name().is_none_or(|n| n != "tests.rs")).collect()
}

fn check(result: Result<(), String>) {
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// 1. Only homelab-store names a path under the data root.
#[test]
fn only_the_store_names_data_root_paths() {
    let ws = workspace();
    let mut found: Vec<Offence> = Vec::new();
    for (name, dir) in crates(&ws).into_iter().filter(|(name, dir)| name != "homelab-store" && dir.starts_with(ws.join("crates"))) {
        assert!(!name.is_empty());
        for f in production_files(&dir) {
            found.extend(data_root_paths(&rel(&ws, &f), &read(&f)));
        }
    }
    check(report("paths under the data root outside homelab-store (add a named function to homelab_store::DataRoot)", &found));
}

/// 2. homelab-core does no IO, reads no clock and has no async.
#[test]
fn core_has_no_io_clock_or_async() {
    let ws = workspace();
    let mut found = Vec::new();
    for f in production_files(&ws.join("crates/homelab-core")) {
        found.extend(tidy::core_io(&rel(&ws, &f), &read(&f)));
    }
    check(report("IO, clock or async in homelab-core (pass time and data in as parameters)", &found));
}

/// 3. No long file without a reason.
#[test]
fn no_long_file_without_a_reason() {
    let ws = workspace();
    let found: Vec<Offence> = ["crates", "tests"].iter().flat_map(|d| rust_files(&ws.join(d))).filter_map(|f| long_file(&rel(&ws, &f), &read(&f))).collect();
    check(report("long files", &found));
}

/// 4. No import circles between the top-level modules of one crate.
#[test]
fn no_import_cycles_between_modules() {
    let ws = workspace();
    let mut found = Vec::new();
    for (name, dir) in crates(&ws) {
        let src = dir.join("src");
        let modules = top_modules(&src);
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in production_files(&dir) {
            let path = module_path(f.strip_prefix(&src).unwrap_or(&f));
            let Some(top) = path.first().filter(|m| modules.contains(*m)) else { continue };
            for to in module_refs(&path, &read(&f), &modules) {
                if &to != top {
                    graph.entry(top.clone()).or_default().insert(to);
                }
            }
        }
        found.extend(cycles(&graph).into_iter().map(|c| format!("{name}: {c}")));
    }
    check(report("import cycles between modules (move what both need into one of them, or a third module)", &found));
}

/// 5. Channels run operator commands only through the operations layer.
#[test]
fn channels_go_through_the_operations_layer() {
    let ws = workspace();
    let mut found = Vec::new();
    for krate in ["control-plane-ui", "homelab-telegram", "hcp"] {
        for f in production_files(&ws.join("crates").join(krate)) {
            found.extend(tidy::channel_commands(&rel(&ws, &f), &read(&f)));
        }
    }
    check(report("a channel doing an operator command itself (call homelab_ops::Ops instead)", &found));
}
