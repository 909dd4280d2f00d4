//! The one client of a conode's client port, used by the CLI, the C ABI, Python and tests: protobuf
//! requests over WebSocket (`/<Service>/<Method>`) and drand's HTTP API, with one URL type
//! ([`ClientUrl`]) and service errors decoded once into a stable [`ErrorCode`]. `Client` is async;
//! `BlockingClient` wraps it for code without a runtime.

pub use super::trust::{Trust, TrustError};
use crate::client_api::{ClientUrl, ErrorCode, UrlError, WireError};
use crate::services::cosi::messages::{SignRequest, SignResponse};
use crate::services::skipchain::messages::{Append, BlockReply, CreateChain, GetBlock};
use crate::services::status::messages::{StatusRequest, StatusResponse};
use crate::verify::beacon::{Beacon, ChainInfo};
use crate::verify::skipchain::SkipBlock;
use crate::verify::skipchain_wire::{decode_proof, GetUpdateChain};
use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Largest JSON answer read from the drand API (a chain info or a beacon is well under 2 KiB).
const MAX_JSON_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("{url}: cannot connect: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: timed out after {after:?}")]
    Timeout { url: String, after: Duration },
    /// The node answered with an error (its code says which kind).
    #[error("{url}: {error}")]
    Service { url: String, error: WireError },
    /// The answer does not fit the protocol (undecodable, closed without a reply, HTTP error).
    #[error("{url}: protocol error: {reason}")]
    Protocol { url: String, reason: String },
    #[error("a blocking client call was made inside an async runtime; use the async Client")]
    BlockingInAsync,
    /// The trust anchors given for `wss://`/`https://` cannot be used.
    #[error(transparent)]
    Trust(#[from] TrustError),
}

impl ClientError {
    /// The service's error code, when the node answered with one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Service { error, .. } => Some(error.code),
            _ => None,
        }
    }

    /// The URL the error is about, when there is one.
    pub fn url(&self) -> Option<&str> {
        match self {
            ClientError::Connect { url, .. }
            | ClientError::Timeout { url, .. }
            | ClientError::Service { url, .. }
            | ClientError::Protocol { url, .. } => Some(url),
            ClientError::Url(e) => Some(&e.url),
            ClientError::BlockingInAsync | ClientError::Trust(_) => None,
        }
    }
}

/// Sends one request to `base/<service>/<method>` (base: any form [`ClientUrl`] accepts) and returns
/// the reply.
pub async fn call(
    base: &str,
    service: &str,
    method: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    Client::new(ClientUrl::parse(base)?, timeout).call(service, method, body).await
}

