//! What the skipchain service shows operators: counters and latencies of blocks and appends for
//! `/metrics`, the recent blocks stored (for the status page's activity list), and the latest
//! roster of each chain this node follows (for the roster status page).

use super::store::ChainStore;
use crate::config::{NodeAddress, ServerIdentity};
use crate::crypto::IdentityPublicKey;
use crate::services::metrics::{counter, gauge, labels, seconds_histogram, Activity, CounterFamily, RosterView};
use crate::wire::skipchain::SkipBlock;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Blocks kept in the recent-activity list.
const RECENT: usize = 32;
/// Chains shown on the status page (the most recently active first).
const MAX_VIEWS: usize = 16;

/// How a block came to be stored here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Stored {
    /// A chain this node created.
    Created,
    /// Appended by this node (it led the rounds).
    Appended,
    /// Pushed by a member or fetched while catching up.
    FromPeer,
}

impl Stored {
    fn as_str(self) -> &'static str {
        match self {
            Stored::Created => "created",
            Stored::Appended => "appended",
            Stored::FromPeer => "from_peer",
        }
    }
}

struct Recent {
    genesis: Vec<u8>,
    index: u64,
    how: Stored,
    unix_ms: u64,
}

/// Counters, latencies and recent blocks of one node's skipchain service.
pub(super) struct Observed {
    blocks: CounterFamily,
    appends: AtomicU64,
    append_failures: AtomicU64,
    append_latency: Histogram,
    /// Catch-ups started by client reads beyond this node's newest block, and such reads that
    /// started none because one ran lately (the limit that keeps strangers from flooding members).
    read_catch_ups: AtomicU64,
    read_catch_ups_limited: AtomicU64,
    /// Batched rounds (prepare and forward links) this node led that served their appends (not
    /// those whose appends went back to rounds of their own), and those appends.
    batched_rounds: AtomicU64,
    batched_appends: AtomicU64,
    /// Blocks whose forward links this node signed again in v1 for members running code from
    /// before v2 links (see `older_members`).
    links_signed_again: AtomicU64,
    recent: Mutex<VecDeque<Recent>>,
    /// Where the time of appends goes (for `conode bench skipchain`'s breakdown).
    pub(super) phases: Phases,
}

/// The steps of an append, on the proposer and on each member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Proposer: the prepare round (a prepare certificate).
    Prepare,
    /// Proposer: the commit round(s) (the forward links).
    Links,
    /// Proposer: storing the block and its sources' links.
    Store,
    /// Proposer: waiting for the signers to store the block.
    Propagate,
    /// Member: the prepare hook (checks and the durable prepare vote).
    PrepareHook,
    /// Member: the commit hook (checks and the durable lock).
    CommitHook,
    /// Member: verifying and storing a block pushed by the proposer.
    Accept,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Phase::Prepare,
        Phase::Links,
        Phase::Store,
        Phase::Propagate,
        Phase::PrepareHook,
        Phase::CommitHook,
        Phase::Accept,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare_round",
            Phase::Links => "commit_round",
            Phase::Store => "proposer_store",
            Phase::Propagate => "propagate_wait",
            Phase::PrepareHook => "member_prepare_hook",
            Phase::CommitHook => "member_commit_hook",
            Phase::Accept => "member_accept",
        }
    }
}

/// Count and total time of each [`Phase`] on this node.
#[derive(Default)]
pub(super) struct Phases {
    sums: [(AtomicU64, AtomicU64); 7],
}

