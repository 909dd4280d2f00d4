//! private.toml (with its [Limits]) and roster files: parsing never panics, whatever the text.
#![no_main]
use conode_core::config::{NodeConfig, Roster};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(c) = NodeConfig::from_toml_str(Path::new("private.toml"), text) {
        // What was accepted is written back and read again the same.
        let again = NodeConfig::from_toml_str(Path::new("private.toml"), &c.to_toml()).expect("round trip");
        assert_eq!(again.limits, c.limits);
    }
    let _ = Roster::from_toml_str(Path::new("roster.toml"), text);
});