/// [`call`] trusting `trust`'s anchors (besides the platform's) for `wss://`.
pub async fn call_with(
    trust: &Trust,
    base: &str,
    service: &str,
    method: &str,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Vec<u8>, ClientError> {
    Client::new(ClientUrl::parse(base)?, timeout).with_trust(trust.clone()).call(service, method, body).await
}

/// A client of one conode's client port.
#[derive(Clone, Debug)]
pub struct Client {
    url: ClientUrl,
    timeout: Duration,
    /// Anchors for `wss://`/`https://` (the platform's roots when empty).
    trust: Trust,
}

impl Client {
    /// Every call fails with `Timeout` after `timeout`.
    pub fn new(url: ClientUrl, timeout: Duration) -> Self {
        Self { url, timeout, trust: Trust::system() }
    }

    /// Trusts `trust`'s anchors (besides the platform's) when the URL is `wss://`/`https://`.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// The TLS configuration for this client's URL: `None` for plain `ws://`/`http://`.
    fn tls(&self) -> Result<Option<Arc<rustls::ClientConfig>>, ClientError> {
        if self.url.is_secure() {
            Ok(Some(self.trust.client_config()?))
        } else {
            Ok(None)
        }
    }

    /// From any URL form [`ClientUrl`] accepts.
    pub fn parse(url: &str, timeout: Duration) -> Result<Self, ClientError> {
        Ok(Self::new(ClientUrl::parse(url)?, timeout))
    }

    pub fn url(&self) -> &ClientUrl {
        &self.url
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One protobuf request; the reply bytes.
    pub async fn call(&self, service: &str, method: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let url = self.url.method(service, method);
        let tls = self.tls()?;
        match tokio::time::timeout(self.timeout, ws_call(&url, tls, body)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { url, after: self.timeout }),
        }
    }

    /// One typed request: encodes `req`, decodes the reply as `R`.
    pub async fn request<R: prost::Message + Default>(
        &self,
        service: &str,
        method: &str,
        req: &impl prost::Message,
    ) -> Result<R, ClientError> {
        let reply = self.call(service, method, req.encode_to_vec()).await?;
        R::decode(reply.as_slice()).map_err(|e| ClientError::Protocol {
            url: self.url.method(service, method),
            reason: format!("undecodable reply: {e}"),
        })
    }

    /// `/Status/Request`.
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.request("Status", "Request", &StatusRequest {}).await
    }

    /// `/Cosi/Sign` (the node must allow open signing).
    pub async fn sign(&self, req: &SignRequest) -> Result<SignResponse, ClientError> {
        self.request("Cosi", "Sign", req).await
    }

    /// `/Skipchain/CreateChain`: the genesis block.
    pub async fn create_chain(&self, req: &CreateChain) -> Result<SkipBlock, ClientError> {
        self.block_of("CreateChain", self.request("Skipchain", "CreateChain", req).await?)
    }

    /// `/Skipchain/Append` (build the request with [`Append::signed`]).
    pub async fn append(&self, req: &Append) -> Result<SkipBlock, ClientError> {
        self.block_of("Append", self.request("Skipchain", "Append", req).await?)
    }

    /// `/Skipchain/GetBlock`.
    pub async fn block(&self, req: &GetBlock) -> Result<SkipBlock, ClientError> {
        self.block_of("GetBlock", self.request("Skipchain", "GetBlock", req).await?)
    }

    /// `/Skipchain/GetUpdateChain`: the shortest proof from `from` to the newest block, decoded with
    /// the light client's bounds (verify it with [`crate::verify::skipchain::verify_proof`]).
    pub async fn update_chain(&self, from: &[u8]) -> Result<Vec<SkipBlock>, ClientError> {
        let reply =
            self.call("Skipchain", "GetUpdateChain", GetUpdateChain { from: from.to_vec() }.encode_to_vec()).await?;
        decode_proof(&reply).map_err(|e| ClientError::Protocol {
            url: self.url.method("Skipchain", "GetUpdateChain"),
            reason: format!("undecodable proof: {e}"),
        })
    }

    fn block_of(&self, method: &str, reply: BlockReply) -> Result<SkipBlock, ClientError> {
        reply.block.ok_or_else(|| ClientError::Protocol {
            url: self.url.method("Skipchain", method),
            reason: "reply without a block".into(),
        })
    }

    /// A GET on the HTTP side of the port (`path` starts with `/`); the body of a 2xx answer. A 404
    /// is a `NotFound` service error.
    pub async fn http_get(&self, path: &str) -> Result<String, ClientError> {
        let url = format!("{}{path}", self.url.http_base());
        let tls = self.tls()?;
        match tokio::time::timeout(self.timeout, http_get(&url, tls)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout { url, after: self.timeout }),
        }
    }

    /// drand's chain info (`/info`), parsed (not yet checked against a pinned chain hash).
    pub async fn beacon_info(&self) -> Result<ChainInfo, ClientError> {
        let json = self.http_get("/info").await?;
        ChainInfo::from_drand_json(&json).map_err(|e| self.bad_json("/info", e))
    }

    /// A beacon (`/public/latest` for `None`), parsed (verify it with the chain info).
    pub async fn beacon(&self, round: Option<u64>) -> Result<Beacon, ClientError> {
        let path = match round {
            Some(r) => format!("/public/{r}"),
            None => "/public/latest".into(),
        };
        let json = self.http_get(&path).await?;
        Beacon::from_drand_json(&json).map_err(|e| self.bad_json(&path, e))
    }

    fn bad_json(&self, path: &str, e: impl std::fmt::Display) -> ClientError {
        ClientError::Protocol { url: format!("{}{path}", self.url.http_base()), reason: e.to_string() }
    }
}

