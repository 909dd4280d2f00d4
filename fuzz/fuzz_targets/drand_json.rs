//! drand's JSON (`/info`, `/public/{round}`) as the light client reads it from any server.
#![no_main]
use conode_core::verify::beacon::{Beacon, ChainInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let info = ChainInfo::from_drand_json(text);
    let beacon = Beacon::from_drand_json(text);
    if let (Ok(info), Ok(beacon)) = (info, beacon) {
        let _ = conode_core::verify::beacon::verify_beacon(&info, &beacon);
    }
});
