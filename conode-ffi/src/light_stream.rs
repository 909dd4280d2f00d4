//! Blocking subscriptions of the light client (exported through uniffi): `nextBlock` follows a
//! skipchain over `/Skipchain/Subscribe` and returns each new block only once it is linked from
//! the previous verified block by a valid forward link (from the genesis on); `nextBeacon` follows
//! `/Beacon/Subscribe` and returns each round once its signature verifies. Both wait at most the
//! timeout given (null: nothing came), and resubscribe from the next index or round after a
//! broken stream, so a node restart costs no item and repeats none. No async runtime.

use crate::light::{beacon_record, verified_block, LightError, VerifiedBeacon, VerifiedBlock};
use crate::light_client::{is_timeout, ConodeClient, Ws};
use conode_core::client_api::{ErrorCode, WireError, WS_ERROR_CODE};
use conode_core::verify::beacon::{Beacon, ChainInfo, PreparedChain};
use conode_core::verify::follow::BlockFollower;
use conode_core::wire::beacon::{BeaconPacket, SubscribeBeacons};
use conode_core::wire::skipchain::{BlockItem, SubscribeBlocks};
use prost::Message as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::Message;

/// What one read of a subscription socket gave.
enum Read {
    Item(Vec<u8>),
    /// Nothing before the deadline.
    Timeout,
    /// The stream ended or broke: resubscribe.
    Broken,
}

fn set_read_timeout(ws: &mut Ws, d: Duration) -> std::io::Result<()> {
    let d = Some(d.max(Duration::from_millis(1)));
    match ws.get_mut() {
        MaybeTlsStream::Plain(s) => s.set_read_timeout(d),
        MaybeTlsStream::Rustls(s) => s.sock.set_read_timeout(d),
        _ => Ok(()),
    }
}

/// Reads until an item, the deadline, or the end of the stream.
fn read_item(ws: &mut Ws, url: &str, deadline: Instant) -> Result<Read, LightError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Read::Timeout);
        }
        set_read_timeout(ws, left).map_err(|e| LightError::network(format!("{url}: {e}")))?;
        match ws.read() {
            Ok(Message::Binary(b)) => return Ok(Read::Item(b)),
            Ok(Message::Close(Some(frame))) if u16::from(frame.code) == WS_ERROR_CODE => {
                let e = WireError::from_close_reason(&frame.reason);
                // Dropped for being slow: resubscribing resumes where this client is.
                if e.code == ErrorCode::Unavailable {
                    return Ok(Read::Broken);
                }
                return Err(LightError::server(e.code, format!("{url}: {}", e.message)));
            }
            Ok(Message::Close(_)) => return Ok(Read::Broken),
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => return Ok(Read::Timeout),
            Err(_) => return Ok(Read::Broken),
        }
    }
}

/// Opens `/<service>/Subscribe` with `request`.
fn open(client: &ConodeClient, service: &str, request: Vec<u8>) -> Result<(Ws, String), LightError> {
    let (mut ws, url) = client.ws_open(service, "Subscribe")?;
    ws.send(Message::Binary(request)).map_err(|e| LightError::network(format!("{url}: {e}")))?;
    Ok((ws, url))
}

struct BlockState {
    follower: BlockFollower,
    ws: Option<(Ws, String)>,
}

/// A chain followed block by block (see the module doc).
#[derive(uniffi::Object)]
pub struct BlockSubscription {
    client: Arc<ConodeClient>,
    state: Mutex<BlockState>,
}

impl std::fmt::Debug for BlockSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockSubscription").field("client", &self.client).finish()
    }
}

struct BeaconState {
    info: ChainInfo,
    chain: PreparedChain,
    next: u64,
    ws: Option<(Ws, String)>,
}

/// A beacon chain followed round by round (see the module doc).
#[derive(uniffi::Object)]
pub struct BeaconSubscription {
    client: Arc<ConodeClient>,
    state: Mutex<BeaconState>,
}

impl std::fmt::Debug for BeaconSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BeaconSubscription").field("client", &self.client).finish()
    }
}

fn deadline(timeout_ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(timeout_ms)
}

#[uniffi::export]
impl ConodeClient {
    /// Follows the skipchain `genesis` (hex genesis id) from its first block: each `nextBlock`
    /// returns the next block, verified.
    pub fn subscribe_blocks(self: Arc<Self>, genesis: String) -> Result<Arc<BlockSubscription>, LightError> {
        let id = crate::checks::hash_hex(&genesis, "genesis")?;
        Ok(Arc::new(BlockSubscription {
            client: self,
            state: Mutex::new(BlockState { follower: BlockFollower::from_genesis_id(&id), ws: None }),
        }))
    }

