//! `LocalCluster`: N conodes in this process on loopback, sharing one runtime, and the services
//! run on it from Python: collective signing, skipchains and a randomness beacon.

use crate::beacon::PyBeaconChain;
use crate::config::{members_of, PyMember, PyRoster};
use crate::cosi::PyCollectiveSignature;
use crate::errors::{closed, cosi_error, node_error, skipchain_error, NotRunningError, RefusedError};
use crate::keys::{OwnerArg, PyIdentityKey};
use crate::node::{drop_without_gil, lock};
use crate::skipchain::PySkipBlock;
use crate::status::{local_status, seconds, StatusDict};
use conode_core::cluster::{ClusterError, ClusterOptions, LocalCluster};
use conode_core::config::Roster;
use conode_core::services::beacon::messages::{InitRequest, InitResponse};
use conode_core::services::beacon::BeaconService;
use conode_core::services::cosi::{CosiError, Policy, SignOutcome, OPEN_SIGNING_PURPOSE};
use conode_core::services::membership::MembershipError;
use conode_core::services::skipchain::{self, SkipchainError};
use conode_core::services::ServiceError;
use conode_core::verify::beacon::{ChainInfo, Scheme};
use conode_core::verify::skipchain::SkipBlock;
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Mutex;

/// Why a service call on the cluster failed (made without the GIL, turned into an exception
/// after).
enum Failure {
    /// The node asked for is stopped.
    Stopped(usize),
    /// Every node is stopped.
    NoneRunning,
    Cosi(CosiError),
    Skipchain(SkipchainError),
    Service(ServiceError),
}

impl Failure {
    fn from_cluster(i: usize, e: ClusterError) -> Self {
        match e {
            ClusterError::Node { .. } => Failure::Stopped(i),
            ClusterError::Cosi(e) => Failure::Cosi(e),
            ClusterError::Skipchain(e) => Failure::Skipchain(e),
            ClusterError::Membership(e) => failed(e),
            ClusterError::Service(e) => Failure::Service(e),
            ClusterError::Timeout(m) => Failure::Service(ServiceError::Unavailable(m)),
        }
    }

    fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Stopped(i) => PyErr::new::<NotRunningError, _>(format!("node {i} of the cluster is not running")),
            Failure::NoneRunning => PyErr::new::<NotRunningError, _>("no node of the cluster is running"),
            Failure::Cosi(e) => cosi_error(py, e),
            Failure::Skipchain(e) => skipchain_error(py, e),
            Failure::Service(e) => match e {
                ServiceError::BadRequest(m) => PyValueError::new_err(m),
                ServiceError::Refused(m) => PyErr::new::<RefusedError, _>(format!("refused: {m}")),
                e => PyErr::new::<crate::errors::ConodeError, _>(e.to_string()),
            },
        }
    }
}

/// Node `node` when it runs, else the first running node.
fn acting_node(c: &LocalCluster, node: Option<usize>) -> Result<usize, Failure> {
    match node {
        Some(i) if c.node(i).is_running() => Ok(i),
        Some(i) => Err(Failure::Stopped(i)),
        None => (0..c.len()).find(|&i| c.node(i).is_running()).ok_or(Failure::NoneRunning),
    }
}

