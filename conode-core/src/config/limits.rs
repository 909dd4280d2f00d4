//! `[Limits]` of private.toml: how much the node's two ports give to any one client or peer. The
//! defaults suit a node on the public internet; every value can be changed, and the table may be
//! left out entirely.

use super::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The limits of the node port (P) and the client port (P+1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Client port: time to receive a request's headers.
    pub client_header_timeout: Duration,
    /// Client port: a connection (or WebSocket) with no traffic for this long is closed.
    pub client_idle_timeout: Duration,
    /// Client port: connections served at once; more are closed at accept.
    pub client_max_connections: usize,
    /// Client port: connections served at once from one IP address.
    pub client_max_connections_per_address: usize,
    /// Client port: largest WebSocket message (larger ones are answered with close code 1009).
    pub client_max_message: usize,
    /// Client port: requests (HTTP requests and WebSocket messages) one source may send per
    /// second, sustained; more get 429 or the `unavailable` close with `retry_after_ms`.
    pub client_requests_per_second: u32,
    /// Client port: requests one source may send at once before the rate applies.
    pub client_request_burst: u32,
    /// Client port: whether loopback clients are rate-limited too (not by default: behind a
    /// reverse proxy every client comes from loopback, and the proxy limits them).
    pub client_rate_limit_loopback: bool,
    /// Client port: chains one source may create per minute (`/Skipchain/CreateChain`; as many
    /// at once): every member of a chain's roster stores it for good.
    pub client_chains_per_minute: u32,
    /// Soft limit of open files the node raises itself to at start (at most the hard limit).
    pub max_open_files: u64,
    /// Node port: largest frame from a known peer.
    pub peer_max_frame: usize,
    /// Node port: a connection on which nothing arrives (and nothing is awaited) is closed.
    pub peer_idle_timeout: Duration,
    /// Node port: time to receive a whole frame once its length arrived.
    pub peer_frame_timeout: Duration,
    /// Node port: connections of peers in no known roster served at once (introductions only).
    pub stranger_connections: usize,
    /// Node port: bytes of frames from such peers held at once, all together.
    pub stranger_memory: usize,
    /// Node port: idle and frame deadline of such a peer.
    pub stranger_timeout: Duration,
    /// Node port: requests of one known peer handled at once; more are answered with an error
    /// at once (a peer cannot make the node run unbounded work for it).
    pub peer_requests_in_flight: usize,
    /// Node port: bytes of one known peer's requests held by running handlers (a request larger
    /// than this is still served when nothing else of that peer runs).
    pub peer_request_memory: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            client_header_timeout: Duration::from_secs(10),
            client_idle_timeout: Duration::from_secs(120),
            client_max_connections: 4096,
            client_max_connections_per_address: 256,
            client_max_message: 8 << 20,
            client_requests_per_second: 100,
            client_request_burst: 1000,
            client_rate_limit_loopback: false,
            client_chains_per_minute: 60,
            max_open_files: 65536,
            peer_max_frame: 16 << 20,
            peer_idle_timeout: Duration::from_secs(300),
            peer_frame_timeout: Duration::from_secs(60),
            stranger_connections: 16,
            stranger_memory: 16 << 20,
            stranger_timeout: Duration::from_secs(10),
            peer_requests_in_flight: 1024,
            peer_request_memory: 64 << 20,
        }
    }
}

