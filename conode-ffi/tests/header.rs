//! The checked-in C header must match what the pinned cbindgen generates from the sources.
//! `CONODE_UPDATE_HEADER=1 cargo test -p conode-ffi --test header` rewrites it.

#[test]
fn header_is_up_to_date() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    let path = format!("{crate_dir}/../include/conode.h");
    if std::env::var_os("CONODE_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let checked_in = std::fs::read(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/conode.h is stale: run `CONODE_UPDATE_HEADER=1 cargo test -p conode-ffi --test header` and commit it"
    );
}
