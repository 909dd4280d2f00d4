//! Bad input to the client commands: a missing roster file, garbled JSON or TOML, wrong hex, a
//! missing key file. Each fails with a non-zero exit and a message naming the file, flag or field,
//! without needing a live cothority and without touching any file.

use crate::support::{conode, fails};
use conode_core::config::{NodeAddress, NodeConfig, Roster};

#[test]
fn bad_input_names_the_file_or_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let roster = p("roster.toml");
    let member = NodeConfig::generate(NodeAddress::parse("tls://127.0.0.1:9").unwrap(), "m");
    Roster::new(vec![member.server_identity()]).save(&roster, false).unwrap();
    let missing = p("missing-roster.toml");

    let err = fails(conode().args(["sign", "--message", "x"]).arg("--roster").arg(&missing));
    assert!(err.contains("missing-roster.toml"), "{err}");
    let err = fails(conode().args(["skipchain", "create"]).arg("--roster").arg(&missing).arg("--key").arg(p("k.toml")));
    assert!(err.contains("missing-roster.toml"), "{err}");
    assert!(!p("k.toml").exists(), "a key file was created for a failed command");
    let err = fails(conode().args(["beacon", "get", "latest"]).arg("--roster").arg(&missing));
    assert!(err.contains("missing-roster.toml"), "{err}");

    let garbled_roster = p("garbled.toml");
    std::fs::write(&garbled_roster, "[[servers]]\nAddress = \"tls://x:1\"\nPublic = \"00\n").unwrap();
    let err = fails(conode().args(["sign", "--message", "x"]).arg("--roster").arg(&garbled_roster));
    assert!(err.contains("garbled.toml"), "{err}");

    let garbled = p("garbled.json");
    std::fs::write(&garbled, "{\"message\": \"00\", \"signature\": ").unwrap();
    let before = std::fs::read(&garbled).unwrap();
    let err = fails(conode().arg("verify").arg("--roster").arg(&roster).arg("--signature").arg(&garbled));
    assert!(err.contains("garbled.json") && err.contains("not a signature file"), "{err}");
    assert_eq!(std::fs::read(&garbled).unwrap(), before);
    let wrong_hex = p("wrong-hex.json");
    std::fs::write(&wrong_hex, r#"{"message":"00","signature":"0xZZ","mask":"01"}"#).unwrap();
    let err = fails(conode().arg("verify").arg("--roster").arg(&roster).arg("--signature").arg(&wrong_hex));
    assert!(err.contains("wrong-hex.json") && err.contains("`signature`") && err.contains("not valid hex"), "{err}");

    let err =
        fails(conode().args(["skipchain", "get", "--genesis", "not-hex", "--index", "1"]).arg("--roster").arg(&roster));
    assert!(err.contains("--genesis") && err.contains("not valid hex"), "{err}");
    let err = fails(conode().args(["skipchain", "update", "--from", "abcd"]).arg("--roster").arg(&roster));
    assert!(err.contains("--from") && err.contains("32-byte"), "{err}");
    let good = "ab".repeat(32);
    let err = fails(
        conode()
            .args(["skipchain", "append", "--genesis", &good, "--data", "x"])
            .arg("--roster")
            .arg(&roster)
            .arg("--key")
            .arg(p("no-key.toml")),
    );
    assert!(err.contains("no-key.toml"), "{err}");
    assert!(!p("no-key.toml").exists(), "append must not create a key file");
    let garbage = p("garbage.bin");
    std::fs::write(&garbage, [0xffu8; 40]).unwrap();
    let err = fails(conode().args(["skipchain", "verify", "--genesis", &good]).arg("--proof").arg(&garbage));
    assert!(err.contains("garbage.bin") && err.contains("not a skipchain proof"), "{err}");
    let err = fails(
        conode()
            .args(["skipchain", "get", "--index", "1", "--genesis", &good, "--node", "3"])
            .arg("--roster")
            .arg(&roster),
    );
    assert!(err.contains("--node 3") && err.contains("roster.toml"), "{err}");
    let err = fails(conode().args(["beacon", "get", "soon", "--url", "http://127.0.0.1:9"]));
    assert!(err.contains("soon"), "{err}");
}