    /// Follows the conode's beacon from `from_round` (0: the next round it stores). With
    /// `chain_hash` (hex) the chain must be that one; without it the conode's `/info` is trusted.
    pub fn subscribe_beacons(
        self: Arc<Self>,
        chain_hash: Option<String>,
        from_round: u64,
    ) -> Result<Arc<BeaconSubscription>, LightError> {
        let (info, _) = self.fetch_chain(chain_hash.as_deref())?;
        let chain = info.prepare().map_err(|e| LightError::invalid(format!("chain info: {e}")))?;
        Ok(Arc::new(BeaconSubscription {
            client: self,
            state: Mutex::new(BeaconState { info, chain, next: from_round, ws: None }),
        }))
    }
}

/// The next item of a subscription, waiting until `until`: opens `/<service>/Subscribe` with
/// `request()` when there is no stream, and resubscribes (with a fresh `request()`, from where the
/// caller is) after a broken one. `None`: nothing came in time. The item comes with its URL.
fn next_item(
    client: &ConodeClient,
    service: &str,
    ws: &mut Option<(Ws, String)>,
    request: impl Fn() -> Vec<u8>,
    until: Instant,
) -> Result<Option<(Vec<u8>, String)>, LightError> {
    // Opening the stream and answering pings write to the socket (see `conode_core::sigpipe`).
    let _shield = conode_core::sigpipe::Shield::new();
    loop {
        if ws.is_none() {
            *ws = Some(open(client, service, request())?);
        }
        let Some((stream, url)) = ws.as_mut() else { continue };
        match read_item(stream, url, until)? {
            Read::Timeout => return Ok(None),
            Read::Broken => {
                *ws = None;
                if Instant::now() >= until {
                    return Ok(None);
                }
            }
            Read::Item(bytes) => return Ok(Some((bytes, url.clone()))),
        }
    }
}

#[uniffi::export]
impl BlockSubscription {
    /// The next block, verified, waiting at most `timeout_ms`; null when none came in time.
    /// Throws `VerificationFailed` for a block that does not verify (the subscription stays at
    /// the last good block), `Network` when the conode cannot be reached (call again to retry).
    pub fn next_block(&self, timeout_ms: u64) -> Result<Option<VerifiedBlock>, LightError> {
        let until = deadline(timeout_ms);
        let mut guard = conode_core::sync::lock(&self.state);
        let st = &mut *guard;
        let follower = &st.follower;
        let request = || {
            SubscribeBlocks { genesis: follower.genesis().to_vec(), from_index: follower.next_index() }.encode_to_vec()
        };
        let Some((bytes, url)) = next_item(&self.client, "Skipchain", &mut st.ws, request, until)? else {
            return Ok(None);
        };
        let item = BlockItem::decode(bytes.as_slice())
            .map_err(|e| LightError::network(format!("{url}: undecodable item: {e}")))?;
        let block = item.block.ok_or_else(|| LightError::network(format!("{url}: item without a block")))?;
        match st.follower.accept(block, item.link.as_ref()) {
            Ok(block) => Ok(Some(verified_block(block.clone(), 1))),
            Err(e) => {
                st.ws = None;
                Err(LightError::VerificationFailed { reason: format!("{url}: {e}") })
            }
        }
    }
}

#[uniffi::export]
impl BeaconSubscription {
    /// The next beacon, verified, waiting at most `timeout_ms`; null when none came in time.
    /// Errors as for `BlockSubscription.nextBlock`.
    pub fn next_beacon(&self, timeout_ms: u64) -> Result<Option<VerifiedBeacon>, LightError> {
        let until = deadline(timeout_ms);
        let mut guard = conode_core::sync::lock(&self.state);
        let st = &mut *guard;
        let next = st.next;
        let request = || SubscribeBeacons { from_round: next }.encode_to_vec();
        let Some((bytes, url)) = next_item(&self.client, "Beacon", &mut st.ws, request, until)? else {
            return Ok(None);
        };
        let p = BeaconPacket::decode(bytes.as_slice())
            .map_err(|e| LightError::network(format!("{url}: undecodable item: {e}")))?;
        let mut beacon = Beacon {
            round: p.round,
            signature: p.signature,
            previous_signature: (!p.previous_signature.is_empty()).then_some(p.previous_signature),
        };
        if !st.info.scheme.is_chained() {
            beacon.previous_signature = None;
        }
        let wrong_round = st.next != 0 && beacon.round != st.next;
        if wrong_round || st.chain.verify(&beacon).is_err() {
            st.ws = None;
            return Err(LightError::VerificationFailed {
                reason: format!("{url}: round {} does not verify or is not the next one", beacon.round),
            });
        }
        st.next = beacon.round + 1;
        Ok(Some(beacon_record(&st.info, beacon)))
    }
}
