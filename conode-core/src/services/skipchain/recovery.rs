//! Recovery of a node whose database was restored from a backup: what it signed after the backup
//! was taken (prepare votes, locks) is gone, so it must not sign again before it has caught up.
//! On start, when the database carries the restore marker, the node holds every signature (cosi
//! refuses all purposes), then for each chain it knows: asks the roster of the newest block for
//! their newest index and needs answers from a quorum (the default threshold, itself included),
//! catches up to the highest claim that its blocks bear out (a member whose blocks do not verify,
//! or who has fewer than it claimed, is lying and set aside), reads the members' slot states for
//! the next index and records a fence there through the ordinary vote rules (prepared in the highest view reported, with a
//! placeholder block, and the highest valid lock reported adopted), so it prepares only in later
//! views and never contradicts a lock a quorum member holds. Then it drops the marker, releases
//! the hold and says so in its log and in the `Recovery` section of `/status`.
//!
//! Chains created after the backup are unknown to the restored node until a member pushes a block
//! of them, yet it may have voted on them before it was lost. So a restored node stays *fenced*
//! for good (a durable flag in the `skipchain.fenced` tree, with every chain fenced so far): on a
//! chain it has not fenced, both signing hooks refuse and start that chain's fence in the
//! background (the same quorum catch-up and slot fence); the next view finds it fenced. A node
//! that was never restored has no flag and no gate.
//!
//! Beacon partials need no fence: threshold BLS partials are unique per round, so signing a round
//! again yields the same partial.

use super::{hex8, SkipchainError, SkipchainService, SKIPCHAIN_SERVICE};
use crate::backup::{RECOVERY_KEY, RECOVERY_TREE};
use crate::config::ServerIdentity;
use crate::services::cosi::Policy;
use crate::services::skipchain::messages::Latest;
use crate::storage::{ServiceTree, Storage, StorageError};
use prost::Message;
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{info, warn};

/// Status section of a restored node.
pub const RECOVERY_SECTION: &str = "Recovery";
const RETRY: Duration = Duration::from_secs(2);
const LATEST_TIMEOUT: Duration = Duration::from_secs(3);
const HOLD_REASON: &str = "restored from a backup: catching up from a quorum of peers before signing";

/// Chains a restored node has fenced (keys: genesis ids), and the flag that it was restored.
const FENCED_TREE: &str = "skipchain.fenced";
/// Not a genesis id (those are 32 bytes).
const RESTORED_KEY: &[u8] = b"restored";

/// The gate of a restored node: which chains are fenced, and the fences running now.
pub(super) struct Fences {
    tree: ServiceTree,
    restored: AtomicBool,
    running: Mutex<HashSet<Vec<u8>>>,
    /// Chains fenced after recovery (first seen later), for the status section.
    late: AtomicU64,
}

impl Fences {
    pub(super) fn open(storage: &Storage) -> Result<Self, StorageError> {
        let tree = storage.tree(FENCED_TREE)?;
        let restored = tree.get(RESTORED_KEY)?.is_some();
        Ok(Self { tree, restored: AtomicBool::new(restored), running: Mutex::default(), late: AtomicU64::new(0) })
    }

    pub(super) fn fenced(&self, genesis: &[u8]) -> bool {
        !self.restored.load(Ordering::SeqCst) || matches!(self.tree.get(genesis), Ok(Some(_)))
    }
}

