//! `/Skipchain/Subscribe`: a chain's blocks from a starting index, then each new block as it is
//! stored, each with the level-0 forward link from the block before it (so a client holding that
//! block verifies the item alone). Blocks are read from the store at the pace the client takes
//! them; the node's event bus only says when to look again, so a lagging bus loses nothing.

use super::messages::{BlockItem, SubscribeBlocks};
use super::store::ChainStore;
use crate::api::subscribe::ItemStream;
use crate::events::{EventBus, EventSubscriber, NodeEvent};
use crate::services::ServiceError;
use prost::Message;

struct State {
    store: ChainStore,
    events: EventSubscriber,
    genesis: Vec<u8>,
    next: u64,
}

/// Starts a subscription from its request body.
pub(super) fn subscribe(store: &ChainStore, bus: &EventBus, body: &[u8]) -> Result<ItemStream, ServiceError> {
    let req = SubscribeBlocks::decode(body).map_err(|e| ServiceError::BadRequest(format!("SubscribeBlocks: {e}")))?;
    if store.block(&req.genesis).is_none_or(|b| b.index != 0) {
        return Err(ServiceError::NotFound(format!(
            "unknown chain {}",
            hex::encode(&req.genesis[..req.genesis.len().min(8)])
        )));
    }
    // Subscribe before reading the store, so no block falls between the two.
    let state = State { store: store.clone(), events: bus.subscribe(), genesis: req.genesis, next: req.from_index };
    Ok(Box::pin(futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(block) = s.store.block_at(&s.genesis, s.next) {
                let link = if s.next == 0 {
                    None
                } else {
                    match s.store.block_at(&s.genesis, s.next - 1).and_then(|prev| prev.forward_links.first().cloned())
                    {
                        Some(l) if l.to == block.hash => Some(l),
                        _ => {
                            let e = ServiceError::Failed(format!("block {} has no stored link to it", s.next));
                            s.next = u64::MAX;
                            return Some((Err(e), s));
                        }
                    }
                };
                s.next += 1;
                return Some((Ok(BlockItem { block: Some(block), link }.encode_to_vec()), s));
            }
            if s.next == u64::MAX {
                return None;
            }
            // Wait for a newer block of this chain (or a lag, after which the store is read again).
            loop {
                match s.events.recv().await? {
                    NodeEvent::BlockStored { chain, .. } if chain == s.genesis => break,
                    NodeEvent::Lagged { .. } => break,
                    _ => {}
                }
            }
        }
    })))
}
