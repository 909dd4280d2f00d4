//! The local administration channel: operator actions that must never be reachable from the network
//! (hot backup, founding a network, approving a beacon group, resharing the beacon group) go
//! through a Unix socket beside the database, `<data dir>/admin-<id16>.sock`, mode 0600 and
//! answering only peers with the node's own user id (or root). The node starts it; `conode
//! backup`, `conode network create`, `conode beacon approve` and `conode beacon reshare` talk to it.
//!
//! Protocol: the client sends one line, `backup\n`, or `found <len>\n` followed by `len` bytes of a
//! `CreateNetwork` message, or `approve-beacon <len>\n` followed by `len` bytes of an
//! `InitRequest`, or `reshare <len>\n` / `approve-reshare <len>\n` followed by `len`
//! bytes of a `ReshareRequest`; the node answers with frames `kind:u8 | len:u32 BE | payload`: for
//! a backup `D` backup bytes and `P` progress (`"<done> <total>"`), then `M` (the manifest, the
//! founded network, the resharing agreed or the approval recorded, as JSON) on success or `E` (a
//! message) on failure.

use crate::backup::{write_backup, Manifest};
use crate::events::{EventBus, NodeEvent};
use crate::services::beacon::messages::InitRequest;
use crate::services::beacon::{ApprovedGroup, BeaconService};
use crate::services::dkg::reshare::{ReshareRequest, ReshareResponse};
use crate::services::membership::messages::CreateNetwork;
use crate::services::membership::MembershipService;
use crate::services::Tasks;
use crate::storage::Storage;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Largest frame a client accepts (data frames are 256 KiB).
const MAX_FRAME: usize = 4 * 1024 * 1024;
const DATA_CHUNK: usize = 256 * 1024;
/// Largest `found` or `reshare` request (a roster of a few thousand members).
const MAX_REQUEST: usize = 16 * 1024 * 1024;

/// The node's answer to `found`: the network it founded and its membership state after it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Founded {
    /// Hex id (genesis hash) of the network.
    pub network: String,
    pub state: String,
}

/// The node's answer to `reshare`: the resharing its members agreed on (see `ReshareResponse`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reshared {
    pub group_toml: String,
    pub transition_round: u64,
    pub chain_hash: String,
    pub qualified: Vec<u32>,
    pub confirmed: u32,
    pub participants: u32,
    pub log: Vec<String>,
}

impl From<ReshareResponse> for Reshared {
    fn from(r: ReshareResponse) -> Self {
        Reshared {
            group_toml: r.group_toml,
            transition_round: r.transition_round,
            chain_hash: r.chain_hash,
            qualified: r.qualified,
            confirmed: r.confirmed,
            participants: r.participants,
            log: r.log,
        }
    }
}

/// The node's answer to `approve-reshare`: the resharing its operator approved.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Approved {
    pub members: usize,
    pub threshold: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin socket {path}: {reason} (is the node running, and are you its user?)")]
    Connect { path: PathBuf, reason: String },
    #[error("admin channel: {0}")]
    Io(String),
    #[error("the node refused: {0}")]
    Refused(String),
    #[error("admin channel: bad answer: {0}")]
    Protocol(String),
}

/// Where the node of `node_id` with data in `data_dir` listens.
pub fn socket_path(data_dir: &Path, node_id: &str) -> PathBuf {
    data_dir.join(format!("admin-{}.sock", &node_id[..node_id.len().min(16)]))
}

/// Backups served by this node (for `/metrics`).
#[derive(Default)]
pub struct BackupStats {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
}

/// What a backup tells the rest of the node: its counters and the embedder's event queue.
#[derive(Clone)]
pub struct BackupObserver {
    pub stats: Arc<BackupStats>,
    pub events: EventBus,
}

/// Starts the channel for a running node (a failure is logged: the node runs without it).
#[cfg(unix)]
pub fn serve(
    data_dir: &Path,
    node_id: &str,
    storage: Storage,
    membership: MembershipService,
    beacon: BeaconService,
    tasks: &Tasks,
    observer: BackupObserver,
) {
    let path = socket_path(data_dir, node_id);
    match bind(&path) {
        Ok(listener) => {
            info!(socket = %path.display(), "admin channel listening");
            let node_id = node_id.to_string();
            let token = tasks.token().clone();
            let spawner = tasks.clone();
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        _ = token.cancelled() => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                let (storage, node_id) = (storage.clone(), node_id.clone());
                                let blocking = spawner.clone();
                                let node = NodeHandles {
                                    storage,
                                    membership: membership.clone(),
                                    beacon: beacon.clone(),
                                    observer: observer.clone(),
                                };
                                spawner.spawn(async move {
                                    if let Err(e) = handle(stream, node, node_id, blocking).await {
                                        warn!(error = %e, "admin request failed");
                                    }
                                });
                            }
                            Err(e) => {
                                warn!(error = %e, "admin channel accept");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        }
                    }
                }
                let _ = std::fs::remove_file(&path);
            });
        }
        Err(e) => warn!(socket = %path.display(), error = %e, "admin channel not started (no hot backup)"),
    }
}