async fn ws_call(url: &str, tls: Option<Arc<rustls::ClientConfig>>, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
    // Plain only for ws:// (no connector); wss:// always through our trust configuration.
    let connector = match tls {
        Some(config) => tokio_tungstenite::Connector::Rustls(config),
        None => tokio_tungstenite::Connector::Plain,
    };
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
        .await
        .map_err(|e| ClientError::Connect { url: url.to_string(), reason: e.to_string() })?;
    let proto = |reason: String| ClientError::Protocol { url: url.to_string(), reason };
    ws.send(Message::Binary(body)).await.map_err(|e| proto(e.to_string()))?;
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| proto(e.to_string()))? {
            Message::Binary(b) => {
                let _ = ws.close(None).await;
                return Ok(b.to_vec());
            }
            Message::Close(Some(frame)) => {
                return Err(ClientError::Service {
                    url: url.to_string(),
                    error: WireError::from_close_reason(&frame.reason),
                })
            }
            Message::Close(None) => return Err(proto("closed without reply".into())),
            _ => continue,
        }
    }
    Err(proto("closed without reply".into()))
}

async fn http_get(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<String, ClientError> {
    let connect = |e: reqwest::Error| ClientError::Connect { url: url.to_string(), reason: with_causes(&e) };
    let mut builder = reqwest::Client::builder();
    if let Some(config) = tls {
        builder = builder.use_preconfigured_tls((*config).clone()).https_only(true);
    }
    let response = builder.build().map_err(connect)?.get(url).send().await.map_err(connect)?;
    let status = response.status();
    if response.content_length().is_some_and(|n| n as usize > MAX_JSON_BYTES) {
        return Err(ClientError::Protocol { url: url.to_string(), reason: "answer too large".into() });
    }
    let body = response.text().await.map_err(connect)?;
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(ClientError::Service { url: url.to_string(), error: WireError::new(ErrorCode::NotFound, body) });
    }
    if !status.is_success() {
        return Err(ClientError::Protocol { url: url.to_string(), reason: format!("HTTP {status}: {body}") });
    }
    if body.len() > MAX_JSON_BYTES {
        return Err(ClientError::Protocol { url: url.to_string(), reason: "answer too large".into() });
    }
    Ok(body)
}

/// An error and its causes (reqwest hides the TLS reason, e.g. `UnknownIssuer`, in its sources).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text = format!("{text}: {s_text}");
        }
        source = s.source();
    }
    text
}

/// [`Client`] for code without an async runtime: every call blocks on a small runtime of its own
/// (and refuses to run inside another runtime's worker).
#[derive(Debug)]
pub struct BlockingClient {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl BlockingClient {
    pub fn new(client: Client) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .on_thread_start(crate::sigpipe::block_in_this_thread)
            .enable_all()
            .build()
            .map_err(|e| ClientError::Connect {
                url: client.url().to_string(),
                reason: format!("cannot create a runtime: {e}"),
            })?;
        Ok(Self { client, runtime })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs one of the async client's calls to completion.
    pub fn run<'a, T, F>(&'a self, call: impl FnOnce(&'a Client) -> F) -> Result<T, ClientError>
    where
        F: std::future::Future<Output = Result<T, ClientError>> + 'a,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            return Err(ClientError::BlockingInAsync);
        }
        // The connection's reads and writes run on this thread, which may be a C host's.
        let _shield = crate::sigpipe::Shield::new();
        self.runtime.block_on(call(&self.client))
    }

    pub fn call(&self, service: &str, method: &str, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        self.run(|c| c.call(service, method, body))
    }
}