/// The `[Limits]` table as written: every field optional, times in milliseconds.
#[derive(Serialize, Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    #[serde(rename = "ClientHeaderTimeoutMs", skip_serializing_if = "Option::is_none")]
    client_header_timeout_ms: Option<u64>,
    #[serde(rename = "ClientIdleTimeoutMs", skip_serializing_if = "Option::is_none")]
    client_idle_timeout_ms: Option<u64>,
    #[serde(rename = "ClientMaxConnections", skip_serializing_if = "Option::is_none")]
    client_max_connections: Option<usize>,
    #[serde(rename = "ClientMaxConnectionsPerAddress", skip_serializing_if = "Option::is_none")]
    client_max_connections_per_address: Option<usize>,
    #[serde(rename = "ClientMaxMessage", skip_serializing_if = "Option::is_none")]
    client_max_message: Option<usize>,
    #[serde(rename = "ClientRequestsPerSecond", skip_serializing_if = "Option::is_none")]
    client_requests_per_second: Option<u32>,
    #[serde(rename = "ClientRequestBurst", skip_serializing_if = "Option::is_none")]
    client_request_burst: Option<u32>,
    #[serde(rename = "ClientRateLimitLoopback", skip_serializing_if = "Option::is_none")]
    client_rate_limit_loopback: Option<bool>,
    #[serde(rename = "ClientChainsPerMinute", skip_serializing_if = "Option::is_none")]
    client_chains_per_minute: Option<u32>,
    #[serde(rename = "MaxOpenFiles", skip_serializing_if = "Option::is_none")]
    max_open_files: Option<u64>,
    #[serde(rename = "PeerMaxFrame", skip_serializing_if = "Option::is_none")]
    peer_max_frame: Option<usize>,
    #[serde(rename = "PeerIdleTimeoutMs", skip_serializing_if = "Option::is_none")]
    peer_idle_timeout_ms: Option<u64>,
    #[serde(rename = "PeerFrameTimeoutMs", skip_serializing_if = "Option::is_none")]
    peer_frame_timeout_ms: Option<u64>,
    #[serde(rename = "StrangerConnections", skip_serializing_if = "Option::is_none")]
    stranger_connections: Option<usize>,
    #[serde(rename = "StrangerMemory", skip_serializing_if = "Option::is_none")]
    stranger_memory: Option<usize>,
    #[serde(rename = "StrangerTimeoutMs", skip_serializing_if = "Option::is_none")]
    stranger_timeout_ms: Option<u64>,
    #[serde(rename = "PeerRequestsInFlight", skip_serializing_if = "Option::is_none")]
    peer_requests_in_flight: Option<usize>,
    #[serde(rename = "PeerRequestMemory", skip_serializing_if = "Option::is_none")]
    peer_request_memory: Option<usize>,
}

impl RawLimits {
    pub(crate) fn is_empty(&self) -> bool {
        *self == RawLimits::default()
    }
}

/// `v` (or `default` when unset); zero is refused, naming the field.
fn above_zero<T: PartialEq + Default>(path: &Path, field: &str, v: Option<T>, default: T) -> Result<T, ConfigError> {
    match v {
        None => Ok(default),
        Some(n) if n == T::default() => Err(ConfigError::field(path, format!("Limits.{field}"), "must be above 0")),
        Some(n) => Ok(n),
    }
}

