//! Streaming subscriptions on the client port (`/Skipchain/Subscribe`, `/Beacon/Subscribe`): the
//! client sends one protobuf request, the node answers with one binary message per item until the
//! client closes, the stream ends, or the node stops. Services register their producers in the
//! [`StreamRegistry`]; this module pumps items to the socket and holds the client of it.
//!
//! Bounded memory: producers read from storage at the pace the socket takes items (they keep no
//! queue of their own beyond the event bus's bounded one). A subscriber whose socket takes no
//! message for the client idle timeout is dropped with close code 4100 and the reason
//! `unavailable: subscriber too slow …`; a node that stops closes with 1001 ("node stopping").
//! Keep-alive pings flow while nothing happens, so a quiet chain does not look idle.

use crate::api::client::{Client, ClientError};
use crate::client_api::{ErrorCode, WireError, WS_ERROR_CODE};
use crate::services::ServiceError;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, Stream, StreamExt};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The items of one subscription, encoded; an error ends it (and closes the socket with it).
pub type ItemStream = Pin<Box<dyn Stream<Item = Result<Vec<u8>, ServiceError>> + Send>>;
/// Starts a subscription from its request body.
pub type StreamHandler = Arc<dyn Fn(Vec<u8>) -> Result<ItemStream, ServiceError> + Send + Sync>;

/// WebSocket close reason of a subscriber dropped for being slow (after `unavailable: `).
pub const TOO_SLOW: &str = "subscriber too slow";

/// Streaming methods of the services, by `(service, method)`.
#[derive(Clone, Default)]
pub struct StreamRegistry {
    map: Arc<RwLock<HashMap<(String, String), StreamHandler>>>,
}

impl StreamRegistry {
    pub fn register(&self, service: &str, method: &str, handler: StreamHandler) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).insert((service.into(), method.into()), handler);
    }
    pub fn get(&self, service: &str, method: &str) -> Option<StreamHandler> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&(service.to_string(), method.to_string())).cloned()
    }
    /// Forgets every streaming method of `service` (when it stops).
    pub fn unregister(&self, service: &str) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).retain(|(s, _), _| s != service);
    }
    /// Forgets everything (on stop).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: String) {
    let frame = CloseFrame { code, reason: reason.into() };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
}

async fn close_error(socket: &mut WebSocket, e: &WireError) {
    close(socket, WS_ERROR_CODE, e.to_close_reason()).await
}

/// Serves one subscription socket: reads the request, then sends items until the client closes,
/// the items end, `stop` fires, or the client stops taking messages for `idle`.
pub(super) async fn serve(mut socket: WebSocket, handler: StreamHandler, idle: Duration, stop: CancellationToken) {
    let body = tokio::select! {
        m = tokio::time::timeout(idle, socket.recv()) => match m {
            Ok(Some(Ok(Message::Binary(b)))) => b,
            Ok(Some(Ok(_))) => {
                close_error(&mut socket, &WireError::new(ErrorCode::BadRequest, "expected a binary protobuf message"))
                    .await;
                return;
            }
            _ => return,
        },
        _ = stop.cancelled() => return,
    };
    let mut items = match handler(body) {
        Ok(s) => s,
        Err(e) => return close_error(&mut socket, &e.to_wire()).await,
    };
    let mut ping = tokio::time::interval((idle / 2).max(Duration::from_millis(50)));
    ping.tick().await;
    loop {
        let out = tokio::select! {
            item = items.next() => match item {
                Some(Ok(bytes)) => Message::Binary(bytes),
                Some(Err(e)) => return close_error(&mut socket, &e.to_wire()).await,
                None => return close(&mut socket, axum::extract::ws::close_code::NORMAL, "end of stream".into()).await,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => continue,
            },
            _ = ping.tick() => Message::Ping(Vec::new()),
            _ = stop.cancelled() => {
                return close(&mut socket, axum::extract::ws::close_code::AWAY, "node stopping".into()).await;
            }
        };
        match tokio::time::timeout(idle, socket.send(out)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                debug!(?idle, "dropping a subscriber that takes no message");
                let e = WireError::new(ErrorCode::Unavailable, format!("{TOO_SLOW}: took no message for {idle:?}"));
                return close_error(&mut socket, &e).await;
            }
        }
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A client's side of a subscription: one item per [`Subscription::next`].
pub struct Subscription {
    ws: Ws,
    url: String,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription").field("url", &self.url).finish()
    }
}