fn to_hex(b: impl AsRef<[u8]>) -> String {
    b.as_ref().iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn failed(e: MembershipError) -> Failure {
    Failure::Service(ServiceError::from(e))
}

fn skipchain_of(c: &LocalCluster, i: usize) -> Result<skipchain::SkipchainService, Failure> {
    c.node(i).skipchain().map_err(|_| Failure::Stopped(i))
}

/// N conodes in this process on 127.0.0.1, each on its own pair of free ports, sharing one tokio
/// runtime. The constructor returns when every node accepts connections. Use it as a context
/// manager (or call `close()`): closing stops every node and removes the temporary folder.
#[pyclass(module = "conode", name = "LocalCluster", frozen)]
pub struct PyLocalCluster {
    inner: Mutex<Option<LocalCluster>>,
    roster: Roster,
    dir: PathBuf,
    /// Nodes in the cluster: the roster's, then the ones `add_node` started.
    count: std::sync::atomic::AtomicUsize,
}

impl PyLocalCluster {
    /// Runs `f` on the cluster with the GIL released.
    fn with<T: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut LocalCluster) -> T + Send) -> PyResult<T> {
        py.detach(|| lock(&self.inner).as_mut().map(f)).ok_or_else(|| closed("cluster"))
    }

    /// `index` for an optional node argument.
    fn node_index(&self, node: Option<isize>) -> PyResult<Option<usize>> {
        node.map(|i| self.index(i)).transpose()
    }

    /// The beacon service of node `node` (default: the first running node).
    pub(crate) fn beacon_service(&self, py: Python<'_>, node: Option<isize>) -> PyResult<BeaconService> {
        let node = self.node_index(node)?;
        self.with(py, |c| {
            let i = acting_node(c, node)?;
            c.node(i).beacon().map_err(|_| Failure::Stopped(i))
        })?
        .map_err(|f| f.into_py(py))
    }

    /// Python-style index (negative counts from the end) → position, or IndexError.
    fn index(&self, i: isize) -> PyResult<usize> {
        let n = self.count.load(std::sync::atomic::Ordering::SeqCst) as isize;
        let j = if i < 0 { i + n } else { i };
        if j < 0 || j >= n {
            return Err(PyIndexError::new_err(format!("node index {i} out of range for a cluster of {n}")));
        }
        Ok(j as usize)
    }
}

impl Drop for PyLocalCluster {
    fn drop(&mut self) {
        // A garbage-collected cluster stops its nodes without holding the GIL.
        if let Some(cluster) = self.inner.get_mut().unwrap_or_else(|p| p.into_inner()).take() {
            drop_without_gil(cluster);
        }
    }
}

#[pymethods]
impl PyLocalCluster {
    /// Starts `n` nodes. `allow_open_signing` lets clients use `/Cosi/Sign` (for tests);
    /// `worker_threads` is the size of the shared runtime. With `dir` the databases live there
    /// (and stay after `close()`), else in a temporary folder.
    #[new]
    #[pyo3(signature = (n, *, allow_open_signing = true, worker_threads = 2, dir = None))]
    fn new(
        py: Python<'_>,
        n: usize,
        allow_open_signing: bool,
        worker_threads: usize,
        dir: Option<PathBuf>,
    ) -> PyResult<Self> {
        if n == 0 {
            return Err(PyValueError::new_err("a cluster needs at least one node"));
        }
        if worker_threads == 0 {
            return Err(PyValueError::new_err("worker_threads must be at least 1"));
        }
        let mut opts = ClusterOptions::new(n);
        opts.allow_open_signing = allow_open_signing;
        opts.worker_threads = worker_threads;
        let cluster = py
            .detach(move || match dir {
                Some(d) => LocalCluster::start_in(&d, opts),
                None => LocalCluster::with_options(opts),
            })
            .map_err(|e| node_error(py, e))?;
        Ok(Self {
            count: std::sync::atomic::AtomicUsize::new(cluster.len()),
            roster: cluster.roster().clone(),
            dir: cluster.dir().to_path_buf(),
            inner: Mutex::new(Some(cluster)),
        })
    }

