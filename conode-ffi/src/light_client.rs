//! A small blocking client of a conode's client port for apps (exported through uniffi): it fetches
//! the newest skipblock proof (`/Skipchain/GetUpdateChain` over WebSocket, protobuf) or a drand beacon
//! (HTTP `/info`, `/public/latest`, `/public/{round}`) and verifies it before returning anything.
//! No async runtime: one socket per call with read/write timeouts, TLS (wss/https) via rustls.
//! Every call that writes to a socket holds a [`conode_core::sigpipe::Shield`]: an app's process
//! need not ignore SIGPIPE for a node closing the connection not to end it.

use crate::checks;
use crate::light::{
    beacon_record, chain_record, verified_block, DrandChainInfo, LightError, VerifiedBeacon, VerifiedBlock,
};
use conode_core::client_api::{ClientUrl, ErrorCode, WireError};
use conode_core::verify::beacon::ChainInfo;
use conode_core::verify::skipchain_wire::{GetUpdateChain, Proof, MAX_PROOF_BYTES};
use prost::Message as _;
use rustls::pki_types::CertificateDer;
use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::HandshakeError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Connector, Message};

/// Largest JSON answer read from the drand API (a chain info or a beacon is well under 2 KiB).
const MAX_JSON_BYTES: u64 = 1024 * 1024;

/// A conode's client port, e.g. `ws://127.0.0.1:7771` (also `wss://`, `http://`, `https://`: the
/// WebSocket and HTTP APIs share the port). Every call blocks for at most about `timeout_ms` per
/// network step; call it off the UI thread.
#[derive(uniffi::Object)]
pub struct ConodeClient {
    /// `ws://` or `wss://` base, no trailing slash.
    ws_base: String,
    /// `http://` or `https://` base, no trailing slash.
    http_base: String,
    timeout: Duration,
    agent: ureq::Agent,
    /// Trust anchors given by the app (`with_ca`): when set, the only ones trusted for wss/https.
    anchors: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl std::fmt::Debug for ConodeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConodeClient").field("url", &self.ws_base).field("timeout", &self.timeout).finish()
    }
}

