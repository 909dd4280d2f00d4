//! `LocalCluster`: N nodes in one process on real loopback sockets, sharing one tokio runtime, with
//! stop/restart of single nodes. Used by tests, benchmarks, the bindings and `conode bench`.

mod beacon;
mod membership;

pub use beacon::BeaconGroupInfo;

use crate::config::{NodeAddress, NodeConfig, Roster};
use crate::crypto::{IdentityKeyPair, IdentityPublicKey};
use crate::network::NetSettings;
use crate::node::{Node, NodeBuilder, NodeError};
use crate::services::cosi::{CosiError, Policy, SignOutcome, OPEN_SIGNING_PURPOSE};
use crate::services::skipchain::messages::Append;
use crate::services::skipchain::SkipchainError;
use crate::verify::skipchain::SkipBlock;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tokio::runtime::Runtime;

/// Options of a local cluster.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub nodes: usize,
    /// Lets clients use `/Cosi/Sign` (tests need the oracle; production nodes do not enable it).
    pub allow_open_signing: bool,
    pub net: NetSettings,
    /// Runtime worker threads shared by all nodes.
    pub worker_threads: usize,
    /// Events each subscriber of a node may hold before it lags.
    pub event_capacity: usize,
}

impl ClusterOptions {
    pub fn new(nodes: usize) -> Self {
        Self {
            nodes,
            allow_open_signing: true,
            net: NetSettings::default(),
            worker_threads: 2,
            event_capacity: crate::events::DEFAULT_EVENT_CAPACITY,
        }
    }
}