impl Phases {
    pub(super) fn add(&self, phase: Phase, elapsed: Duration) {
        let (count, nanos) = &self.sums[phase as usize];
        count.fetch_add(1, Ordering::Relaxed);
        nanos.fetch_add(elapsed.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (phase, count, total seconds) for every phase.
    pub(super) fn snapshot(&self) -> Vec<(Phase, u64, f64)> {
        Phase::ALL
            .iter()
            .map(|&p| {
                let (count, nanos) = &self.sums[p as usize];
                (p, count.load(Ordering::Relaxed), nanos.load(Ordering::Relaxed) as f64 / 1e9)
            })
            .collect()
    }
}

/// Wall-clock Unix time in milliseconds (0 before the epoch).
pub(super) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Observed {
    pub(super) fn new() -> Self {
        Self {
            blocks: CounterFamily::default(),
            appends: AtomicU64::new(0),
            append_failures: AtomicU64::new(0),
            append_latency: seconds_histogram(),
            read_catch_ups: AtomicU64::new(0),
            read_catch_ups_limited: AtomicU64::new(0),
            batched_rounds: AtomicU64::new(0),
            batched_appends: AtomicU64::new(0),
            links_signed_again: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            phases: Phases::default(),
        }
    }

    /// A block was stored durably.
    pub(super) fn stored(&self, block: &SkipBlock, how: Stored) {
        self.blocks.get_or_create(&labels(&[("how", how.as_str())])).inc();
        let genesis = if block.index == 0 { block.hash.clone() } else { block.genesis_id.clone() };
        let mut r = crate::sync::lock(&self.recent);
        if r.len() == RECENT {
            r.pop_front();
        }
        r.push_back(Recent { genesis, index: block.index, how, unix_ms: unix_ms() });
    }

    /// An append this node led ended after `elapsed`.
    pub(super) fn append_done(&self, elapsed: Duration, ok: bool) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.append_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.append_latency.observe(elapsed.as_secs_f64());
    }

    /// A batched round this node led served `appends` appends.
    pub(super) fn batched_round(&self, appends: usize) {
        self.batched_rounds.fetch_add(1, Ordering::Relaxed);
        self.batched_appends.fetch_add(appends as u64, Ordering::Relaxed);
    }

    /// (batched rounds this node led, appends they served).
    pub(super) fn batched_rounds(&self) -> (u64, u64) {
        (self.batched_rounds.load(Ordering::Relaxed), self.batched_appends.load(Ordering::Relaxed))
    }

    /// A client read beyond this node's newest block started a catch-up (`started`) or was
    /// answered from what is here because one ran lately.
    pub(super) fn read_catch_up(&self, started: bool) {
        let counter = if started { &self.read_catch_ups } else { &self.read_catch_ups_limited };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// (catch-ups started by client reads, reads that started none because of the limit).
    pub(super) fn read_catch_ups(&self) -> (u64, u64) {
        (self.read_catch_ups.load(Ordering::Relaxed), self.read_catch_ups_limited.load(Ordering::Relaxed))
    }

    /// This node signed a block's forward links again in v1 for an older member.
    pub(super) fn signed_links_again(&self) {
        self.links_signed_again.fetch_add(1, Ordering::Relaxed);
    }

    /// Blocks whose forward links this node signed again in v1 for older members.
    pub(super) fn links_signed_again(&self) -> u64 {
        self.links_signed_again.load(Ordering::Relaxed)
    }

    pub(super) fn write_metrics(&self, reg: &mut Registry, store: &ChainStore) {
        reg.register("conode_skipchain_blocks_stored", "Blocks stored here, by how they came", self.blocks.clone());
        counter(reg, "conode_skipchain_appends", "Appends this node led.", self.appends.load(Ordering::Relaxed));
        counter(
            reg,
            "conode_skipchain_append_failures",
            "Appends this node led that failed.",
            self.append_failures.load(Ordering::Relaxed),
        );
        counter(
            reg,
            "conode_skipchain_read_catch_ups",
            "Catch-ups started by client reads beyond this node's newest block.",
            self.read_catch_ups.load(Ordering::Relaxed),
        );
        counter(
            reg,
            "conode_skipchain_read_catch_ups_limited",
            "Client reads beyond this node's newest block that started no catch-up (one ran lately).",
            self.read_catch_ups_limited.load(Ordering::Relaxed),
        );
        counter(
            reg,
            "conode_skipchain_links_signed_again",
            "Blocks whose forward links this node signed again in v1 for members that could not verify them (code from before v2 links).",
            self.links_signed_again(),
        );
        let (rounds, appends) = self.batched_rounds();
        counter(
            reg,
            "conode_skipchain_batched_rounds",
            "Batched rounds (prepare and forward links) this node led that served their appends (one for several chains).",
            rounds,
        );
        counter(
            reg,
            "conode_skipchain_batched_appends",
            "Appends served by the batched rounds this node led.",
            appends,
        );
        reg.register_with_unit(
            "conode_skipchain_append_duration",
            "Time of the appends this node led",
            Unit::Seconds,
            self.append_latency.clone(),
        );
        gauge(reg, "conode_skipchain_chains", "Chains this node holds.", store.chains().len() as f64);
    }

    /// The latest roster of the chains this node follows, most recently active first.
    pub(super) fn roster_views(&self, store: &ChainStore) -> Vec<RosterView> {
        let recent: Vec<(Vec<u8>, u64, Stored, u64)> =
            crate::sync::lock(&self.recent).iter().map(|r| (r.genesis.clone(), r.index, r.how, r.unix_ms)).collect();
        let mut order: Vec<Vec<u8>> = Vec::new();
        for (g, ..) in recent.iter().rev() {
            if !order.contains(g) {
                order.push(g.clone());
            }
        }
        for g in store.chains() {
            if order.len() >= MAX_VIEWS {
                break;
            }
            if !order.contains(&g) {
                order.push(g);
            }
        }
        order.truncate(MAX_VIEWS);
        order
            .into_iter()
            .filter_map(|genesis| {
                let latest = store.latest(&genesis)?;
                let id = hex::encode(&genesis);
                let members =
                    latest.roster.as_ref().map(|r| r.members.iter().filter_map(member).collect()).unwrap_or_default();
                let mut facts = BTreeMap::new();
                facts.insert("genesis".to_string(), id.clone());
                facts.insert("height".to_string(), latest.index.to_string());
                let activity = recent
                    .iter()
                    .filter(|(g, ..)| *g == genesis)
                    .map(|(_, index, how, unix_ms)| Activity {
                        unix_ms: *unix_ms,
                        text: format!("skipchain {} block {index} {}", &id[..8], how.as_str().replace('_', " ")),
                    })
                    .collect();
                Some(RosterView {
                    id: format!("skipchain:{id}"),
                    name: format!("skipchain {}", &id[..8]),
                    kind: "skipchain".into(),
                    members,
                    facts,
                    activity,
                })
            })
            .collect()
    }
}

/// A block roster entry as a peer to reach (no keys checked: only shown and pinged).
fn member(e: &crate::wire::skipchain::RosterEntry) -> Option<ServerIdentity> {
    Some(ServerIdentity {
        address: NodeAddress::parse(&e.address).ok()?,
        public: IdentityPublicKey::from_bytes(&e.identity).ok()?,
        description: e.description.clone(),
        url: None,
        services: BTreeMap::new(),
    })
}