fn tls_connector(anchors: Option<&[CertificateDer<'static>]>) -> Result<Connector, LightError> {
    let roots = match anchors {
        None => rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        Some(certs) => {
            let mut store = rustls::RootCertStore::empty();
            for c in certs {
                store.add(c.clone()).map_err(|e| LightError::invalid(format!("ca_pem: {e}")))?;
            }
            store
        }
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| LightError::network(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// A client WebSocket of this module.
pub(crate) type Ws = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<TcpStream>>;

pub(crate) fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

impl ConodeClient {
    pub(crate) fn timeout_message(&self, url: &str) -> LightError {
        LightError::network(format!("{url}: no answer within {} ms", self.timeout.as_millis()))
    }

    /// One protobuf request over WebSocket to `/<service>/<method>`; returns the binary reply.
    fn ws_call(&self, service: &str, method: &str, body: Vec<u8>) -> Result<Vec<u8>, LightError> {
        let _shield = conode_core::sigpipe::Shield::new();
        let (mut ws, url) = self.ws_open(service, method)?;
        let net = |e: String| LightError::network(format!("{url}: {e}"));
        let read_err = |e: tungstenite::Error| match e {
            tungstenite::Error::Io(e) if is_timeout(&e) => self.timeout_message(&url),
            e => net(e.to_string()),
        };
        ws.send(Message::Binary(body)).map_err(read_err)?;
        loop {
            match ws.read().map_err(read_err)? {
                Message::Binary(reply) => {
                    let _ = ws.close(None);
                    let _ = ws.flush();
                    return Ok(reply);
                }
                Message::Close(Some(frame)) => {
                    let error = WireError::from_close_reason(&frame.reason);
                    return Err(LightError::server(error.code, format!("{url}: {}", error.message)));
                }
                Message::Close(None) => return Err(net("closed without a reply".into())),
                _ => continue,
            }
        }
    }

    /// Opens a WebSocket to `/<service>/<method>` (connect, TLS and handshake within the timeout;
    /// reads and writes then time out after it too). Returns it with its URL.
    pub(crate) fn ws_open(&self, service: &str, method: &str) -> Result<(Ws, String), LightError> {
        let url = format!("{}/{service}/{method}", self.ws_base);
        let request = url.as_str().into_client_request().map_err(|e| LightError::invalid(format!("{url}: {e}")))?;
        let host = request.uri().host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let tls = request.uri().scheme_str() == Some("wss");
        let port = request.uri().port_u16().unwrap_or(if tls { 443 } else { 80 });
        let net = |e: String| LightError::network(format!("{url}: {e}"));
        let addrs: Vec<_> =
            (host.as_str(), port).to_socket_addrs().map_err(|e| net(format!("cannot resolve {host}: {e}")))?.collect();
        let mut last = format!("{host} has no address");
        let mut stream = None;
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(e) => last = format!("cannot connect to {addr}: {e}"),
            }
        }
        let stream = stream.ok_or_else(|| net(last))?;
        stream.set_read_timeout(Some(self.timeout)).map_err(|e| net(e.to_string()))?;
        stream.set_write_timeout(Some(self.timeout)).map_err(|e| net(e.to_string()))?;
        let config = WebSocketConfig {
            max_message_size: Some(MAX_PROOF_BYTES),
            max_frame_size: Some(MAX_PROOF_BYTES),
            ..Default::default()
        };
        let connector = if tls { tls_connector(self.anchors.as_deref().map(Vec::as_slice))? } else { Connector::Plain };
        let (ws, _) = tungstenite::client_tls_with_config(request, stream, Some(config), Some(connector)).map_err(
            |e| match e {
                HandshakeError::Interrupted(_) => self.timeout_message(&url),
                HandshakeError::Failure(tungstenite::Error::Http(r)) => LightError::server(
                    ErrorCode::UnknownMethod,
                    format!("{url}: HTTP {} (no such service or method?)", r.status()),
                ),
                HandshakeError::Failure(tungstenite::Error::Io(e)) if is_timeout(&e) => self.timeout_message(&url),
                HandshakeError::Failure(e) => net(format!("WebSocket handshake: {e}")),
            },
        )?;
        Ok((ws, url))
    }

    /// GET `path` on the HTTP API; returns the body of a 200 answer.
    fn get_json(&self, path: &str) -> Result<String, LightError> {
        let _shield = conode_core::sigpipe::Shield::new();
        let url = format!("{}{path}", self.http_base);
        let mut response = self.agent.get(&url).call().map_err(|e| match e {
            ureq::Error::Timeout(_) => self.timeout_message(&url),
            ureq::Error::Io(e) if is_timeout(&e) => self.timeout_message(&url),
            e => LightError::network(format!("{url}: {e}")),
        })?;
        let status = response.status();
        let body = response.body_mut().with_config().limit(MAX_JSON_BYTES).read_to_string();
        if !status.is_success() {
            let detail = body.ok().map(|b| b.chars().take(200).collect::<String>()).unwrap_or_default();
            let code = if status == 404 { ErrorCode::NotFound } else { ErrorCode::Internal };
            return Err(LightError::server(code, format!("{url}: HTTP {status}: {}", detail.trim())));
        }
        body.map_err(|e| LightError::network(format!("{url}: reading the answer: {e}")))
    }

    /// A node's answer that does not decode is the node's fault (`Network`), not the caller's
    /// (`InvalidInput`); verification failures stay what they are.
    fn undecodable(&self, path: &str, e: LightError) -> LightError {
        match e {
            LightError::InvalidInput { reason } => {
                LightError::network(format!("{}{path}: undecodable answer: {reason}", self.http_base))
            }
            other => other,
        }
    }

    /// The chain info, from `/{chain_hash}/info` when pinned (and checked to be that chain) or from
    /// `/info` otherwise; the path prefix for later requests of the same chain.
    pub(crate) fn fetch_chain(&self, chain_hash: Option<&str>) -> Result<(ChainInfo, String), LightError> {
        let prefix = match chain_hash {
            Some(h) => {
                let h = h.trim().to_ascii_lowercase();
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(LightError::invalid(format!("chain hash `{h}`: expected 64 hex characters")));
                }
                format!("/{h}")
            }
            None => String::new(),
        };
        let path = format!("{prefix}/info");
        let info = checks::chain_info(&self.get_json(&path)?).map_err(|e| self.undecodable(&path, e.into()))?;
        if let Some(h) = chain_hash {
            checks::pinned(&info, h)?;
        }
        Ok((info, prefix))
    }

    fn fetch_beacon(&self, chain_hash: Option<String>, which: &str) -> Result<VerifiedBeacon, LightError> {
        let (info, prefix) = self.fetch_chain(chain_hash.as_deref())?;
        let path = format!("{prefix}/public/{which}");
        let json = self.get_json(&path)?;
        let beacon = checks::beacon_json(&info, &json).map_err(|e| self.undecodable(&path, e.into()))?;
        Ok(beacon_record(&info, beacon))
    }
}

#[uniffi::export]
impl ConodeClient {
    /// A client of the conode whose client port is at `url` (`ws://host:port`, `wss://`, `http://`
    /// or `https://`), waiting at most `timeout_ms` (≥ 1) for each network step.
    #[uniffi::constructor]
    pub fn new(url: String, timeout_ms: u64) -> Result<Arc<Self>, LightError> {
        Self::build(url, timeout_ms, None)
    }

    /// As [`ConodeClient::new`], for a conode behind a private CA: `ca_pem` holds one or more PEM
    /// CA certificates, and only they are trusted for `wss://`/`https://` (the public roots are not).
    #[uniffi::constructor]
    pub fn with_ca(url: String, timeout_ms: u64, ca_pem: String) -> Result<Arc<Self>, LightError> {
        use rustls::pki_types::pem::PemObject;
        let mut anchors = Vec::new();
        for (i, c) in CertificateDer::pem_slice_iter(ca_pem.as_bytes()).enumerate() {
            let cert = c.map_err(|e| LightError::invalid(format!("ca_pem: certificate {i}: {e}")))?;
            rustls::RootCertStore::empty()
                .add(cert.clone())
                .map_err(|e| LightError::invalid(format!("ca_pem: certificate {i}: {e}")))?;
            anchors.push(cert);
        }
        if anchors.is_empty() {
            return Err(LightError::invalid("ca_pem: no PEM certificate (-----BEGIN CERTIFICATE-----) found"));
        }
        Self::build(url, timeout_ms, Some(anchors))
    }
}

impl ConodeClient {
    fn build(
        url: String,
        timeout_ms: u64,
        anchors: Option<Vec<CertificateDer<'static>>>,
    ) -> Result<Arc<Self>, LightError> {
        if timeout_ms == 0 {
            return Err(LightError::invalid("timeout_ms must be at least 1"));
        }
        let url = ClientUrl::parse(&url).map_err(|e| LightError::invalid(format!("url: {e}")))?;
        let (ws_base, http_base) = (url.ws_base(), url.http_base());
        let timeout = Duration::from_millis(timeout_ms);
        let mut config = ureq::Agent::config_builder();
        if let Some(certs) = &anchors {
            let roots = ureq::tls::RootCerts::new_with_certs(
                &certs.iter().map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned()).collect::<Vec<_>>(),
            );
            config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
        }
        let agent: ureq::Agent = config
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent(format!("conode-light/{}", conode_core::VERSION))
            .build()
            .into();
        Ok(Arc::new(ConodeClient { ws_base, http_base, timeout, agent, anchors: anchors.map(Arc::new) }))
    }
}

