//! The drand beacon verifier against real League of Entropy beacons (tests/vectors/drand.json, a copy
//! of shared/vectors/drand.json kept in the repository so a bare checkout tests it).

use conode_core::verify::beacon::{
    randomness, verify_beacon, Beacon, BeaconError, ChainInfo, PointProblem, PreparedChain, Scheme,
};
use serde_json::Value;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors/drand.json");

fn load() -> Value {
    let text = std::fs::read_to_string(VECTORS).unwrap_or_else(|e| panic!("reading {VECTORS}: {e}"));
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn hex_of(v: &Value, field: &str) -> Option<Vec<u8>> {
    v.get(field).and_then(Value::as_str).map(|s| hex::decode(s).expect("vector hex"))
}

struct Chain {
    name: String,
    info: ChainInfo,
    claimed_hash: String,
    beacons: Vec<(Beacon, Option<Vec<u8>>)>,
}

fn chains() -> Vec<Chain> {
    let v = load();
    let chains = v["chains"].as_array().expect("chains array");
    assert!(!chains.is_empty());
    chains
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let scheme = Scheme::from_id(c["scheme"].as_str().unwrap()).unwrap();
            let info = ChainInfo {
                public_key: hex_of(c, "public_key").unwrap(),
                period: c["period"].as_u64().unwrap() as u32,
                genesis_time: c["genesis_time"].as_i64().unwrap(),
                // mainnet's genesis seed is published as `groupHash`
                genesis_seed: hex_of(c, "genesis_seed").or_else(|| hex_of(c, "groupHash")).unwrap(),
                scheme,
                beacon_id: c.get("beacon_id").and_then(Value::as_str).unwrap_or("").to_string(),
            };
            // `hash` for mainnet, `chain_hash` for quicknet
            let claimed_hash = c
                .get("chain_hash")
                .or_else(|| c.get("hash"))
                .and_then(Value::as_str)
                .expect("a chain hash")
                .to_string();
            let beacons = c["beacons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    let beacon = Beacon {
                        round: b["round"].as_u64().unwrap(),
                        signature: hex_of(b, "signature").unwrap(),
                        previous_signature: hex_of(b, "previous_signature"),
                    };
                    (beacon, hex_of(b, "randomness"))
                })
                .collect::<Vec<_>>();
            assert!(!beacons.is_empty());
            Chain { name, info, claimed_hash, beacons }
        })
        .collect()
}

#[test]
fn both_schemes_are_covered() {
    let schemes: Vec<Scheme> = chains().iter().map(|c| c.info.scheme).collect();
    assert!(schemes.contains(&Scheme::PedersenBlsChained));
    assert!(schemes.contains(&Scheme::BlsUnchainedG1Rfc9380));
}

#[test]
fn chain_hashes_match() {
    for c in chains() {
        assert_eq!(c.info.hash_hex(), c.claimed_hash, "chain hash of {}", c.name);
        c.info.validate().unwrap();
    }
}

#[test]
fn chain_info_json_parses_and_checks_the_hash() {
    let v = load();
    for c in v["chains"].as_array().unwrap() {
        // the vector entries are drand /info documents plus a `beacons` list
        let info = ChainInfo::from_drand_json(&c.to_string()).unwrap();
        assert_eq!(info.hash_hex(), c.get("chain_hash").or_else(|| c.get("hash")).unwrap().as_str().unwrap());
    }
}

#[test]
fn every_beacon_verifies() {
    for c in chains() {
        let prepared = PreparedChain::new(&c.info).unwrap();
        for (b, rand) in &c.beacons {
            assert_eq!(verify_beacon(&c.info, b), Ok(()), "{} round {}", c.name, b.round);
            assert_eq!(prepared.verify(b), Ok(()), "{} round {} (prepared)", c.name, b.round);
            assert_eq!(b.randomness(), randomness(&b.signature));
            if let Some(r) = rand {
                assert_eq!(&b.randomness()[..], &r[..], "{} round {} randomness", c.name, b.round);
            }
            // the beacon's time is consistent with drand's formulas
            let t = c.info.time_of_round(b.round).unwrap();
            assert_eq!(t, c.info.genesis_time + (b.round as i64 - 1) * i64::from(c.info.period));
            assert_eq!(c.info.current_round(t), b.round);
        }
    }
}

#[test]
fn every_beacon_verifies_from_json() {
    let v = load();
    for c in v["chains"].as_array().unwrap() {
        let info = ChainInfo::from_drand_json(&c.to_string()).unwrap();
        for b in c["beacons"].as_array().unwrap() {
            let beacon = Beacon::from_drand_json(&b.to_string()).unwrap();
            assert_eq!(info.verify(&beacon), Ok(()));
        }
    }
}