    fn __len__(&self) -> usize {
        self.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The members in roster order (static: a stopped node stays a member).
    #[getter]
    fn members(&self) -> Vec<PyMember> {
        members_of(&self.roster)
    }

    /// The roster.
    #[getter]
    fn roster(&self) -> PyRoster {
        PyRoster { inner: self.roster.clone() }
    }

    /// The roster as TOML (`[[servers]]` entries), as `conode check` and clients read it.
    #[getter]
    fn roster_toml(&self) -> String {
        self.roster.to_toml()
    }

    /// The folder holding the nodes' databases.
    #[getter]
    fn dir(&self) -> PathBuf {
        self.dir.clone()
    }

    /// Stops node `i` (its ports close; the others keep running). Raises NotRunningError when it
    /// is stopped already.
    fn stop(&self, py: Python<'_>, i: isize) -> PyResult<()> {
        let i = self.index(i)?;
        self.with(py, |c| c.stop(i))?.map_err(|e| node_error(py, e))
    }

    /// Starts node `i` again on the same ports with the same database. Raises
    /// AlreadyRunningError when it runs.
    fn restart(&self, py: Python<'_>, i: isize) -> PyResult<()> {
        let i = self.index(i)?;
        self.with(py, |c| c.restart(i))?.map_err(|e| node_error(py, e))
    }

    /// A new subscription to node `i`'s events, from now on (it survives the node's stop and
    /// restart): iterate it (`for e in cluster.events(i)`, or `async for`), or call
    /// `next_event(timeout)`.
    fn events(&self, py: Python<'_>, i: isize) -> PyResult<crate::events::PyEvents> {
        let i = self.index(i)?;
        self.with(py, |c| crate::events::PyEvents::new(c.node(i).events()))
    }

    /// `ws://127.0.0.1:port` of node `i`'s client port while it runs, else None.
    fn client_url(&self, py: Python<'_>, i: isize) -> PyResult<Option<String>> {
        let i = self.index(i)?;
        self.with(py, |c| c.client_url(i))
    }

    fn is_running(&self, py: Python<'_>, i: isize) -> PyResult<bool> {
        let i = self.index(i)?;
        self.with(py, |c| c.node(i).is_running())
    }

    /// Status of node `i` read in-process (same shape as `conode.status(url)`). Raises
    /// NotRunningError when it is stopped.
    fn status(&self, py: Python<'_>, i: isize) -> PyResult<StatusDict> {
        let i = self.index(i)?;
        self.with(py, |c| {
            let n = c.node(i);
            n.context().map(|ctx| local_status(ctx, &n.server_identity()))
        })?
        .ok_or_else(|| node_error(py, conode_core::NodeError::NotRunning))
    }

    /// Signs `message` collectively with the whole roster (open signing: the cluster must allow
    /// it, the default). The round is led by node `node` (default: the first running node);
    /// `threshold` is the number of signers required (default n − ⌊(n − 1) / 3⌋), `timeout` the
    /// per-level wait in seconds (default 5; stopped nodes cost about twice that). Raises
    /// ThresholdError naming the missing members when too few sign, RefusedError when open
    /// signing is disabled.
    #[pyo3(signature = (message, threshold = None, timeout = None, node = None))]
    fn sign(
        &self,
        py: Python<'_>,
        message: Cow<'_, [u8]>,
        threshold: Option<usize>,
        timeout: Option<f64>,
        node: Option<isize>,
    ) -> PyResult<PyCollectiveSignature> {
        let node = self.node_index(node)?;
        let level = timeout.map(|t| seconds(t, false)).transpose()?;
        let policy = Policy::from_threshold(threshold);
        let roster = &self.roster;
        let msg: &[u8] = &message;
        let outcome = self.with(py, |c| -> Result<SignOutcome, Failure> {
            let i = acting_node(c, node)?;
            let svc = c.node(i).cosi().map_err(|_| Failure::Stopped(i))?;
            let level = level.unwrap_or_else(|| svc.options().level_timeout);
            c.runtime()
                .block_on(svc.sign_with_timeout(roster, msg, OPEN_SIGNING_PURPOSE, &[], policy, level))
                .map_err(Failure::Cosi)
        })?;
        outcome.map(|o| PyCollectiveSignature::from_outcome(msg, o)).map_err(|f| f.into_py(py))
    }

    /// Creates a skipchain on the whole roster and returns its genesis block (stored on every
    /// running member). `owners` are the keys allowed to append (IdentityKey or hex public key).
    #[pyo3(signature = (owners, data = None, *, base_height = 2, maximum_height = 8, node = None))]
    fn create_skipchain(
        &self,
        py: Python<'_>,
        owners: Vec<OwnerArg<'_>>,
        data: Option<Cow<'_, [u8]>>,
        base_height: u32,
        maximum_height: u32,
        node: Option<isize>,
    ) -> PyResult<PySkipBlock> {
        let node = self.node_index(node)?;
        let owners = owners.iter().map(|o| o.public()).collect::<PyResult<Vec<_>>>()?;
        let data = data.map(|d| d.into_owned()).unwrap_or_default();
        let roster = &self.roster;
        let block = self.with(py, |c| -> Result<SkipBlock, Failure> {
            let i = acting_node(c, node)?;
            let svc = skipchain_of(c, i)?;
            c.runtime()
                .block_on(svc.create_chain(roster, base_height, maximum_height, owners, data))
                .map_err(Failure::Skipchain)
        })?;
        block.map(|inner| PySkipBlock { inner }).map_err(|f| f.into_py(py))
    }

    /// Appends a block with `data` to the chain `genesis` (its genesis id), signed by `owner`;
    /// returns the new block once its forward links are collectively signed. Raises RefusedError
    /// when `owner` is not an owner of the chain, NotFoundError for an unknown chain.
    #[pyo3(signature = (genesis, data, owner, *, node = None))]
    fn append_block(
        &self,
        py: Python<'_>,
        genesis: Cow<'_, [u8]>,
        data: Cow<'_, [u8]>,
        owner: &PyIdentityKey,
        node: Option<isize>,
    ) -> PyResult<PySkipBlock> {
        let node = self.node_index(node)?;
        let (genesis, data): (&[u8], &[u8]) = (&genesis, &data);
        let owner = &owner.inner;
        let block = self.with(py, |c| -> Result<SkipBlock, Failure> {
            let i = acting_node(c, node)?;
            c.append(i, owner, genesis, data.to_vec()).map_err(|e| Failure::from_cluster(i, e))
        })?;
        block.map(|inner| PySkipBlock { inner }).map_err(|f| f.into_py(py))
    }

    /// The shortest proof from block `trusted` (usually the genesis id) to the newest block, as
    /// node `node` holds it: `[trusted, ..., newest]`, checked by `conode.verify_skipchain`.
    #[pyo3(signature = (trusted, *, node = None))]
    fn skipchain_proof(
        &self,
        py: Python<'_>,
        trusted: Cow<'_, [u8]>,
        node: Option<isize>,
    ) -> PyResult<Vec<PySkipBlock>> {
        let node = self.node_index(node)?;
        let from: &[u8] = &trusted;
        let blocks = self.with(py, |c| -> Result<Vec<SkipBlock>, Failure> {
            let i = acting_node(c, node)?;
            skipchain_of(c, i)?.update_chain(from).map_err(Failure::Skipchain)
        })?;
        blocks.map(|b| b.into_iter().map(|inner| PySkipBlock { inner }).collect()).map_err(|f| f.into_py(py))
    }

    /// Starts a drand-compatible randomness beacon on the whole roster: node `node` leads a DKG
    /// (each phase at most `phase_timeout` seconds, ending early when everyone answered), round 1
    /// is due `genesis_delay` seconds after the start (default: four phases plus a period), then
    /// one round every `period` seconds. `scheme` is a drand scheme id ("pedersen-bls-chained",
    /// "bls-unchained-g1-rfc9380", ...), `threshold` the signers per round (default ⌊n/2⌋ + 1).
    /// Every running node approves the group first, as each operator would with `conode beacon
    /// approve`. Returns once the DKG is done. A node runs one chain: a second call raises
    /// RefusedError.
    #[pyo3(signature = (
        scheme = "pedersen-bls-chained", *, period = 1, threshold = None, phase_timeout = 2.0,
        genesis_delay = None, beacon_id = "", node = None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn start_beacon(
        slf: &Bound<'_, Self>,
        scheme: &str,
        period: u32,
        threshold: Option<u32>,
        phase_timeout: f64,
        genesis_delay: Option<f64>,
        beacon_id: &str,
        node: Option<isize>,
    ) -> PyResult<PyBeaconChain> {
        let py = slf.py();
        let this = slf.get();
        let node = this.node_index(node)?;
        let scheme = Scheme::from_id(scheme).map_err(|e| PyValueError::new_err(e.to_string()))?;
        if period == 0 {
            return Err(PyValueError::new_err("period must be at least 1 second"));
        }
        if threshold == Some(0) {
            return Err(PyValueError::new_err("threshold must be at least 1"));
        }
        let phase = seconds(phase_timeout, false)?;
        let delay = genesis_delay.map(|d| seconds(d, false)).transpose()?;
        let req = InitRequest {
            roster_toml: this.roster.to_toml(),
            scheme: scheme.id().to_string(),
            period_secs: period,
            threshold: threshold.unwrap_or(0),
            phase_timeout_ms: (phase.as_millis() as u64).max(1),
            genesis_time: 0,
            genesis_delay_ms: delay.map(|d| (d.as_millis() as u64).max(1)).unwrap_or(0),
            beacon_id: beacon_id.to_string(),
        };
        let resp = this.with(py, |c| -> Result<InitResponse, Failure> {
            let i = acting_node(c, node)?;
            let svc = c.node(i).beacon().map_err(|_| Failure::Stopped(i))?;
            // Every running member's operator approves the group (the cluster runs them all), as
            // each would with `conode beacon approve`; init reports what is wrong with it.
            let _ = c.approve_beacon(&req);
            c.runtime().block_on(svc.init(req)).map_err(Failure::Service)
        })?;
        let resp = resp.map_err(|f| f.into_py(py))?;
        let info = ChainInfo::from_drand_json(&resp.info_json).map_err(crate::beacon::parse_error)?;
        Ok(PyBeaconChain {
            cluster: slf.clone().unbind(),
            info,
            group_toml: resp.group_toml,
            qualified: resp.qualified,
        })
    }

    /// Founds the network of the cluster's roster (membership by vote): node `node` (default 0)
    /// makes the network chain, then every other running node of the roster founds it too (a node
    /// follows a network only with its operator's consent). `threshold`: yes votes a proposal
    /// needs (0: more than two thirds of the members). Returns the network id (hex).
    #[pyo3(signature = (threshold = 0, node = None))]
    fn create_network(&self, py: Python<'_>, threshold: u32, node: Option<isize>) -> PyResult<String> {
        let node = self.node_index(node)?;
        self.with(py, |c| {
            let i = acting_node(c, node)?;
            c.create_network(i, threshold).map(to_hex).map_err(|e| Failure::from_cluster(i, e))
        })?
        .map_err(|f| f.into_py(py))
    }

    /// Starts one more node and has it ask to join the network through node 0 (it is `Pending`
    /// until the members vote). Returns `(index, proposal id)`: the new node's index in this
    /// cluster and the `add_node` proposal to vote on.
    #[pyo3(signature = (node_data = None, timeout = 30.0))]
    fn add_node(&self, py: Python<'_>, node_data: Option<String>, timeout: f64) -> PyResult<(usize, String)> {
        let timeout = seconds(timeout, false)?;
        let r = self.with(py, |c| {
            c.add_node(node_data.as_deref().unwrap_or(""), timeout).map_err(|e| Failure::from_cluster(0, e))
        })?;
        match r {
            Ok((j, p)) => {
                self.count.fetch_max(j + 1, std::sync::atomic::Ordering::SeqCst);
                Ok((j, to_hex(p)))
            }
            Err(f) => Err(f.into_py(py)),
        }
    }

    /// Proposes removing node `i` from the network, signed by node `proposer`; returns the
    /// proposal id.
    #[pyo3(signature = (i, *, proposer = 0))]
    fn remove_node(&self, py: Python<'_>, i: isize, proposer: isize) -> PyResult<String> {
        let (i, proposer) = (self.index(i)?, self.index(proposer)?);
        self.with(py, |c| c.remove_node(i, proposer).map(to_hex).map_err(|e| Failure::from_cluster(proposer, e)))?
            .map_err(|f| f.into_py(py))
    }

    /// Node `voter` votes on `proposal` (hex id) with its identity key, once the proposal reached
    /// it; returns the proposal's state after the ballot: "open", "accepted" (its roster block is
    /// appended) or "rejected". A second ballot by one member raises RefusedError. With a beacon
    /// running, an accepted roster change reshares its group to the new roster (same chain and
    /// key) at a transition round a few periods ahead: poll `beacon_group(i)` to see it.
    #[pyo3(signature = (proposal, voter, approve = true, timeout = 10.0))]
    fn vote(&self, py: Python<'_>, proposal: &str, voter: isize, approve: bool, timeout: f64) -> PyResult<String> {
        let voter = self.index(voter)?;
        let timeout = seconds(timeout, false)?;
        let id = from_hex(proposal).ok_or_else(|| PyValueError::new_err("proposal id: not hex"))?;
        self.with(py, |c| c.vote(&id, voter, approve, timeout).map_err(|e| Failure::from_cluster(voter, e)))?
            .map_err(|f| f.into_py(py))
    }

    /// The membership state of node `i`: "Initialized", "Pending", "Trusted", "PartOfNetwork" or
    /// "Retired".
    fn node_state(&self, py: Python<'_>, i: isize) -> PyResult<String> {
        let i = self.index(i)?;
        self.with(py, |c| c.node_state(i).map(|s| s.as_str().to_string()).map_err(|e| Failure::from_cluster(i, e)))?
            .map_err(|f| f.into_py(py))
    }

    /// Reshares the running beacon group to the nodes `members` of this cluster (default: the
    /// network chain's current roster when there is one, else every node), keeping the chain, its
    /// hash and its group key. Node `node` leads (default: the first running member of the
    /// group). `threshold`: signatures per round (default ⌊n/2⌋ + 1); `phase_timeout`: seconds
    /// per phase; `transition_round`: the first round of the new group (default: the first round
    /// at least two phases and two periods away). Returns once the new members agreed, a dict:
    /// `transition_round`, `chain_hash` (unchanged), `qualified` (dealers' old share indices),
    /// `confirmed`, `participants`, `group_toml`. A roster change voted on the network chain
    /// reshares by itself; this is the explicit operator action (`conode beacon reshare`).
    #[pyo3(signature = (members = None, *, threshold = None, phase_timeout = 1.0, transition_round = None, node = None))]
    fn beacon_reshare<'py>(
        &self,
        py: Python<'py>,
        members: Option<Vec<isize>>,
        threshold: Option<u32>,
        phase_timeout: f64,
        transition_round: Option<u64>,
        node: Option<isize>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let members =
            members.map(|m| m.into_iter().map(|i| self.index(i)).collect::<PyResult<Vec<_>>>()).transpose()?;
        let node = self.node_index(node)?;
        if threshold == Some(0) {
            return Err(PyValueError::new_err("threshold must be at least 1"));
        }
        if transition_round == Some(0) {
            return Err(PyValueError::new_err("transition_round must be at least 1"));
        }
        let phase = seconds(phase_timeout, false)?;
        let resp = self.with(py, |c| {
            let leader = match node {
                Some(i) => i,
                None => (0..c.len())
                    .find(|&i| {
                        c.node(i).is_running() && matches!(c.beacon_group(i), Ok(Some(g)) if g.share_index.is_some())
                    })
                    .ok_or(Failure::Service(ServiceError::Refused("no running node runs a beacon group".into())))?,
            };
            let members = match members {
                Some(m) => m,
                None => match c.network_members(leader).map_err(|e| Failure::from_cluster(leader, e))? {
                    Some(m) => m,
                    None => (0..c.len()).collect(),
                },
            };
            c.beacon_reshare(leader, &members, threshold.unwrap_or(0), phase, transition_round.unwrap_or(0))
                .map_err(|e| Failure::from_cluster(leader, e))
        })?;
        let resp = resp.map_err(|f| f.into_py(py))?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("transition_round", resp.transition_round)?;
        d.set_item("chain_hash", resp.chain_hash)?;
        d.set_item("qualified", resp.qualified)?;
        d.set_item("confirmed", resp.confirmed)?;
        d.set_item("participants", resp.participants)?;
        d.set_item("group_toml", resp.group_toml)?;
        Ok(d)
    }

