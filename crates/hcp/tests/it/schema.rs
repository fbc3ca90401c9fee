//! `hcp schema`: the committed docs/schemas/ are exactly what the types generate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{hcp, text};

const REGENERATE: &str = "regenerate them with `cargo run -p hcp -- schema --out docs/schemas` and commit the result";

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/schemas")
}

/// The `*.json` files of a folder, by name.
fn json_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn committed_schemas_are_up_to_date() {
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("schemas");
    let out = hcp(&["schema", "--out", out_dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let generated = json_files(&out_dir);
    let committed = json_files(&committed_dir());
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "docs/schemas/ does not hold exactly the generated files; {REGENERATE}"
    );
    for (name, bytes) in &generated {
        assert!(
            committed[name] == *bytes,
            "docs/schemas/{name} differs from what the types generate; {REGENERATE}\n--- generated:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn without_out_it_prints_every_schema_as_one_object() {
    let out = hcp(&["schema"]);
    assert!(out.status.success(), "{}", text(&out));
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    let names: Vec<&str> = all.keys().map(String::as_str).collect();
    for name in ["event.json", "world-services.json", "world-nodes.json", "action.json", "heartbeat.json", "observer-checkpoint.json"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    assert_eq!(all["action.json"]["title"], "Action");
}
