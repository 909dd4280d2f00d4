//! Generates the protobuf message types of `conode_core::wire` from every `proto/*.proto` file at
//! build time, so that the `.proto` files are the one definition of the wire contract. protox
//! compiles them in pure Rust (no `protoc` needed on the machine); prost-build writes one Rust file
//! per package into OUT_DIR plus `_wire.rs`, which declares a module per package and which
//! `src/wire/mod.rs` includes.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../proto");
    // A directory is scanned as a whole: adding, removing or editing a file reruns this script.
    println!("cargo:rerun-if-changed={}", proto_dir.display());

    let mut files = Vec::new();
    for entry in std::fs::read_dir(&proto_dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(format!("no .proto file in {}", proto_dir.display()).into());
    }

    // protox's error Display is terse; Debug carries the file, line and column.
    let fds = protox::compile(&files, [&proto_dir]).map_err(|e| format!("{e:?}"))?;

    let names: Vec<String> =
        files.iter().filter_map(|f| f.file_name()).map(|n| format!("{:?}", n.to_string_lossy())).collect();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("_proto_files.rs"),
        format!(
            "/// The `.proto` files build.rs compiled, sorted.\npub const PROTO_FILES: &[&str] = &[{}];\n",
            names.join(", ")
        ),
    )?;

    prost_build::Config::new().include_file("_wire.rs").compile_fds(fds)?;
    Ok(())
}
