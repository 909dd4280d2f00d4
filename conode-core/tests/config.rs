//! Config files: round-trips, and every kind of bad input gives an error naming file and field.

use conode_core::config::{ConfigError, NodeAddress, NodeConfig, Roster, SkipchainLinks};
use conode_core::crypto::BlsKeyPair;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn sample() -> NodeConfig {
    let mut c = NodeConfig::generate(NodeAddress::parse("tls://example.org:7770").unwrap(), "test node");
    c.url = Some("https://example.org/conode".into());
    c
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn field_error(e: ConfigError) -> (String, String) {
    match e {
        ConfigError::Field { file, field, .. } => (file.display().to_string(), field),
        other => panic!("expected a field error, got {other}"),
    }
}

#[test]
fn private_and_roster_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let c = sample();
    let p = dir.path().join("private.toml");
    c.save(&p, false).unwrap();
    assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    let back = NodeConfig::load(&p).unwrap();
    assert_eq!(back.identity.public(), c.identity.public());
    assert_eq!(back.address, c.address);
    assert_eq!(back.url, c.url);
    assert_eq!(back.cosi_key().unwrap().public(), c.cosi_key().unwrap().public());
    assert_eq!(back.server_identity(), c.server_identity());
    let text = std::fs::read_to_string(&p).unwrap();
    for key in [
        "Suite = \"Ed25519\"",
        "Public = ",
        "Private = ",
        "Address = \"tls://example.org:7770\"",
        "[Services.Cosi]",
        "Pop = ",
    ] {
        assert!(text.contains(key), "private.toml lacks {key}:\n{text}");
    }
    let other = NodeConfig::generate(NodeAddress::parse("tls://10.0.0.2:7772").unwrap(), "two");
    let roster = Roster::new(vec![c.server_identity(), other.server_identity()]);
    let rp = dir.path().join("roster.toml");
    roster.save(&rp, false).unwrap();
    let text = std::fs::read_to_string(&rp).unwrap();
    assert_eq!(text.matches("[[servers]]").count(), 2);
    assert!(text.contains("URL = \"https://example.org/conode\""));
    assert_eq!(Roster::load(&rp).unwrap(), roster);
    // A roster is the concatenation of public.toml files.
    let a = Roster::new(vec![c.server_identity()]).to_toml();
    let b = Roster::new(vec![other.server_identity()]).to_toml();
    let cat = Roster::from_toml_str(Path::new("cat.toml"), &format!("{a}\n{b}")).unwrap();
    assert_eq!(cat, roster);
}

#[test]
fn world_readable_private_toml_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "private.toml", &sample().to_toml(), 0o644);
    let err = NodeConfig::load(&p).unwrap_err();
    assert!(matches!(err, ConfigError::Permissions { mode: 0o644, .. }), "{err}");
    assert!(err.to_string().contains("private.toml"));
}

#[test]
fn overwrite_is_refused_and_keeps_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("private.toml");
    let first = sample();
    first.save(&p, false).unwrap();
    let err = sample().save(&p, false).unwrap_err();
    assert!(matches!(err, ConfigError::Exists { .. }));
    assert_eq!(NodeConfig::load(&p).unwrap().identity.public(), first.identity.public());
}