fn flip(bytes: &[u8], bit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[bit / 8] ^= 1 << (bit % 8);
    out
}

#[test]
fn tampered_signature_fails() {
    for c in chains() {
        let prepared = c.info.prepare().unwrap();
        for (b, _) in &c.beacons {
            // every bit of the signature, except that flipping the compression flag is a length/encoding
            // error and must fail too
            for bit in 0..b.signature.len() * 8 {
                let t = Beacon { signature: flip(&b.signature, bit), ..b.clone() };
                let e = prepared.verify(&t).unwrap_err();
                assert!(
                    matches!(e, BeaconError::InvalidSignature { .. } | BeaconError::InvalidPoint { .. }),
                    "{} round {} bit {bit}: {e}",
                    c.name,
                    b.round
                );
            }
        }
    }
}

#[test]
fn tampered_round_fails() {
    for c in chains() {
        for (b, _) in &c.beacons {
            for round in [b.round + 1, b.round - 1, b.round ^ (1 << 40)] {
                let t = Beacon { round, ..b.clone() };
                assert_eq!(verify_beacon(&c.info, &t), Err(BeaconError::InvalidSignature { round }), "{}", c.name);
            }
            let t = Beacon { round: 0, ..b.clone() };
            assert_eq!(verify_beacon(&c.info, &t), Err(BeaconError::GenesisRound));
        }
    }
}

#[test]
fn tampered_previous_signature_fails_for_chained() {
    let mut checked = 0;
    for c in chains().into_iter().filter(|c| c.info.scheme.is_chained()) {
        for (b, _) in &c.beacons {
            let prev = b.previous_signature.clone().expect("chained vectors carry previous_signature");
            for bit in [0, 7, 100, prev.len() * 8 - 1] {
                let t = Beacon { previous_signature: Some(flip(&prev, bit)), ..b.clone() };
                assert_eq!(verify_beacon(&c.info, &t), Err(BeaconError::InvalidSignature { round: b.round }));
            }
            let t = Beacon { previous_signature: None, ..b.clone() };
            let e = verify_beacon(&c.info, &t).unwrap_err();
            assert!(matches!(e, BeaconError::MissingPreviousSignature { .. }));
            assert!(e.to_string().contains("previous signature"), "{e}");
            checked += 1;
        }
    }
    assert!(checked > 0);
}

#[test]
fn wrong_length_key_fails_clearly() {
    for c in chains() {
        let (b, _) = &c.beacons[0];
        for len in [0, c.info.public_key.len() - 1, c.info.public_key.len() + 1] {
            let mut info = c.info.clone();
            info.public_key.resize(len, 0);
            let e = verify_beacon(&info, b).unwrap_err();
            assert_eq!(
                e,
                BeaconError::Length {
                    what: "public key",
                    scheme: c.info.scheme,
                    expected: c.info.scheme.public_key_len(),
                    got: len
                }
            );
            let msg = e.to_string();
            assert!(msg.contains("public key") && msg.contains(c.info.scheme.id()), "{msg}");
        }
        // the other chain's key shape: wrong group for this scheme
        let mut info = c.info.clone();
        info.scheme =
            if c.info.scheme.signatures_on_g1() { Scheme::PedersenBlsChained } else { Scheme::BlsUnchainedG1Rfc9380 };
        assert!(matches!(verify_beacon(&info, b), Err(BeaconError::Length { what: "public key", .. })));
    }
}

#[test]
fn wrong_signature_length_fails_clearly() {
    for c in chains() {
        let (b, _) = &c.beacons[0];
        let mut t = b.clone();
        t.signature.push(0);
        let e = verify_beacon(&c.info, &t).unwrap_err();
        assert!(matches!(e, BeaconError::Length { what: "signature", .. }), "{e}");
        t.signature.truncate(b.signature.len() - 1);
        assert!(matches!(verify_beacon(&c.info, &t), Err(BeaconError::Length { what: "signature", .. })));
    }
}

#[test]
fn key_of_one_chain_does_not_verify_another_chain_beacons() {
    let all = chains();
    for c in &all {
        for other in &all {
            if c.name == other.name {
                continue;
            }
            let (b, _) = &other.beacons[0];
            assert!(verify_beacon(&c.info, b).is_err());
        }
    }
    // a subgroup-valid key of the right shape that is not the chain's
    let c = &all[0];
    let mut info = c.info.clone();
    let sk = [7u8; 32];
    info.public_key = conode_core::verify::beacon::public_key_from_secret(info.scheme, &sk).unwrap();
    let (b, _) = &c.beacons[0];
    assert_eq!(verify_beacon(&info, b), Err(BeaconError::InvalidSignature { round: b.round }));
    let _ = PointProblem::NotOnCurve; // exported for callers matching on errors
}
