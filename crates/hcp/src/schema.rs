//! `hcp schema [--out DIR]`: the JSON Schemas of the data root's files, generated from the
//! types in `homelab-core`. Without `--out` it prints one JSON object (file name → schema);
//! with it, it writes one file per schema. `docs/schemas/` is made with
//! `cargo run -p hcp -- schema --out docs/schemas`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    /// Write each schema to DIR/<file>.json (DIR is created) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A schema as it is written: pretty JSON with a final newline.
pub fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a JSON value always serializes");
    text.push('\n');
    text
}

pub fn run(args: &SchemaArgs) -> anyhow::Result<ExitCode> {
    let schemas = homelab_core::schema::schemas();
    match &args.out {
        Some(dir) => write_all(dir, &schemas)?,
        None => {
            let all: serde_json::Map<String, serde_json::Value> = schemas.into_iter().map(|(name, s)| (name.to_owned(), s)).collect();
            print!("{}", render(&serde_json::Value::Object(all)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn write_all(dir: &Path, schemas: &[(&str, serde_json::Value)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, schema) in schemas {
        let path = dir.join(name);
        std::fs::write(&path, render(schema)).with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