#[test]
fn bad_private_fields_name_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = sample().to_toml();
    let cases: Vec<(String, &str)> = vec![
        (good.replace("Suite = \"Ed25519\"\n", ""), "Suite"),
        (good.replacen("Address = \"tls://example.org:7770\"", "Address = \"tls://example.org\"", 1), "Address"),
        (
            {
                let pubhex = sample().identity.public().to_hex();
                let mut t = good.clone();
                let start = t.find("Public = \"").unwrap() + 10;
                t.replace_range(start..start + 64, &pubhex);
                t
            },
            "Public",
        ),
        (
            {
                let mut t = good.clone();
                let start = t.find("\nPrivate = \"").unwrap() + 12;
                t.replace_range(start..start + 64, "abcd");
                t
            },
            "Private",
        ),
        (
            {
                let other = BlsKeyPair::generate();
                let mut t = good.clone();
                let start = t.find("Pop = \"").unwrap() + 7;
                t.replace_range(start..start + 192, &other.pop().to_hex());
                t
            },
            "Services.Cosi.Pop",
        ),
    ];
    for (i, (text, field)) in cases.into_iter().enumerate() {
        let p = write(dir.path(), &format!("private{i}.toml"), &text, 0o600);
        let (file, got) = field_error(NodeConfig::load(&p).unwrap_err());
        assert!(file.ends_with(&format!("private{i}.toml")));
        assert_eq!(got, field, "case {i}");
    }
    // Garbled TOML: a parse error naming the file.
    let p = write(dir.path(), "garbled.toml", "Suite = \"Ed25519\nPublic = 5", 0o600);
    let err = NodeConfig::load(&p).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }) && err.to_string().contains("garbled.toml"), "{err}");
    // Wrong type.
    let p = write(dir.path(), "typed.toml", &good.replacen("Description = \"test node\"", "Description = 5", 1), 0o600);
    let err = NodeConfig::load(&p).unwrap_err();
    assert!(err.to_string().contains("typed.toml") && err.to_string().contains("Description"), "{err}");
}

#[test]
fn bad_rosters_name_file_and_field() {
    let a = sample().server_identity();
    let b = NodeConfig::generate(NodeAddress::parse("tls://b:1").unwrap(), "b").server_identity();
    let good = Roster::new(vec![a.clone(), b.clone()]).to_toml();
    let dup = Roster::new(vec![a.clone(), b.clone(), a.clone()]).to_toml();
    let err = Roster::from_toml_str(Path::new("dup.toml"), &dup).unwrap_err();
    let msg = err.to_string();
    assert_eq!(field_error(err).1, "servers[2].Public");
    assert!(msg.contains("duplicate") && msg.contains("dup.toml"), "{msg}");

    let bad_pop = good.replacen(&a.services["Cosi"].pop.to_hex(), &BlsKeyPair::generate().pop().to_hex(), 1);
    assert_eq!(
        field_error(Roster::from_toml_str(Path::new("r.toml"), &bad_pop).unwrap_err()).1,
        "servers[0].Services.Cosi.Pop"
    );

    let short_key = good.replacen(&a.public.to_hex(), "abcdef", 1);
    let err = Roster::from_toml_str(Path::new("r.toml"), &short_key).unwrap_err();
    assert!(err.to_string().contains("expected 32 bytes, got 3"), "{err}");

    let bad_hex = good.replacen(&b.public.to_hex(), &"zz".repeat(32), 1);
    assert_eq!(field_error(Roster::from_toml_str(Path::new("r.toml"), &bad_hex).unwrap_err()).1, "servers[1].Public");

    let no_addr = good.replacen("Address = \"tls://b:1\"\n", "", 1);
    assert_eq!(field_error(Roster::from_toml_str(Path::new("r.toml"), &no_addr).unwrap_err()).1, "servers[1].Address");

    assert!(Roster::from_toml_str(Path::new("empty.toml"), "").unwrap_err().to_string().contains("no [[servers]]"));
}

#[test]
fn service_keys_in_roster_order_or_the_member_without_one() {
    let (a, b) = (sample(), NodeConfig::generate(NodeAddress::parse("tls://10.0.0.2:7772").unwrap(), "two"));
    let roster = Roster::new(vec![a.server_identity(), b.server_identity()]);
    let keys = roster.service_keys("Cosi").unwrap();
    assert_eq!(keys, vec![a.cosi_key().unwrap().public(), b.cosi_key().unwrap().public()]);
    let mut without = b.server_identity();
    without.services.clear();
    let e = Roster::new(vec![a.server_identity(), without]).service_keys("Cosi").unwrap_err();
    assert_eq!((e.index, e.address.as_str()), (1, "tls://10.0.0.2:7772"));
    assert_eq!(e.to_string(), "servers[1] (tls://10.0.0.2:7772) has no Services.Cosi key");
}

