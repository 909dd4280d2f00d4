//! `/Beacon/Subscribe`: the beacons from a starting round (0: the next one stored), then each new
//! round as it is stored; every packet verifies alone against the chain info. Beacons are read
//! from the store at the pace the client takes them; the node's event bus only says when to look
//! again, so a lagging bus loses nothing.

use super::messages::BeaconPacket;
use super::service::BeaconService;
use super::store::to_packet;
use crate::api::subscribe::ItemStream;
use crate::events::{EventSubscriber, NodeEvent};
use crate::services::ServiceError;
use crate::wire::beacon::SubscribeBeacons;
use prost::Message;

struct State {
    svc: BeaconService,
    events: EventSubscriber,
    next: u64,
}

/// Starts a subscription from its request body.
pub(super) fn subscribe(svc: &BeaconService, body: &[u8]) -> Result<ItemStream, ServiceError> {
    let req = SubscribeBeacons::decode(body).map_err(|e| ServiceError::BadRequest(format!("SubscribeBeacons: {e}")))?;
    // Subscribe before reading the store, so no round falls between the two.
    let events = svc.inner.ctx.events.subscribe();
    let chain = svc.chain().ok_or_else(|| ServiceError::Unavailable("this node has no beacon chain yet".into()))?;
    let next = if req.from_round == 0 { chain.latest() + 1 } else { req.from_round };
    let state = State { svc: svc.clone(), events, next };
    Ok(Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(b) = s.svc.get(s.next) {
                s.next += 1;
                let packet: BeaconPacket = to_packet(&b);
                return Some((Ok(packet.encode_to_vec()), s));
            }
            loop {
                match s.events.recv().await? {
                    NodeEvent::BeaconRoundStored { round, .. } if round >= s.next => break,
                    NodeEvent::Lagged { .. } => break,
                    _ => {}
                }
            }
        }
    })))
}