#[derive(Default)]
struct State {
    /// Unix time of the backup the database came from.
    backup_unix: u64,
    started: Option<Instant>,
    /// Unix time recovery finished, when it did.
    done_unix: Option<u64>,
    took: Option<Duration>,
    chains: usize,
    attempts: u64,
    last_error: String,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl SkipchainService {
    /// Starts recovery when the database was restored (and shows it in `/status`).
    pub(super) fn start_recovery(&self) {
        let ctx = &self.shared.ctx;
        let Ok(tree) = ctx.storage.tree(RECOVERY_TREE) else { return };
        let Ok(Some(marker)) = tree.get(RECOVERY_KEY) else { return };
        let backup_unix = marker.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_be_bytes).unwrap_or(0);
        self.shared.cosi.hold_signing(HOLD_REASON);
        let fences = &self.shared.fences;
        if let Err(e) = fences.tree.put(RESTORED_KEY, &backup_unix.to_be_bytes()) {
            // Without the durable flag a restart after recovery would forget the gate: keep
            // holding every signature (the loop below retries only the catch-up).
            warn!(error = %e, "recovery: cannot record the restored flag; signing stays held");
            return;
        }
        fences.restored.store(true, Ordering::SeqCst);
        warn!(
            backup_unix,
            "database restored from a backup: this node signs nothing until it has caught up from a quorum of its peers"
        );
        let state = Arc::new(Mutex::new(State { backup_unix, started: Some(Instant::now()), ..State::default() }));
        let shown = state.clone();
        let weak = Arc::downgrade(&self.shared);
        ctx.status.add(
            RECOVERY_SECTION,
            Arc::new(move || {
                let st = shown.lock().unwrap_or_else(|p| p.into_inner());
                let mut s = BTreeMap::new();
                s.insert("State".into(), if st.done_unix.is_some() { "caught up" } else { "recovering" }.to_string());
                s.insert("Signing".into(), if st.done_unix.is_some() { "yes" } else { "held" }.to_string());
                s.insert("BackupTakenUnix".into(), st.backup_unix.to_string());
                s.insert("Attempts".into(), st.attempts.to_string());
                s.insert("ChainsFenced".into(), st.chains.to_string());
                if let Some(t) = st.done_unix {
                    s.insert("CaughtUpUnix".into(), t.to_string());
                }
                if let Some(t) = st.took {
                    s.insert("RecoverySeconds".into(), format!("{:.3}", t.as_secs_f64()));
                }
                if let Some(svc) = weak.upgrade() {
                    s.insert("LateChainsFenced".into(), svc.fences.late.load(Ordering::SeqCst).to_string());
                }
                if st.done_unix.is_none() && !st.last_error.is_empty() {
                    s.insert("Waiting".into(), st.last_error.clone());
                }
                s
            }),
        );
        let svc = self.clone();
        ctx.tasks.spawn(async move {
            loop {
                let attempt = svc.recover_once().await;
                let done = {
                    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
                    st.attempts += 1;
                    match attempt {
                        Ok(chains) => {
                            // The marker goes only once every fence is durable.
                            if let Err(e) = tree.remove(RECOVERY_KEY) {
                                st.last_error = format!("cannot clear the restore marker: {e}");
                                warn!(error = %e, "recovery: cannot clear the restore marker");
                                false
                            } else {
                                let took = st.started.map(|s| s.elapsed()).unwrap_or_default();
                                svc.shared.cosi.release_signing();
                                // At warning level, as the hold was: an operator sees both ends.
                                warn!(
                                    chains,
                                    "recovery done in {took:?}: caught up from a quorum of peers; signing again"
                                );
                                st.chains = chains;
                                st.took = Some(took);
                                st.done_unix = Some(now_unix());
                                true
                            }
                        }
                        Err(e) => {
                            if st.last_error != e {
                                warn!(error = %e, "recovery: not caught up yet; still not signing");
                            }
                            st.last_error = e;
                            false
                        }
                    }
                };
                if done {
                    return;
                }
                tokio::time::sleep(RETRY).await;
            }
        });
    }

    /// One pass over every known chain; the number of chains fenced, or what is missing.
    async fn recover_once(&self) -> Result<usize, String> {
        let mut fenced = 0;
        for genesis in self.shared.store.chains() {
            if self.shared.store.latest(&genesis).is_none() {
                continue;
            }
            self.fence_chain(&genesis).await?;
            fenced += 1;
        }
        Ok(fenced)
    }

    /// The gate of both signing hooks on a restored node: `Ok` on a fenced chain; otherwise starts
    /// the chain's fence (once) and refuses for now.
    pub(super) fn fence_gate(&self, genesis: &[u8]) -> Result<(), String> {
        let fences = &self.shared.fences;
        if fences.fenced(genesis) {
            return Ok(());
        }
        let fresh = fences.running.lock().unwrap_or_else(|p| p.into_inner()).insert(genesis.to_vec());
        if fresh {
            let (svc, genesis) = (self.clone(), genesis.to_vec());
            self.shared.ctx.tasks.spawn(async move {
                let mut last = String::new();
                loop {
                    match svc.fence_chain(&genesis).await {
                        Ok(()) => {
                            svc.shared.fences.late.fetch_add(1, Ordering::SeqCst);
                            info!(chain = %hex8(&genesis), "restored node: fenced a chain first seen after recovery");
                            break;
                        }
                        Err(e) if e != last => {
                            warn!(error = %e, "restored node: cannot fence a chain yet; not signing for it");
                            last = e;
                        }
                        Err(_) => {}
                    }
                    tokio::time::sleep(RETRY).await;
                }
                let fences = &svc.shared.fences;
                fences.running.lock().unwrap_or_else(|p| p.into_inner()).remove(&genesis);
            });
        }
        Err(format!(
            "this node was restored from a backup and has not yet fenced chain {} (it may have voted on it \
             before): catching up from a quorum first",
            hex8(genesis)
        ))
    }