#[test]
fn limits_are_read_written_and_checked() {
    use std::time::Duration;
    let mut c = sample();
    assert_eq!(c.limits, conode_core::config::Limits::default());
    assert!(!c.to_toml().contains("[Limits]"), "defaults are not written");
    c.limits.client_header_timeout = Duration::from_millis(1500);
    c.limits.client_max_connections_per_address = 3;
    c.limits.stranger_connections = 2;
    c.limits.peer_requests_in_flight = 3;
    c.limits.client_requests_per_second = 7;
    c.limits.client_rate_limit_loopback = true;
    let text = c.to_toml();
    assert!(text.contains("PeerRequestsInFlight = 3"), "{text}");
    assert!(text.contains("ClientRequestsPerSecond = 7") && text.contains("ClientRateLimitLoopback = true"), "{text}");
    assert!(!text.contains("ClientRequestBurst"), "an unchanged limit is not written: {text}");
    assert!(text.contains("[Limits]") && text.contains("ClientHeaderTimeoutMs = 1500"), "{text}");
    let back = NodeConfig::from_toml_str(Path::new("private.toml"), &text).unwrap();
    assert_eq!(back.limits, c.limits);

    let zero = text.replace("StrangerConnections = 2", "StrangerConnections = 0");
    let (_, field) = field_error(NodeConfig::from_toml_str(Path::new("p.toml"), &zero).unwrap_err());
    assert_eq!(field, "Limits.StrangerConnections");
    let zero = text.replace("PeerRequestsInFlight = 3", "PeerRequestsInFlight = 0");
    let (_, field) = field_error(NodeConfig::from_toml_str(Path::new("p.toml"), &zero).unwrap_err());
    assert_eq!(field, "Limits.PeerRequestsInFlight");
    let zero = text.replace("ClientRequestsPerSecond = 7", "ClientRequestsPerSecond = 0");
    let (_, field) = field_error(NodeConfig::from_toml_str(Path::new("p.toml"), &zero).unwrap_err());
    assert_eq!(field, "Limits.ClientRequestsPerSecond");
    let unknown = text.replace("StrangerConnections = 2", "StrangerConection = 2");
    let err = NodeConfig::from_toml_str(Path::new("p.toml"), &unknown).unwrap_err().to_string();
    assert!(err.contains("StrangerConection"), "{err}");
}

#[test]
fn skipchain_link_format_is_read_written_and_checked() {
    let mut c = sample();
    assert_eq!(c.skipchain_links, SkipchainLinks::V4, "fast (v4) links by default");
    assert!(!c.to_toml().contains("SkipchainLinks"), "the default is not written");
    let read = |text: &str| NodeConfig::from_toml_str(Path::new("private.toml"), text).unwrap().skipchain_links;
    for (format, name) in [(SkipchainLinks::V1, "v1"), (SkipchainLinks::V2, "v2"), (SkipchainLinks::V3, "v3")] {
        c.skipchain_links = format;
        let text = c.to_toml();
        assert!(text.contains(&format!("SkipchainLinks = \"{name}\"")), "{text}");
        assert_eq!(read(&text), format);
    }
    let text = c.to_toml();
    assert_eq!(read(&text.replace("SkipchainLinks = \"v3\"", "SkipchainLinks = \"v4\"")), SkipchainLinks::V4);
    let bad = text.replace("SkipchainLinks = \"v3\"", "SkipchainLinks = \"v5\"");
    let (file, field) = field_error(NodeConfig::from_toml_str(Path::new("p.toml"), &bad).unwrap_err());
    assert_eq!((file.as_str(), field.as_str()), ("p.toml", "SkipchainLinks"));
}