/// Why a cluster helper failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("node {index}: {error}")]
    Node { index: usize, error: NodeError },
    #[error(transparent)]
    Cosi(#[from] CosiError),
    #[error(transparent)]
    Skipchain(#[from] SkipchainError),
    #[error(transparent)]
    Membership(#[from] crate::services::membership::MembershipError),
    /// A service refused or failed a request (e.g. the beacon's DKG or resharing).
    #[error(transparent)]
    Service(#[from] crate::services::ServiceError),
    /// A wait for another node's answer ran out.
    #[error("{0}")]
    Timeout(String),
}

pub struct LocalCluster {
    runtime: Runtime,
    nodes: Vec<Node>,
    roster: Roster,
    dir: PathBuf,
    allow_open_signing: bool,
    net: NetSettings,
    _tempdir: Option<tempfile::TempDir>,
}

/// Binds a free loopback port P such that P+1 is free too; returns both listeners.
///
/// The ports are picked at random *below* the kernel's ephemeral range when there is room: a caller
/// that releases them for a process to bind (the CLI tests write them into a config) would
/// otherwise race every outgoing connection of the machine, whose source ports come from that
/// range (seen as "Address already in use" when the process started).
///
/// A pair is handed out once per process: a node of a `LocalCluster` that is stopped and then
/// restarted binds its ports again, and another cluster of the same process (tests run side by
/// side) must not pick them meanwhile.
pub fn allocate_port_pair() -> std::io::Result<(std::net::TcpListener, std::net::TcpListener)> {
    static HANDED_OUT: std::sync::Mutex<BTreeSet<u16>> = std::sync::Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    // Whether a pair starting at `p` exists and was not handed out before.
    let unclaimed =
        |handed_out: &BTreeSet<u16>, p: u16| p < u16::MAX && !handed_out.contains(&p) && !handed_out.contains(&(p + 1));
    let mut take = |p: u16| -> Option<(std::net::TcpListener, std::net::TcpListener)> {
        if !unclaimed(&handed_out, p) {
            return None;
        }
        let a = std::net::TcpListener::bind(("127.0.0.1", p)).ok()?;
        let b = std::net::TcpListener::bind(("127.0.0.1", p + 1)).ok()?;
        handed_out.extend([p, p + 1]);
        Some((a, b))
    };
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u16>().ok()))
        .unwrap_or(32768);
    if ephemeral_low > PRIVATE_PORTS_FROM + 1000 {
        for _ in 0..200 {
            let p = rand::Rng::gen_range(&mut rand::thread_rng(), PRIVATE_PORTS_FROM..ephemeral_low - 1);
            if let Some(pair) = take(p) {
                return Ok(pair);
            }
        }
    }
    for _ in 0..200 {
        let a = std::net::TcpListener::bind("127.0.0.1:0")?;
        let p = a.local_addr()?.port();
        if !unclaimed(&handed_out, p) {
            continue;
        }
        if let Ok(b) = std::net::TcpListener::bind(("127.0.0.1", p + 1)) {
            handed_out.extend([p, p + 1]);
            return Ok((a, b));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free port pair on loopback"))
}

/// Lowest port [`allocate_port_pair`] picks outside the ephemeral range (above the well-known and
/// most registered services' ports).
const PRIVATE_PORTS_FROM: u16 = 20000;

impl LocalCluster {
    /// Starts `n` nodes with default options in a temporary folder.
    pub fn new(n: usize) -> Result<Self, NodeError> {
        Self::with_options(ClusterOptions::new(n))
    }

    pub fn with_options(opts: ClusterOptions) -> Result<Self, NodeError> {
        let tempdir = tempfile::Builder::new()
            .prefix("conode-cluster-")
            .tempdir()
            .map_err(|e| NodeError::Runtime(format!("temporary folder: {e}")))?;
        let dir = tempdir.path().to_path_buf();
        let mut c = Self::start_in(&dir, opts)?;
        c._tempdir = Some(tempdir);
        Ok(c)
    }

    /// Starts the nodes with their databases under `dir`.
    pub fn start_in(dir: &Path, opts: ClusterOptions) -> Result<Self, NodeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("conode-cluster")
            .on_thread_start(crate::sigpipe::block_in_this_thread)
            .enable_all()
            .build()
            .map_err(|e| NodeError::Runtime(e.to_string()))?;
        let mut nodes = Vec::with_capacity(opts.nodes);
        for i in 0..opts.nodes {
            let (node_l, client_l) = allocate_port_pair().map_err(|e| NodeError::Bind {
                what: "node port",
                addr: "127.0.0.1:0".into(),
                reason: e.to_string(),
            })?;
            let port = node_l.local_addr().map(|a| a.port()).unwrap_or(0);
            let mut config =
                NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, format!("local node {i}"));
            config.allow_open_signing = opts.allow_open_signing;
            let node = NodeBuilder::new(config)
                .data_dir(dir.join(format!("node{i}")))
                .net_settings(opts.net.clone())
                .runtime(runtime.handle().clone())
                .listeners(node_l, client_l)
                .event_capacity(opts.event_capacity)
                .build()?;
            nodes.push(node);
        }
        let roster = Roster::new(nodes.iter().map(|n| n.server_identity()).collect());
        let mut cluster = Self {
            runtime,
            nodes,
            roster,
            dir: dir.to_path_buf(),
            allow_open_signing: opts.allow_open_signing,
            net: opts.net.clone(),
            _tempdir: None,
        };
        for i in 0..cluster.nodes.len() {
            cluster.nodes[i].start()?;
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Starts one more node on the cluster's runtime, outside the roster (e.g. to join the
    /// network by vote); returns its index.
    pub fn spawn_node(&mut self) -> Result<usize, NodeError> {
        let i = self.nodes.len();
        let (node_l, client_l) = allocate_port_pair().map_err(|e| NodeError::Bind {
            what: "node port",
            addr: "127.0.0.1:0".into(),
            reason: e.to_string(),
        })?;
        let port = node_l.local_addr().map(|a| a.port()).unwrap_or(0);
        let mut config =
            NodeConfig::generate(NodeAddress { host: "127.0.0.1".into(), port }, format!("local node {i}"));
        config.allow_open_signing = self.allow_open_signing;
        let mut node = NodeBuilder::new(config)
            .data_dir(self.dir.join(format!("node{i}")))
            .net_settings(self.net.clone())
            .runtime(self.runtime.handle().clone())
            .listeners(node_l, client_l)
            .build()?;
        node.start()?;
        self.nodes.push(node);
        Ok(i)
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn roster(&self) -> &Roster {
        &self.roster
    }
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
    /// Stops node `i` (its ports close; the others keep running).
    pub fn stop(&mut self, i: usize) -> Result<(), NodeError> {
        self.nodes[i].stop()
    }
    /// Restarts node `i` on the same ports with the same database.
    pub fn restart(&mut self, i: usize) -> Result<(), NodeError> {
        self.nodes[i].start()
    }
    fn running(&self, i: usize) -> Result<&Node, ClusterError> {
        let node = self.nodes.get(i).ok_or(ClusterError::Node { index: i, error: NodeError::NotRunning })?;
        if !node.is_running() {
            return Err(ClusterError::Node { index: i, error: NodeError::NotRunning });
        }
        Ok(node)
    }

    /// A collective signature of `message` by the whole roster, node `i` as root (open signing),
    /// with `level_timeout` per tree level (the cosi default when `None`).
    pub fn sign(
        &self,
        i: usize,
        message: &[u8],
        policy: Policy,
        level_timeout: Option<std::time::Duration>,
    ) -> Result<SignOutcome, ClusterError> {
        let cosi = self.running(i)?.cosi().map_err(|error| ClusterError::Node { index: i, error })?;
        let timeout = level_timeout.unwrap_or_else(|| cosi.options().level_timeout);
        let signing = cosi.sign_with_timeout(&self.roster, message, OPEN_SIGNING_PURPOSE, &[], policy, timeout);
        Ok(self.runtime.block_on(signing)?)
    }

    /// A new skipchain kept by the whole roster (base 2, height 12), created through node `i`.
    pub fn create_chain(
        &self,
        i: usize,
        owners: Vec<IdentityPublicKey>,
        data: Vec<u8>,
    ) -> Result<SkipBlock, ClusterError> {
        let chains = self.running(i)?.skipchain().map_err(|error| ClusterError::Node { index: i, error })?;
        Ok(self.runtime.block_on(chains.create_chain(&self.roster, 2, 12, owners, data))?)
    }

    /// Appends `data` as the next block of chain `genesis` (after the newest block node `i` holds),
    /// signed by `owner`, through node `i`.
    pub fn append(
        &self,
        i: usize,
        owner: &IdentityKeyPair,
        genesis: &[u8],
        data: Vec<u8>,
    ) -> Result<SkipBlock, ClusterError> {
        let chains = self.running(i)?.skipchain().map_err(|error| ClusterError::Node { index: i, error })?;
        let latest = chains
            .store()
            .latest_index(genesis)
            .ok_or_else(|| SkipchainError::UnknownChain(hex::encode(&genesis[..genesis.len().min(8)])))?;
        let append = Append::signed(owner, genesis, latest + 1, data, None)?;
        Ok(self.runtime.block_on(chains.append(append))?)
    }

    /// The shortest proof from block `from` to the newest block, as node `i` holds it.
    pub fn proof(&self, i: usize, from: &[u8]) -> Result<Vec<SkipBlock>, ClusterError> {
        let chains = self.running(i)?.skipchain().map_err(|error| ClusterError::Node { index: i, error })?;
        Ok(chains.update_chain(from)?)
    }

    /// Client-port base URL of node `i` (when running).
    pub fn client_url(&self, i: usize) -> Option<String> {
        self.nodes[i].client_url()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if n.is_running() {
                let _ = n.stop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_pair_is_handed_out_once_per_process_even_once_released() {
        let first: Vec<u16> = (0..20)
            .map(|_| {
                let (a, b) = allocate_port_pair().unwrap();
                let (p, q) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
                assert_eq!(q, p + 1);
                p
            })
            .collect();
        // Released (as when a node stops): not handed out again, the node may bind them again.
        let again: BTreeSet<u16> =
            (0..20).map(|_| allocate_port_pair().unwrap().0.local_addr().unwrap().port()).collect();
        for p in first {
            assert!(!again.contains(&p) && !again.contains(&(p + 1)) && !again.contains(&(p - 1)), "{p} again");
        }
    }
}
