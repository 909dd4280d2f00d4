//! A collective signature (aggregate + mask) against a fixed roster: never panics, and random
//! bytes never verify.
#![no_main]
use conode_core::crypto::{BlsKeyPair, BlsPublicKey};
use conode_core::verify::{verify_cosi, Policy};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static [BlsPublicKey] {
    static KEYS: OnceLock<Vec<BlsPublicKey>> = OnceLock::new();
    KEYS.get_or_init(|| (0..5).map(|_| BlsKeyPair::generate().public()).collect())
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 97 {
        return;
    }
    let (sig, rest) = data.split_at(96);
    let (mask, statement) = rest.split_at(1.min(rest.len()));
    let threshold = statement.first().copied().unwrap_or(0) as usize;
    for policy in [Policy::Default, Policy::Threshold(threshold)] {
        assert!(verify_cosi(statement, sig, mask, keys(), policy).is_err(), "random bytes verified");
    }
});