impl Subscription {
    /// Connects to `/<service>/<method>` (within the client's timeout) and sends the request.
    pub async fn open(client: &Client, service: &str, method: &str, request: Vec<u8>) -> Result<Self, ClientError> {
        let url = client.url().method(service, method);
        let connect = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .map_err(|e| ClientError::Connect { url: url.clone(), reason: e.to_string() })?;
            ws.send(tokio_tungstenite::tungstenite::Message::Binary(request))
                .await
                .map_err(|e| ClientError::Protocol { url: url.clone(), reason: e.to_string() })?;
            Ok::<_, ClientError>(ws)
        };
        let ws = tokio::time::timeout(client.timeout(), connect)
            .await
            .map_err(|_| ClientError::Timeout { url: url.clone(), after: client.timeout() })??;
        Ok(Self { ws, url })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next item; `Ok(None)` when the node ended the stream normally (or stopped: close
    /// 1001), a `Service` error when it closed with one (e.g. `Unavailable` for a slow
    /// subscriber). Waits as long as it takes.
    pub async fn next(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        use tokio_tungstenite::tungstenite::Message as M;
        let proto = |reason: String| ClientError::Protocol { url: self.url.clone(), reason };
        while let Some(msg) = self.ws.next().await {
            match msg.map_err(|e| proto(e.to_string()))? {
                M::Binary(b) => return Ok(Some(b)),
                M::Close(Some(frame)) if u16::from(frame.code) == WS_ERROR_CODE => {
                    return Err(ClientError::Service {
                        url: self.url.clone(),
                        error: WireError::from_close_reason(&frame.reason),
                    })
                }
                M::Close(_) => return Ok(None),
                _ => continue,
            }
        }
        Ok(None)
    }

    /// The next item decoded as `T`.
    pub async fn next_as<T: prost::Message + Default>(&mut self) -> Result<Option<T>, ClientError> {
        match self.next().await? {
            Some(b) => T::decode(b.as_slice())
                .map(Some)
                .map_err(|e| ClientError::Protocol { url: self.url.clone(), reason: format!("undecodable item: {e}") }),
            None => Ok(None),
        }
    }

    /// Closes the socket.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// `/Skipchain/Subscribe` from `from_index`.
pub async fn subscribe_blocks(client: &Client, genesis: &[u8], from_index: u64) -> Result<Subscription, ClientError> {
    let req = crate::wire::skipchain::SubscribeBlocks { genesis: genesis.to_vec(), from_index };
    Subscription::open(client, "Skipchain", "Subscribe", prost::Message::encode_to_vec(&req)).await
}

/// `/Beacon/Subscribe` from `from_round` (0: the next round stored).
pub async fn subscribe_beacons(client: &Client, from_round: u64) -> Result<Subscription, ClientError> {
    let req = crate::wire::beacon::SubscribeBeacons { from_round };
    Subscription::open(client, "Beacon", "Subscribe", prost::Message::encode_to_vec(&req)).await
}

/// Why a watch stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(transparent)]
    Client(#[from] ClientError),
    /// An item did not verify: the node is faulty or lying (the watch does not go on).
    #[error("{url}: item does not verify: {reason}")]
    Invalid { url: String, reason: String },
}

/// How long a watch keeps trying to resubscribe after its stream broke (node restarting, network
/// down, dropped for being slow) before it gives up with the last error.
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(30);

/// Retries `open` until it succeeds or `window` passes (100 ms, doubling up to 2 s, between tries).
async fn reopen<F, Fut>(window: Duration, mut open: F) -> Result<Subscription, ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Subscription, ClientError>>,
{
    let deadline = tokio::time::Instant::now() + window;
    let mut wait = Duration::from_millis(100);
    loop {
        match open().await {
            Ok(s) => return Ok(s),
            Err(e) if e.code().is_some_and(|c| c != ErrorCode::Unavailable) => return Err(e),
            Err(e) if tokio::time::Instant::now() + wait >= deadline => return Err(e),
            Err(e) => debug!(error = %e, "resubscribing"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
}

/// Whether a broken stream is worth resubscribing (the node may come back), as opposed to a
/// definite refusal.
fn transient(e: &ClientError) -> bool {
    e.code().is_none_or(|c| c == ErrorCode::Unavailable)
}

/// Follows a chain with verification: every block it returns is the next one and is linked from
/// the previous one by a valid forward link. When the stream breaks it resubscribes from the next
/// index (for up to [`RECONNECT_WINDOW`]), so nothing is skipped or repeated.
pub struct BlockWatcher {
    client: Client,
    follower: crate::verify::follow::BlockFollower,
    sub: Option<Subscription>,
    window: Duration,
}

impl BlockWatcher {
    /// From the genesis block of `genesis` (its hash is the chain id, so it needs no trust).
    pub fn from_genesis(client: Client, genesis: &[u8]) -> Self {
        Self::with_follower(client, crate::verify::follow::BlockFollower::from_genesis_id(genesis))
    }

    /// After `trusted` (a block the caller verified, e.g. the end of a proof).
    pub fn after(client: Client, trusted: crate::verify::skipchain::SkipBlock) -> Self {
        Self::with_follower(client, crate::verify::follow::BlockFollower::from_trusted(trusted))
    }

    fn with_follower(client: Client, follower: crate::verify::follow::BlockFollower) -> Self {
        Self { client, follower, sub: None, window: RECONNECT_WINDOW }
    }

    /// How long to try resubscribing after the stream broke.
    pub fn reconnect_window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// The index of the next block.
    pub fn next_index(&self) -> u64 {
        self.follower.next_index()
    }

    /// The next verified block (waits as long as it takes).
    pub async fn next(&mut self) -> Result<crate::verify::skipchain::SkipBlock, WatchError> {
        loop {
            if self.sub.is_none() {
                let (client, genesis, from) = (&self.client, self.genesis(), self.next_index());
                self.sub = Some(reopen(self.window, || subscribe_blocks(client, &genesis, from)).await?);
            }
            let Some(sub) = self.sub.as_mut() else { continue };
            let url = sub.url().to_string();
            match sub.next_as::<crate::wire::skipchain::BlockItem>().await {
                Ok(Some(item)) => {
                    let block = item
                        .block
                        .ok_or_else(|| WatchError::Invalid { url: url.clone(), reason: "no block".into() })?;
                    return self
                        .follower
                        .accept(block, item.link.as_ref())
                        .cloned()
                        .map_err(|e| WatchError::Invalid { url, reason: e.to_string() });
                }
                Ok(None) => self.sub = None,
                Err(e) if transient(&e) => {
                    debug!(error = %e, "block stream broke; resubscribing");
                    self.sub = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn genesis(&self) -> Vec<u8> {
        self.follower.genesis().to_vec()
    }
}

/// Follows a beacon chain with verification: every beacon it returns is the next round and its
/// signature verifies against the chain's public key. Resubscribes like [`BlockWatcher`].
pub struct BeaconWatcher {
    client: Client,
    chain: crate::verify::beacon::PreparedChain,
    next: u64,
    sub: Option<Subscription>,
    window: Duration,
}

impl BeaconWatcher {
    /// Rounds from `from_round` (0: from the next round stored) of the chain `info` describes (the
    /// caller checks `info` against the chain hash it trusts).
    pub fn new(
        client: Client,
        info: &crate::verify::beacon::ChainInfo,
        from_round: u64,
    ) -> Result<Self, crate::verify::beacon::BeaconError> {
        Ok(Self { client, chain: info.prepare()?, next: from_round, sub: None, window: RECONNECT_WINDOW })
    }

    /// How long to try resubscribing after the stream broke.
    pub fn reconnect_window(mut self, d: Duration) -> Self {
        self.window = d;
        self
    }

    /// The round of the next beacon (0 before the first one, when following from "next").
    pub fn next_round(&self) -> u64 {
        self.next
    }

    /// The next verified beacon (waits as long as it takes).
    pub async fn next(&mut self) -> Result<crate::verify::beacon::Beacon, WatchError> {
        loop {
            if self.sub.is_none() {
                let (client, from) = (&self.client, self.next);
                self.sub = Some(reopen(self.window, || subscribe_beacons(client, from)).await?);
            }
            let Some(sub) = self.sub.as_mut() else { continue };
            let url = sub.url().to_string();
            match sub.next_as::<crate::wire::beacon::BeaconPacket>().await {
                Ok(Some(p)) => {
                    let beacon = crate::services::beacon::store::from_packet(p);
                    if self.next != 0 && beacon.round != self.next {
                        return Err(WatchError::Invalid {
                            url,
                            reason: format!("expected round {}, got {}", self.next, beacon.round),
                        });
                    }
                    self.chain.verify(&beacon).map_err(|e| WatchError::Invalid { url, reason: e.to_string() })?;
                    self.next = beacon.round + 1;
                    return Ok(beacon);
                }
                Ok(None) => self.sub = None,
                Err(e) if transient(&e) => {
                    debug!(error = %e, "beacon stream broke; resubscribing");
                    self.sub = None;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