#[uniffi::export]
impl ConodeClient {
    /// The WebSocket base URL this client talks to.
    pub fn url(&self) -> String {
        self.ws_base.clone()
    }

    /// The conode's drand chain (`/info`), checked to be self-consistent (its chain hash matches its
    /// fields, its key is valid). Pin `chain_hash` to recognize the chain in later calls.
    pub fn chain_info(&self) -> Result<DrandChainInfo, LightError> {
        Ok(chain_record(&self.fetch_chain(None)?.0))
    }

    /// The latest beacon, verified. With `chain_hash` (hex) the chain must be that one; without it,
    /// the conode's own `/info` is trusted for the chain's key. "Latest" is the conode's word: the
    /// signature proves the round's value, not that no later round exists.
    pub fn latest_beacon(&self, chain_hash: Option<String>) -> Result<VerifiedBeacon, LightError> {
        self.fetch_beacon(chain_hash, "latest")
    }

    /// The beacon of `round` (≥ 1), verified, as for [`ConodeClient::latest_beacon`].
    pub fn beacon(&self, chain_hash: Option<String>, round: u64) -> Result<VerifiedBeacon, LightError> {
        if round == 0 {
            return Err(LightError::invalid("round 0 is the genesis: it has no signature to verify"));
        }
        self.fetch_beacon(chain_hash, &round.to_string())
    }

    /// The newest block of a skipchain: fetches the proof from `trusted_hash` (hex genesis id or a
    /// block already verified) with `/Skipchain/GetUpdateChain` and verifies every link.
    pub fn latest_block(&self, trusted_hash: String) -> Result<VerifiedBlock, LightError> {
        let from = checks::hash_hex(&trusted_hash, "trusted hash")?;
        let reply =
            self.ws_call("Skipchain", "GetUpdateChain", GetUpdateChain { from: from.clone() }.encode_to_vec())?;
        let proof =
            Proof::decode(reply.as_slice()).map_err(|e| LightError::network(format!("undecodable proof: {e}")))?;
        let checked = checks::skipchain_blocks(&from, proof.blocks)?;
        Ok(verified_block(checked.latest, checked.hops))
    }
}
