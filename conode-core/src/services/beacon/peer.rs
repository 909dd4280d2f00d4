//! The `Beacon` peer protocol: what this node answers to the other members of its group, a
//! partial of a round (see `partials`), a beacon pushed by a recoverer of its round (see
//! `partials`) or a request for beacons (see `sync`).

use super::messages::{self as m, protocol as proto};
use super::service::BeaconService;
use crate::network::PeerMessage;
use prost::Message;

impl BeaconService {
    pub(super) async fn peer(&self, msg: PeerMessage) -> Result<Vec<u8>, String> {
        let chain = self.chain().ok_or("no beacon chain on this node")?;
        match msg.protocol.as_str() {
            proto::PARTIAL => {
                let p = m::PartialBeacon::decode(msg.payload.as_slice()).map_err(|e| e.to_string())?;
                if let Some(settled) = self.route_partial(&chain, &msg.from, &p) {
                    return settled.map(|r| r.encode_to_vec());
                }
                self.on_partial(&chain, &msg.from, p).await.map(|r| r.encode_to_vec())
            }
            proto::RECOVERED => {
                let b = m::BeaconPacket::decode(msg.payload.as_slice()).map_err(|e| e.to_string())?;
                self.on_recovered(&chain, &msg.from, b).await.map(|()| Vec::new())
            }
            proto::SYNC => {
                let r = m::SyncRequest::decode(msg.payload.as_slice()).map_err(|e| e.to_string())?;
                self.serve_sync(r).map(|r| r.encode_to_vec())
            }
            other => Err(format!("unknown protocol `{other}`")),
        }
    }
}
