use super::*;

fn paths(src: &str) -> Vec<String> {
    data_root_paths("x.rs", src).into_iter().map(|o| o.to_string()).collect()
}

#[test]
fn a_path_constant_outside_the_store_fails() {
    let found = paths("const X: &str = \"state/foo.json\";\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("x.rs:1: names a path under the data root: \"state/foo.json\""), "{found:?}");
}

#[test]
fn built_paths_fail() {
    for line in [
        "let p = root.join(\"world\");",
        "let p = root.path().join(\"state/heartbeat\");",
        "let rel = format!(\"actions/{state}/{name}\");",
        "let p = format!(\"{}/quarantine/actions\", root.display());",
        "let p = std::path::Path::new(\"events\");",
        "let p = PathBuf::from(\"audit\");",
        "dir.push(\"state\");",
        "let p = root.join(\"world/\");",
        "let p = r#\"world/drift.json\"#;",
    ] {
        assert_eq!(paths(line).len(), 1, "{line}");
    }
}

#[test]
fn doc_comments_prose_and_words_pass() {
    for src in [
        "/// Reads world/drift.json, written by the supervisor.\nfn f() {}\n",
        "//! `state/telegram.json`: what the bot has sent.\n",
        "// see \"world/drift.json\"\nfn f() {}\n",
        "/* state/x.json */ fn f() {}\n",
        "tracing::info!(\"world/ updated from the summary\");",
        "let e = format!(\"cannot list actions/{state}\");",
        "let v = json!({ \"actions\": actions, \"quarantine\": q });",
        "family(&mut registry, \"actions\", \"Action files on disk, by state\");",
        "let s = \"it's\"; let c = '\"'; let t = \"world\";",
        "let world = errors.iter().filter(|e| e.file.starts_with(\"world/\"));",
        "let a = format!(\"<a href=\\\"{base}/actions/{id}\\\">{id}</a>\");",
    ] {
        assert_eq!(paths(src), Vec::<String>::new(), "{src}");
    }
}

#[test]
fn test_code_is_skipped() {
    let src = "fn f() {}\n#[cfg(test)]\nmod tests {\n    const X: &str = \"state/foo.json\";\n}\nconst Y: &str = \"world/y.json\";\n";
    let found = paths(src);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("x.rs:6:"), "{found:?}");
    assert!(paths("#![cfg(test)]\nconst X: &str = \"state/foo.json\";\n").is_empty());
    assert!(paths("#[cfg(test)]\n#[allow(dead_code)]\nfn helper() -> &'static str { \"state/x\" }\n").is_empty());
}

#[test]
fn core_io_is_found_outside_comments_strings_and_tests() {
    let src = "use std::fs;\n// Utc::now in a comment\nlet s = \"tokio\";\nasync fn f() { g().await }\nlet t = chrono::Utc::now();\n#[cfg(test)]\nmod tests { fn n() { std::time::Instant::now(); } }\n";
    let found: Vec<usize> = core_io("c.rs", src).iter().map(|o| o.line).collect();
    assert_eq!(found, vec![1, 4, 4, 5]);
    assert!(core_io("c.rs", "fn now(at: Timestamp) -> Timestamp { at }\nlet fsx = 1;\n").is_empty());
}

#[test]
fn long_files_need_a_reason() {
    let long = "fn f() {}\n".repeat(MAX_LINES + 1);
    assert!(long_file("l.rs", &long).is_some());
    assert!(long_file("l.rs", &format!("//! Docs.\n// tidy: long file: handlers not yet split, issue 22\n{long}")).is_none());
    assert!(long_file("l.rs", &format!("// tidy: long file:\n{long}")).is_some(), "an empty reason is no reason");
    assert!(long_file("l.rs", &"fn f() {}\n".repeat(MAX_LINES)).is_none());
}

#[test]
fn module_paths() {
    let p = |s: &str| module_path(Path::new(s));
    assert_eq!(p("lib.rs"), Vec::<String>::new());
    assert_eq!(p("a.rs"), ["a"]);
    assert_eq!(p("a/mod.rs"), ["a"]);
    assert_eq!(p("a/b.rs"), ["a", "b"]);
    assert_eq!(p("a/lib.rs"), ["a", "lib"]);
}

#[test]
fn references_between_top_level_modules() {
    let modules: BTreeSet<String> = ["a", "b", "c", "d"].map(str::to_owned).into();
    let path = |s: &str| vec![s.to_owned()];
    let refs = |p: &[String], src: &str| module_refs(p, src, &modules).into_iter().collect::<Vec<_>>();
    assert_eq!(refs(&path("a"), "use crate::b::X;\nfn f() { super::c::g(); crate::a::h(); }"), ["b", "c"]);
    assert_eq!(refs(&path("a"), "use crate::{b::X, d, fmt};"), ["b", "d"]);
    assert_eq!(refs(&["a".into(), "x".into()], "use super::y;\nuse super::super::c;"), ["c"]);
    assert_eq!(refs(&path("a"), "// crate::b\nlet s = \"crate::c\";\n#[cfg(test)]\nmod tests { use crate::d; }"), Vec::<String>::new());
    assert_eq!(refs(&path("a"), "macro_rules! m { () => { $crate::b::f() } }"), Vec::<String>::new());
}

#[test]
fn cycles_are_listed_once_each() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
        }
        g
    };
    assert!(cycles(&g(&[("a", "b"), ("b", "c")])).is_empty());
    assert_eq!(cycles(&g(&[("a", "b"), ("b", "a"), ("c", "a")])), ["a -> b -> a (strongly connected: a, b)"]);
    assert_eq!(
        cycles(&g(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "b"), ("x", "y"), ("y", "x")])),
        ["a -> b -> c -> a (strongly connected: a, b, c)", "x -> y -> x (strongly connected: x, y)"]
    );
}

#[test]
fn a_channel_moving_an_action_itself_fails() {
    let src = "fn f(root: &DataRoot) {\n    root.transition(&id, Pending, Approved, now, by, None, |_| {});\n}\n// root.write_silence(&s)\n#[cfg(test)]\nmod tests { fn t() { root.write_silence(&s); } }\n";
    let found: Vec<usize> = channel_commands("ui.rs", src).iter().map(|o| o.line).collect();
    assert_eq!(found, [2]);
    assert!(channel_commands("ui.rs", "let ops = Ops::new(root); ops.decide(&actor, &id, Decision::APPROVE);").is_empty());
}
