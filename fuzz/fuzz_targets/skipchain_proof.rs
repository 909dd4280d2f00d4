//! A skipchain proof from an untrusted node: decoding and verification never panic.
#![no_main]
use conode_core::verify::skipchain::verify_proof;
use conode_core::verify::skipchain_wire::decode_proof;
use conode_core::verify::Policy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(blocks) = decode_proof(data) {
        // Trust the first block's hash: the links after it are what is checked.
        let trusted = blocks[0].hash.clone();
        let _ = verify_proof(&trusted, &blocks, Policy::Default);
    }
});
