//! `conode sign` against a live local cothority started by `run-nodes --allow-open-signing`, and
//! `conode verify` accepting the result offline and refusing tampered signatures, masks, messages
//! and rosters.

use crate::support::{conode, fails, json, ok, RunNodes};
use conode_core::config::{NodeAddress, NodeConfig, Roster};

/// Flips one hex digit of `field` in a signature file (keeps it valid hex).
fn tamper(sig: &serde_json::Value, field: &str, at: usize) -> serde_json::Value {
    let mut t = sig.clone();
    let mut s: Vec<char> = t[field].as_str().unwrap().chars().collect();
    s[at] = if s[at] == '0' { '1' } else { '0' };
    t[field] = serde_json::Value::String(s.into_iter().collect());
    t
}

#[test]
fn sign_then_verify_offline_and_refuse_tampering() {
    let cothority = RunNodes::start(4, &["--allow-open-signing"]);
    let roster = &cothority.roster;
    let dir = cothority.dir.path();
    let sig_path = dir.join("sig.json");

    let printed = ok(conode()
        .args(["sign", "--message", "hello cothority", "--node", "2", "--timeout", "5"])
        .arg("--roster")
        .arg(roster)
        .arg("--out")
        .arg(&sig_path));
    let sig = json(&printed);
    assert_eq!(sig["message"], hex::encode("hello cothority"));
    assert_eq!(sig["signed"], serde_json::json!([0, 1, 2, 3]), "{sig}");
    assert_eq!(sig["mask"], "0f");
    assert_eq!(sig["required"], 3);
    assert_eq!(sig["refused"], serde_json::json!([]));
    assert_eq!(sig["signature"].as_str().unwrap().len(), 192);
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sig_path).unwrap()).unwrap();
    assert_eq!(saved, sig, "--out holds what was printed");

    let verify = |sig_file: &std::path::Path, extra: &[&str]| {
        let mut c = conode();
        c.arg("verify").arg("--roster").arg(roster).arg("--signature").arg(sig_file).args(extra);
        c
    };
    let out = ok(&mut verify(&sig_path, &[]));
    assert_eq!(out.trim(), "ok: 4 of 4 signed (required 3)");
    let out = ok(&mut verify(&sig_path, &["--threshold", "4", "--message", "hello cothority"]));
    assert_eq!(out.trim(), "ok: 4 of 4 signed (required 4)");

    // Another statement, a tampered signature or mask: refused, naming the file.
    let err = fails(&mut verify(&sig_path, &["--message", "hello cothority!"]));
    assert!(err.contains("sig.json") && err.contains("does NOT verify"), "{err}");
    for (name, bad) in [
        ("signature", tamper(&sig, "signature", 100)),
        ("signature", tamper(&sig, "signature", 2)),
        ("mask", tamper(&sig, "mask", 1)),
    ] {
        let p = dir.join(format!("tampered-{name}.json"));
        std::fs::write(&p, bad.to_string()).unwrap();
        let err = fails(&mut verify(&p, &[]));
        assert!(err.contains("tampered") && err.contains("does NOT verify"), "{name}: {err}");
    }
    // A mask of 3 signers over a signature of 4 fails too, as does a different roster.
    let mut fewer = sig.clone();
    fewer["mask"] = "07".into();
    let p = dir.join("fewer.json");
    std::fs::write(&p, fewer.to_string()).unwrap();
    assert!(fails(&mut verify(&p, &[])).contains("does NOT verify"));
    let other = dir.join("other-roster.toml");
    let others: Vec<_> = (0..4)
        .map(|i| NodeConfig::generate(NodeAddress::parse(&format!("tls://127.0.0.1:{}", 1000 + 2 * i)).unwrap(), "x"))
        .map(|c| c.server_identity())
        .collect();
    Roster::new(others).save(&other, false).unwrap();
    let err = fails(conode().arg("verify").arg("--roster").arg(&other).arg("--signature").arg(&sig_path));
    assert!(err.contains("does NOT verify"), "{err}");

    // An impossible threshold is refused by the cothority with a reason.
    let err = fails(conode().args(["sign", "--message", "x", "--threshold", "5"]).arg("--roster").arg(roster));
    assert!(err.contains("threshold") || err.contains("exceeds"), "{err}");
    assert!(cothority.stop().success());
}