    /// The beacon group node `i` currently runs, as a dict (`size`, `threshold`, `share_index`:
    /// None when the node is not in it, `transition_round`: the group's first round when it took
    /// over by resharing, else None); None when the node runs no beacon chain.
    fn beacon_group<'py>(&self, py: Python<'py>, i: isize) -> PyResult<Option<Bound<'py, pyo3::types::PyDict>>> {
        let i = self.index(i)?;
        let g = self.with(py, |c| c.beacon_group(i).map_err(|e| Failure::from_cluster(i, e)))?;
        let Some(g) = g.map_err(|f| f.into_py(py))? else { return Ok(None) };
        let d = pyo3::types::PyDict::new(py);
        d.set_item("size", g.size)?;
        d.set_item("threshold", g.threshold)?;
        d.set_item("share_index", g.share_index)?;
        d.set_item("transition_round", g.transition_round)?;
        Ok(Some(d))
    }

    /// Stops every node and removes the temporary folder. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| drop(lock(&self.inner).take()));
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> bool {
        self.with(py, |_| ()).is_err()
    }

    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if slf.get().closed(slf.py()) {
            return Err(closed("cluster"));
        }
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        match self.with(py, |c| c.nodes().iter().filter(|n| n.is_running()).count()) {
            Ok(running) => format!("LocalCluster({} nodes, {running} running, dir={:?})", self.__len__(), self.dir),
            Err(_) => format!("LocalCluster({} nodes, closed)", self.__len__()),
        }
    }
}