impl Limits {
    /// Validates the table (zero counts and times are refused: they would stop the node serving).
    pub(crate) fn from_raw(path: &Path, raw: &RawLimits) -> Result<Self, ConfigError> {
        let d = Limits::default();
        let ms = |field: &str, v: Option<u64>, default: Duration| match v {
            None => Ok(default),
            Some(0) => Err(ConfigError::field(path, format!("Limits.{field}"), "must be above 0")),
            Some(n) => Ok(Duration::from_millis(n)),
        };
        let count = |field: &str, v: Option<usize>, default: usize| above_zero(path, field, v, default);
        let rate = |field: &str, v: Option<u32>, default: u32| above_zero(path, field, v, default);
        let limits = Limits {
            client_header_timeout: ms("ClientHeaderTimeoutMs", raw.client_header_timeout_ms, d.client_header_timeout)?,
            client_idle_timeout: ms("ClientIdleTimeoutMs", raw.client_idle_timeout_ms, d.client_idle_timeout)?,
            client_max_connections: count(
                "ClientMaxConnections",
                raw.client_max_connections,
                d.client_max_connections,
            )?,
            client_max_connections_per_address: count(
                "ClientMaxConnectionsPerAddress",
                raw.client_max_connections_per_address,
                d.client_max_connections_per_address,
            )?,
            client_max_message: count("ClientMaxMessage", raw.client_max_message, d.client_max_message)?,
            client_requests_per_second: rate(
                "ClientRequestsPerSecond",
                raw.client_requests_per_second,
                d.client_requests_per_second,
            )?,
            client_request_burst: rate("ClientRequestBurst", raw.client_request_burst, d.client_request_burst)?,
            client_rate_limit_loopback: raw.client_rate_limit_loopback.unwrap_or(d.client_rate_limit_loopback),
            client_chains_per_minute: rate(
                "ClientChainsPerMinute",
                raw.client_chains_per_minute,
                d.client_chains_per_minute,
            )?,
            max_open_files: raw.max_open_files.unwrap_or(d.max_open_files),
            peer_max_frame: count("PeerMaxFrame", raw.peer_max_frame, d.peer_max_frame)?,
            peer_idle_timeout: ms("PeerIdleTimeoutMs", raw.peer_idle_timeout_ms, d.peer_idle_timeout)?,
            peer_frame_timeout: ms("PeerFrameTimeoutMs", raw.peer_frame_timeout_ms, d.peer_frame_timeout)?,
            stranger_connections: count("StrangerConnections", raw.stranger_connections, d.stranger_connections)?,
            stranger_memory: count("StrangerMemory", raw.stranger_memory, d.stranger_memory)?,
            stranger_timeout: ms("StrangerTimeoutMs", raw.stranger_timeout_ms, d.stranger_timeout)?,
            peer_requests_in_flight: count(
                "PeerRequestsInFlight",
                raw.peer_requests_in_flight,
                d.peer_requests_in_flight,
            )?,
            peer_request_memory: count("PeerRequestMemory", raw.peer_request_memory, d.peer_request_memory)?,
        };
        if limits.peer_max_frame > u32::MAX as usize {
            return Err(ConfigError::field(path, "Limits.PeerMaxFrame", "must fit in 32 bits"));
        }
        Ok(limits)
    }

    /// The table to write: only the values that differ from the defaults.
    pub(crate) fn to_raw(&self) -> RawLimits {
        let d = Limits::default();
        let ms = |v: Duration, dv: Duration| (v != dv).then_some(v.as_millis() as u64);
        let n = |v: usize, dv: usize| (v != dv).then_some(v);
        RawLimits {
            client_header_timeout_ms: ms(self.client_header_timeout, d.client_header_timeout),
            client_idle_timeout_ms: ms(self.client_idle_timeout, d.client_idle_timeout),
            client_max_connections: n(self.client_max_connections, d.client_max_connections),
            client_max_connections_per_address: n(
                self.client_max_connections_per_address,
                d.client_max_connections_per_address,
            ),
            client_max_message: n(self.client_max_message, d.client_max_message),
            client_requests_per_second: (self.client_requests_per_second != d.client_requests_per_second)
                .then_some(self.client_requests_per_second),
            client_request_burst: (self.client_request_burst != d.client_request_burst)
                .then_some(self.client_request_burst),
            client_rate_limit_loopback: (self.client_rate_limit_loopback != d.client_rate_limit_loopback)
                .then_some(self.client_rate_limit_loopback),
            client_chains_per_minute: (self.client_chains_per_minute != d.client_chains_per_minute)
                .then_some(self.client_chains_per_minute),
            max_open_files: (self.max_open_files != d.max_open_files).then_some(self.max_open_files),
            peer_max_frame: n(self.peer_max_frame, d.peer_max_frame),
            peer_idle_timeout_ms: ms(self.peer_idle_timeout, d.peer_idle_timeout),
            peer_frame_timeout_ms: ms(self.peer_frame_timeout, d.peer_frame_timeout),
            stranger_connections: n(self.stranger_connections, d.stranger_connections),
            stranger_memory: n(self.stranger_memory, d.stranger_memory),
            stranger_timeout_ms: ms(self.stranger_timeout, d.stranger_timeout),
            peer_requests_in_flight: n(self.peer_requests_in_flight, d.peer_requests_in_flight),
            peer_request_memory: n(self.peer_request_memory, d.peer_request_memory),
        }
    }
}
