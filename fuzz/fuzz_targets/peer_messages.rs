//! Every peer-protocol message a known peer can send (the first byte picks the type), and the
//! rosters introductions carry.
#![no_main]
use conode_core::network::admission;
use conode_core::wire::{beacon, cosi, dkg, skipchain};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 16 {
        0 => drop(cosi::Announce::decode(body)),
        1 => drop(cosi::Reply::decode(body)),
        2 => drop(dkg::Prepare::decode(body)),
        3 => drop(dkg::Go::decode(body)),
        4 => drop(dkg::Deal::decode(body)),
        5 => drop(dkg::Responses::decode(body)),
        6 => drop(dkg::Justification::decode(body)),
        7 => drop(dkg::Done::decode(body)),
        8 => drop(beacon::PartialBeacon::decode(body)),
        9 => drop(beacon::PartialReply::decode(body)),
        10 => drop(beacon::SyncRequest::decode(body)),
        11 => drop(beacon::SyncReply::decode(body)),
        12 => drop(skipchain::LinkedBlock::decode(body)),
        13 => drop(skipchain::GetBlocks::decode(body)),
        14 => drop(skipchain::Blocks::decode(body)),
        _ => drop(skipchain::Latest::decode(body)),
    }
    for (s, p) in [("Cosi", "Announce"), ("Skipchain", "Store"), ("Dkg", "Prepare")] {
        let _ = admission::introduced_keys(s, p, body);
    }
});