    /// Catches `genesis` up to the newest block the members claim (`Latest` answers), from the
    /// highest claim down. A member whose claim its blocks do not bear out (they do not verify,
    /// or it has fewer than it said) is lying, and its claim is set aside (a Byzantine member
    /// claiming blocks that do not exist must not keep a restored node from ever signing again);
    /// a claim not tried out (the member is unreachable, or failed to answer) keeps recovery
    /// waiting, as the member may be honest and ahead.
    async fn catch_up_to_claims(&self, genesis: &[u8], answers: Vec<(ServerIdentity, Latest)>) -> Result<(), String> {
        let s = &self.shared;
        let chain = hex8(genesis);
        let mut claims: Vec<(ServerIdentity, u64)> =
            answers.into_iter().filter(|(_, l)| l.known).map(|(m, l)| (m, l.index)).collect();
        claims.sort_by_key(|(_, index)| std::cmp::Reverse(*index));
        let mut untried = None;
        for (member, claimed) in claims {
            let top = s.store.latest_index(genesis).unwrap_or(0);
            if claimed <= top {
                break;
            }
            match self.catch_up(genesis, &member).await {
                Ok(_) if s.store.latest_index(genesis).unwrap_or(0) >= claimed => {}
                Ok(_) => warn!(
                    chain = %chain, peer = %member.address, claimed,
                    "recovery: a member claimed blocks it does not deliver; its claim is set aside"
                ),
                Err(
                    e @ (SkipchainError::Invalid(_)
                    | SkipchainError::Refused(_)
                    | SkipchainError::Behind { .. }
                    | SkipchainError::Conflict(_)),
                ) => warn!(
                    chain = %chain, peer = %member.address, claimed, error = %e,
                    "recovery: a member's blocks do not verify; its claim is set aside"
                ),
                Err(e) => {
                    untried.get_or_insert((claimed, e.to_string()));
                }
            }
        }
        let top = s.store.latest_index(genesis).unwrap_or(0);
        match untried {
            Some((claimed, e)) if claimed > top => {
                Err(format!("chain {chain}: at index {top}, a member has {claimed}: catch-up: {e}"))
            }
            _ => Ok(()),
        }
    }

    /// Catches `genesis` up from a quorum of the roster of its newest block and fences the next
    /// slot; then records the chain as fenced, durably.
    async fn fence_chain(&self, genesis: &[u8]) -> Result<(), String> {
        let s = &self.shared;
        let chain = hex8(genesis);
        let latest = s.store.latest(genesis).ok_or_else(|| format!("chain {chain}: unknown"))?;
        let roster = latest
            .roster
            .as_ref()
            .ok_or_else(|| format!("chain {chain}: newest block without roster"))
            .and_then(|r| s.rosters.get(r).map_err(|e| format!("chain {chain}: {e}")))?;
        let need = Policy::default_threshold(roster.servers.len());
        let req = Latest { genesis: genesis.to_vec(), ..Default::default() }.encode_to_vec();
        let asks = roster.servers.iter().filter(|m| m.public != s.me).map(|m| {
            let (net, req, m) = (s.network.clone(), req.clone(), m.clone());
            async move {
                let reply = net.request(&m, SKIPCHAIN_SERVICE, "Latest", &[], req, LATEST_TIMEOUT).await.ok()?;
                Latest::decode(reply.as_slice()).ok().map(|l| (m, l))
            }
        });
        let answers: Vec<_> = futures_util::future::join_all(asks).await.into_iter().flatten().collect();
        if answers.len() + 1 < need {
            return Err(format!(
                "chain {chain}: {} of {} members reachable, {need} needed",
                answers.len() + 1,
                roster.servers.len()
            ));
        }
        self.catch_up_to_claims(genesis, answers).await?;
        let latest = s.store.latest(genesis).ok_or_else(|| format!("chain {chain}: no newest block"))?;
        let block_roster =
            latest.roster.clone().ok_or_else(|| format!("chain {chain}: newest block without roster"))?;
        let signers = s.rosters.get(&block_roster).map_err(|e| format!("chain {chain}: {e}"))?;
        let index = latest.index + 1;
        let states = self.slot_states(genesis, index, &signers).await;
        // A view not open anywhere yet (or at the bound) is a lie: a fence there would keep this
        // node from preparing in this slot for long, and mislead every proposer that asks it.
        let open_here = self.open_views(genesis, latest.index, None);
        let view =
            crate::services::skipchain::votes::highest_view(states.iter().map(|(_, st)| st.prepared_view), open_here);
        let lock = states
            .into_iter()
            .filter_map(|(_, st)| st.locked)
            .filter(|l| self.valid_lock(genesis, index, &block_roster, l))
            .max_by_key(|l| l.view);
        s.votes.fence(genesis, index, view, lock).map_err(|e| format!("chain {chain}: {e}"))?;
        s.fences.tree.put(genesis, &[]).map_err(|e| format!("chain {chain}: cannot record the fence: {e}"))?;
        info!(chain = %chain, index, view, "recovery: caught up; fenced the next slot");
        Ok(())
    }
}
