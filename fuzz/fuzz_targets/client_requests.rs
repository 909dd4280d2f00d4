//! Every request a client can send on the client port (the first byte picks the type).
#![no_main]
use conode_core::wire::{beacon, cosi, skipchain, status};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else { return };
    match which % 10 {
        0 => drop(status::Request::decode(body)),
        1 => drop(cosi::SignRequest::decode(body)),
        2 => drop(skipchain::CreateChain::decode(body)),
        3 => drop(skipchain::Append::decode(body)),
        4 => drop(skipchain::GetBlock::decode(body)),
        5 => drop(skipchain::GetUpdateChain::decode(body)),
        6 => drop(beacon::InitRequest::decode(body)),
        7 => drop(beacon::LatestRequest::decode(body)),
        8 => drop(beacon::RoundRequest::decode(body)),
        _ => drop(beacon::DkgStatusRequest::decode(body)),
    }
});