#[cfg(not(unix))]
pub fn serve(
    _data_dir: &Path,
    _node_id: &str,
    _storage: Storage,
    _membership: MembershipService,
    _beacon: BeaconService,
    _tasks: &Tasks,
    _observer: BackupObserver,
) {
    warn!("admin channel: Unix sockets only; hot backup and founding are not available on this platform");
}

/// What the channel's requests act on.
#[cfg(unix)]
struct NodeHandles {
    storage: Storage,
    membership: MembershipService,
    beacon: BeaconService,
    observer: BackupObserver,
}

/// Binds the socket with mode 0600 from the start (bound under a temporary name, restricted, then
/// renamed), replacing a stale socket no node answers on.
#[cfg(unix)]
fn bind(path: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "another node answers on it"));
        }
        std::fs::remove_file(path)?;
    }
    let tmp = path.with_extension(format!("sock.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = tokio::net::UnixListener::bind(&tmp)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)?;
    Ok(listener)
}

#[cfg(unix)]
async fn handle(
    stream: tokio::net::UnixStream,
    node: NodeHandles,
    node_id: String,
    tasks: Tasks,
) -> Result<(), String> {
    let cred = stream.peer_cred().map_err(|e| e.to_string())?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if cred.uid() != me && cred.uid() != 0 {
        return Err(format!("refused a peer with uid {} (the node runs as {me})", cred.uid()));
    }
    let stream = stream.into_std().map_err(|e| e.to_string())?;
    stream.set_nonblocking(false).map_err(|e| e.to_string())?;
    let joined = tasks.spawn_blocking(move || serve_one(stream, &node, &node_id)).await;
    joined.map_err(|e| e.to_string())?
}

#[cfg(unix)]
fn serve_one(stream: std::os::unix::net::UnixStream, node: &NodeHandles, node_id: &str) -> Result<(), String> {
    let (storage, observer) = (&node.storage, &node.observer);
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    (&mut reader).take(256).read_line(&mut line).map_err(|e| e.to_string())?;
    let mut sink = FrameSink { out: std::io::BufWriter::new(&stream), buf: Vec::with_capacity(DATA_CHUNK) };
    let request = line.trim();
    let with_body = [
        ("found ", Request::Found),
        ("approve-beacon ", Request::ApproveBeacon),
        ("reshare ", Request::Reshare),
        ("approve-reshare ", Request::Approve),
    ];
    if let Some((prefix, kind)) = with_body.iter().find(|(prefix, _)| request.starts_with(prefix)) {
        let answer = act(&mut reader, kind, &request[prefix.len()..], node);
        return match answer {
            Ok(json) => sink.frame(b'M', &json).map_err(|e| e.to_string()),
            Err(e) => {
                let _ = sink.frame(b'E', e.as_bytes());
                Err(e)
            }
        };
    }
    match request {
        "backup" => {
            info!("backup started through the admin channel");
            let started = std::time::Instant::now();
            let progress_out = &stream;
            let mut last = std::time::Instant::now();
            let result = write_backup(storage, node_id, &mut sink, |done, total| {
                if last.elapsed() >= Duration::from_millis(200) {
                    last = std::time::Instant::now();
                    // Progress is best effort; a broken socket fails the next data frame.
                    let _ = frame(&mut &*progress_out, b'P', format!("{done} {total}").as_bytes());
                }
            });
            match result {
                Ok((manifest, bytes)) => {
                    sink.flush_data().map_err(|e| e.to_string())?;
                    let json = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
                    sink.frame(b'M', &json).map_err(|e| e.to_string())?;
                    info!(entries = manifest.entries, bytes, "backup done in {:?}", started.elapsed());
                    observer.stats.runs.fetch_add(1, Ordering::Relaxed);
                    observer.events.emit(NodeEvent::BackupFinished {
                        entries: manifest.entries,
                        bytes,
                        millis: started.elapsed().as_millis() as u64,
                    });
                    Ok(())
                }
                Err(e) => {
                    observer.stats.failures.fetch_add(1, Ordering::Relaxed);
                    let _ = sink.frame(b'E', e.to_string().as_bytes());
                    Err(e.to_string())
                }
            }
        }
        other => {
            let _ = sink.frame(b'E', format!("unknown request `{}`", other.escape_debug()).as_bytes());
            Err(format!("unknown admin request `{}`", other.escape_debug()))
        }
    }
}

/// The requests that carry a message.
#[cfg(unix)]
enum Request {
    /// `found <len>` + `CreateNetwork`: founds its network on this node (the operator's consent;
    /// see [`MembershipService::create_network`]).
    Found,
    /// `approve-beacon <len>` + `InitRequest`: approves the beacon group it describes (see
    /// [`BeaconService::approve_init`]).
    ApproveBeacon,
    /// `reshare <len>` + `ReshareRequest`: approves the resharing and leads it (see
    /// [`BeaconService::reshare`]).
    Reshare,
    /// `approve-reshare <len>` + `ReshareRequest`: approves it only, for another member to lead
    /// (see [`BeaconService::approve_reshare`]).
    Approve,
}

/// Reads the request's message of `len` bytes (the rest of its first line) and does it; the
/// answer as JSON.
#[cfg(unix)]
fn act(reader: &mut impl Read, kind: &Request, len: &str, node: &NodeHandles) -> Result<Vec<u8>, String> {
    let name = match kind {
        Request::Found => "found",
        Request::ApproveBeacon => "approve-beacon",
        Request::Reshare => "reshare",
        Request::Approve => "approve-reshare",
    };
    let len: usize = len.parse().map_err(|_| format!("{name}: bad length `{}`", len.escape_debug()))?;
    if len > MAX_REQUEST {
        return Err(format!("{name}: a request of {len} bytes (at most {MAX_REQUEST})"));
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).map_err(|e| format!("{name}: request ended early: {e}"))?;
    let runtime = tokio::runtime::Handle::current();
    let json = match kind {
        Request::Found => {
            let req = <CreateNetwork as prost::Message>::decode(body.as_slice()).map_err(|e| format!("found: {e}"))?;
            info!("founding a network through the admin channel");
            let membership = &node.membership;
            let genesis = runtime.block_on(membership.create_network_from(&req)).map_err(|e| e.to_string())?;
            serde_json::to_vec(&Founded {
                network: hex::encode(&genesis.hash),
                state: membership.state().as_str().to_string(),
            })
        }
        Request::ApproveBeacon => {
            let req = <InitRequest as prost::Message>::decode(body.as_slice()).map_err(|e| format!("{name}: {e}"))?;
            let g = node.beacon.approve_init_request(&req).map_err(|e| e.to_string())?;
            info!(members = g.members, threshold = g.threshold, scheme = %g.scheme, period = g.period_secs,
                "beacon group approved through the admin channel");
            serde_json::to_vec(&g)
        }
        Request::Reshare | Request::Approve => {
            let req =
                <ReshareRequest as prost::Message>::decode(body.as_slice()).map_err(|e| format!("{name}: {e}"))?;
            if matches!(kind, Request::Approve) {
                let (members, threshold) = node.beacon.approve_reshare_request(&req).map_err(|e| e.to_string())?;
                info!(members, threshold, "beacon resharing approved through the admin channel");
                serde_json::to_vec(&Approved { members, threshold })
            } else {
                info!("beacon resharing asked through the admin channel");
                let done = runtime.block_on(node.beacon.reshare(req)).map_err(|e| e.to_string())?;
                serde_json::to_vec(&Reshared::from(done))
            }
        }
    };
    json.map_err(|e| e.to_string())
}

fn frame(out: &mut impl Write, kind: u8, payload: &[u8]) -> std::io::Result<()> {
    out.write_all(&[kind])?;
    out.write_all(&(payload.len() as u32).to_be_bytes())?;
    out.write_all(payload)?;
    out.flush()
}

/// Cuts the backup stream into `D` frames.
struct FrameSink<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> FrameSink<W> {
    fn flush_data(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            frame(&mut self.out, b'D', &self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn frame(&mut self, kind: u8, payload: &[u8]) -> std::io::Result<()> {
        self.flush_data()?;
        frame(&mut self.out, kind, payload)
    }
}

impl<W: Write> Write for FrameSink<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= DATA_CHUNK {
            self.flush_data()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asks the node listening on `socket` for a hot backup, writing the stream into `out`; `progress`
/// gets (entries written, entries at the start). Returns the manifest once the node says it is
/// complete (the caller keeps `out` only then).
#[cfg(unix)]
pub fn request_backup(
    socket: &Path,
    mut out: impl Write,
    mut progress: impl FnMut(u64, u64),
) -> Result<Manifest, AdminError> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| AdminError::Connect { path: socket.to_path_buf(), reason: e.to_string() })?;
    stream.write_all(b"backup\n").map_err(|e| AdminError::Io(e.to_string()))?;
    let mut input = BufReader::with_capacity(DATA_CHUNK, stream);
    loop {
        let (kind, payload) = read_frame(&mut input)?;
        match kind {
            b'D' => out.write_all(&payload).map_err(|e| AdminError::Io(format!("writing the backup: {e}")))?,
            b'P' => {
                let text = String::from_utf8_lossy(&payload);
                let mut it = text.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
                progress(it.next().unwrap_or(0), it.next().unwrap_or(0));
            }
            b'M' => {
                out.flush().map_err(|e| AdminError::Io(format!("writing the backup: {e}")))?;
                let m: Manifest =
                    serde_json::from_slice(&payload).map_err(|e| AdminError::Protocol(format!("manifest: {e}")))?;
                progress(m.entries, m.entries);
                return Ok(m);
            }
            b'E' => return Err(AdminError::Refused(String::from_utf8_lossy(&payload).into_owned())),
            k => return Err(AdminError::Protocol(format!("unknown frame kind {k}"))),
        }
    }
}

/// Asks the node listening on `socket` to found the network of `req` (its operator's consent);
/// returns the network and the node's state once the node made (or found held) its genesis.
#[cfg(unix)]
pub fn request_found(socket: &Path, req: &CreateNetwork) -> Result<Founded, AdminError> {
    request_with_body(socket, "found", &prost::Message::encode_to_vec(req))
}

/// Records on the node listening on `socket` that its operator approves the beacon group `req`
/// describes (roster, threshold, scheme, period); any member's `/Beacon/Init` then starts it.
#[cfg(unix)]
pub fn request_approve_beacon(socket: &Path, req: &InitRequest) -> Result<ApprovedGroup, AdminError> {
    request_with_body(socket, "approve-beacon", &prost::Message::encode_to_vec(req))
}

/// Asks the node listening on `socket` to reshare its beacon group as `req` says (approving it
/// there and leading it); returns once the members agreed.
#[cfg(unix)]
pub fn request_reshare(socket: &Path, req: &ReshareRequest) -> Result<Reshared, AdminError> {
    request_with_body(socket, "reshare", &prost::Message::encode_to_vec(req))
}

/// Records on the node listening on `socket` that its operator approves the resharing `req`
/// describes (another old member leads it).
#[cfg(unix)]
pub fn request_approve_reshare(socket: &Path, req: &ReshareRequest) -> Result<Approved, AdminError> {
    request_with_body(socket, "approve-reshare", &prost::Message::encode_to_vec(req))
}

/// Sends `<request> <len>\n` and `body`; the `M` answer decoded from JSON.
#[cfg(unix)]
fn request_with_body<T: serde::de::DeserializeOwned>(
    socket: &Path,
    request: &str,
    body: &[u8],
) -> Result<T, AdminError> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|e| AdminError::Connect { path: socket.to_path_buf(), reason: e.to_string() })?;
    let mut message = format!("{request} {}\n", body.len()).into_bytes();
    message.extend_from_slice(body);
    stream.write_all(&message).map_err(|e| AdminError::Io(e.to_string()))?;
    let mut input = BufReader::new(stream);
    match read_frame(&mut input)? {
        (b'M', payload) => {
            serde_json::from_slice(&payload).map_err(|e| AdminError::Protocol(format!("{request} answer: {e}")))
        }
        (b'E', payload) => Err(AdminError::Refused(String::from_utf8_lossy(&payload).into_owned())),
        (k, _) => Err(AdminError::Protocol(format!("unexpected frame kind {k}"))),
    }
}

/// One answer frame (kind, payload), bounded by [`MAX_FRAME`].
#[cfg(unix)]
fn read_frame(input: &mut impl Read) -> Result<(u8, Vec<u8>), AdminError> {
    let mut head = [0u8; 5];
    input.read_exact(&mut head).map_err(|e| AdminError::Protocol(format!("stream ended early: {e}")))?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(AdminError::Protocol(format!("frame of {len} bytes")));
    }
    let mut payload = vec![0u8; len];
    input.read_exact(&mut payload).map_err(|e| AdminError::Protocol(format!("stream ended early: {e}")))?;
    Ok((head[0], payload))
}
