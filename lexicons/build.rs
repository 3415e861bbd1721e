//! Embeds every `schemas/*.json` lexicon document: writes an `include_str!` table to
//! `$OUT_DIR/embedded.rs`, so adding a document needs no code change.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let schemas = manifest_dir.join("schemas");
    // A directory rerun-if-changed makes cargo rescan it, so new files are picked up.
    println!("cargo::rerun-if-changed=schemas");

    let mut files = Vec::new();
    for entry in fs::read_dir(&schemas)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            files.push(path);
        }
    }
    // Sorted so the generated file (and the build) is reproducible.
    files.sort();

    let mut out = String::from(
        "/// Every `schemas/*.json` document as (file name, contents), sorted by file name.\n\
         pub(crate) static EMBEDDED: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo::rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or("schema file name is not UTF-8")?;
        let full = path.to_str().ok_or("schema path is not UTF-8")?;
        writeln!(out, "    ({name:?}, include_str!({full:?})),")?;
    }
    out.push_str("];\n");

    let dest = PathBuf::from(env::var("OUT_DIR")?).join("embedded.rs");
    fs::write(dest, out)?;
    Ok(())
}
