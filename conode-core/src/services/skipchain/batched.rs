//! Appends of different chains that reach one proposer while a round over the same roster is under
//! way share the next round (group commit): one prepare round and one forward-link round serve all
//! of them, so the roster's signatures, the aggregate checks and the round's messages are paid once
//! per batch instead of once per append.
//!
//! - The first append of an idle roster runs its rounds alone, exactly as without batching; appends
//!   that arrive meanwhile wait and go together in the next round (at most [`MAX_BATCH`], and
//!   [`MAX_BATCH_BYTES`] of proposals).
//! - A batched prepare round signs the root of the Merkle tree of every block's prepare message
//!   (each certificate holds its position and path, see `PrepareCertificate`); a batched
//!   forward-link round signs the root of the tree of every block's v2 statement (`LINK_FORMAT_V3`:
//!   each link holds its position and path, log₂ of the batch in hashes; light clients verify it
//!   like the other formats). See [`crate::verify::batch_tree`]. A member checks every proposal of a batch as it would check it alone and
//!   signs only if all pass; its votes are the same per-slot votes.
//! - A batched round that fails, or that members refuse as code from before batches does (no hook
//!   for the purpose: they could not check its certificates or links), sends its appends back to
//!   rounds of their own (the single-append path, with its views and recovery, each in a task of
//!   its own), so batching never decides what is committed; such a roster gets no batched rounds
//!   for a while (`NO_BATCH_FOR`). Other refusals (a member behind on one chain) do not void a
//!   round that reached its threshold, as in single rounds.
//! - A line waits for an append it runs alone at most `HOLD_LINE`, so one slow append (a contended
//!   slot) does not hold the other chains of its roster.

use super::*;
use crate::verify::batch_tree::{batch_tree, MAX_BATCH};
use crate::verify::skipchain::{COMMIT_BATCH_DOMAIN, LINK_FORMAT_V3};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use tokio::sync::oneshot;

/// Cosi purpose of a prepare round over several appends.
pub const PREPARE_BATCH_PURPOSE: &str = "SkipchainPrepareBatch";
/// Cosi purpose of a forward-link round over several appends.
pub const COMMIT_BATCH_PURPOSE: &str = "SkipchainCommitBatch";
/// Most bytes of proposals one batched round carries (the first append of a batch always goes).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How long a roster whose members lack the batch hooks gets rounds of one append each.
const NO_BATCH_FOR: Duration = LEGACY_LINKS_FOR;
/// What a cosi member answers for a purpose it has no hook for (older code, for the batch purposes).
const NO_HOOK: &str = "no verification hook for purpose";
/// What a member whose `SkipchainLinks` names an older format answers to a batched link round.
const NO_V3: &str = "this member signs no v3 links (SkipchainLinks)";
/// Longest a line waits for an append it runs alone before it serves the next appends.
const HOLD_LINE: Duration = Duration::from_millis(500);

/// The append lock of a chain (one append at a time per chain), shared by the append and the
/// round task serving it: a round goes on after its append's caller gave up, and the chain's next
/// append waits for it instead of proposing the same index beside it.
pub(super) type ChainGuard = Arc<tokio::sync::OwnedMutexGuard<()>>;

/// One append waiting for a prepare round: its result is the proposal with its certificate.
pub(super) struct PrepareItem {
    latest: SkipBlock,
    prev_roster: BlockRoster,
    proposal: Proposal,
    done: oneshot::Sender<Result<Proposal, SkipchainError>>,
    _chain: ChainGuard,
}

/// One append waiting for its forward links (its sources all have the round's roster).
pub(super) struct LinksItem {
    sources: Vec<SkipBlock>,
    block: SkipBlock,
    agreed: Proposal,
    done: oneshot::Sender<Result<Vec<ForwardLink>, SkipchainError>>,
    _chain: ChainGuard,
}

/// What a queue needs of an item: its chain (one slot per chain in a batch) and its size.
pub(super) trait Waiting {
    fn chain(&self) -> &[u8];
    fn bytes(&self) -> usize;
}

impl Waiting for PrepareItem {
    fn chain(&self) -> &[u8] {
        self.latest.chain_id()
    }
    fn bytes(&self) -> usize {
        self.proposal.encoded_len()
    }
}

impl Waiting for LinksItem {
    fn chain(&self) -> &[u8] {
        self.block.chain_id()
    }
    fn bytes(&self) -> usize {
        self.agreed.encoded_len()
    }
}

struct Line<T> {
    items: VecDeque<T>,
    running: bool,
}

/// Appends waiting for a round, per roster id, served by one runner task per busy roster.
pub(super) struct Queue<T> {
    lines: std::sync::Mutex<HashMap<[u8; 32], Line<T>>>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self { lines: Default::default() }
    }
}

impl<T: Waiting> Queue<T> {
    /// Adds `item` to the line of `roster`; true when no runner serves that line (the caller
    /// starts one).
    fn push(&self, roster: [u8; 32], item: T) -> bool {
        let mut lines = crate::sync::lock(&self.lines);
        let line = lines.entry(roster).or_insert_with(|| Line { items: VecDeque::new(), running: false });
        line.items.push_back(item);
        !std::mem::replace(&mut line.running, true)
    }

    /// The next batch of `roster`'s line: the waiting appends in order, at most [`MAX_BATCH`] and
    /// [`MAX_BATCH_BYTES`] (the first always), one per chain. Empty when none waits: the line is
    /// then idle and its runner stops.
    fn next(&self, roster: &[u8; 32]) -> Vec<T> {
        let mut lines = crate::sync::lock(&self.lines);
        let Some(line) = lines.get_mut(roster) else { return Vec::new() };
        let mut batch: Vec<T> = Vec::new();
        let mut bytes = 0;
        while let Some(item) = line.items.front() {
            let full = batch.len() >= MAX_BATCH || bytes + item.bytes() > MAX_BATCH_BYTES;
            if !batch.is_empty() && (full || batch.iter().any(|b| b.chain() == item.chain())) {
                break;
            }
            bytes += item.bytes();
            batch.extend(line.items.pop_front());
        }
        if batch.is_empty() {
            lines.remove(roster);
        }
        batch
    }

    /// Ends the runner of `roster`'s line without serving it (the appends still waiting get an
    /// error): what a runner does when it is dropped before its line is empty.
    fn abandon(&self, roster: &[u8; 32]) {
        crate::sync::lock(&self.lines).remove(roster);
    }
}

/// The runner of a line, made before its task is spawned: however the runner ends (its task
/// cancelled, or dropped before it ran, when the node stops) the line is ended, so a later append
/// starts a new runner and the appends still waiting get an error instead of waiting for ever.
struct Runner<T: Served> {
    svc: SkipchainService,
    roster: [u8; 32],
    /// The line was served until empty (`next` already made it idle).
    emptied: bool,
    line: std::marker::PhantomData<fn() -> T>,
}

impl<T: Served> Runner<T> {
    fn new(svc: &SkipchainService, roster: [u8; 32]) -> Self {
        Self { svc: svc.clone(), roster, emptied: false, line: std::marker::PhantomData }
    }

    fn next(&self) -> Vec<T> {
        T::line(&self.svc.shared).next(&self.roster)
    }
}

impl<T: Served> Drop for Runner<T> {
    fn drop(&mut self) {
        if !self.emptied {
            T::line(&self.svc.shared).abandon(&self.roster);
        }
    }
}

/// Whether a round's refusals say that members cannot take part in batched rounds: they run code
/// from before them, or keep to links their light clients check (`SkipchainLinks` "v1"/"v2").
fn refuses_batches(report: &cosi::SignReport) -> bool {
    report.refused.iter().any(|e| e.reason.contains(NO_HOOK) || e.reason.contains(NO_V3))
}

fn stopped<T>() -> Result<T, SkipchainError> {
    Err(SkipchainError::Invalid("the append's round ended without a result (the node is stopping)".into()))
}

/// How a line serves its appends: one alone (in a task of its own), several in one round.
trait Served: Waiting + Sized + Send + 'static {
    /// The node's queue of these appends.
    fn line(s: &Shared) -> &Queue<Self>;
    fn alone(svc: &SkipchainService, item: Self) -> tokio::task::JoinHandle<Option<()>>;
    fn together(svc: SkipchainService, roster: [u8; 32], items: Vec<Self>) -> impl Future<Output = ()> + Send;
}

impl Served for PrepareItem {
    fn line(s: &Shared) -> &Queue<Self> {
        &s.prepare_queue
    }
    fn alone(svc: &SkipchainService, item: Self) -> tokio::task::JoinHandle<Option<()>> {
        svc.prepare_alone(item)
    }
    async fn together(svc: SkipchainService, _roster: [u8; 32], items: Vec<Self>) {
        svc.prepare_together(items).await
    }
}

impl Served for LinksItem {
    fn line(s: &Shared) -> &Queue<Self> {
        &s.links_queue
    }
    fn alone(svc: &SkipchainService, item: Self) -> tokio::task::JoinHandle<Option<()>> {
        svc.links_alone(item)
    }
    async fn together(svc: SkipchainService, roster: [u8; 32], items: Vec<Self>) {
        svc.sign_links_together(&roster, items).await
    }
}

/// Serves a line until it is empty: one append alone, several together.
async fn run_line<T: Served>(mut runner: Runner<T>) {
    let svc = runner.svc.clone();
    loop {
        let mut batch = runner.next();
        match batch.len() {
            0 => break,
            1 => {
                let Some(it) = batch.pop() else { break };
                svc.hold(T::alone(&svc, it)).await;
            }
            _ => T::together(svc.clone(), runner.roster, batch).await,
        }
    }
    runner.emptied = true;
}

impl SkipchainService {
    /// Whether appends over `roster` may share rounds now.
    fn batching(&self, roster: &[u8; 32]) -> bool {
        let s = &self.shared;
        s.batched_rounds.load(std::sync::atomic::Ordering::SeqCst)
            && crate::sync::lock(&s.no_batch).get(roster).is_none_or(|until| *until <= std::time::Instant::now())
    }

    /// After a batched round over `roster` that members refused as code from before batches (or
    /// keeping to older links): rounds of one append for that roster for a while.
    fn note_refusals(&self, roster: &[u8; 32], report: &cosi::SignReport) {
        if refuses_batches(report) {
            crate::sync::lock(&self.shared.no_batch).renew(*roster, std::time::Instant::now() + NO_BATCH_FOR);
            debug!("members refused a batched round as older code: one append per round for a while");
        }
    }

    /// The prepare phase of an append, in a round shared with the appends of other chains that
    /// wait for the same roster at this node (see the module doc), or alone.
    pub(super) async fn prepare_batched(
        &self,
        chain: &ChainGuard,
        latest: &SkipBlock,
        prev_roster: &BlockRoster,
        proposal: Proposal,
    ) -> Result<Proposal, SkipchainError> {
        let key = prev_roster.id();
        let own = self.shared.votes.state(latest.chain_id(), latest.index + 1);
        // A node locked on a block of this slot finishes that one: the single path knows how.
        if !self.batching(&key) || !own.is_ok_and(|st| st.locked.is_none()) {
            return self.prepare(latest, prev_roster, proposal).await;
        }
        let (done, result) = oneshot::channel();
        let item = PrepareItem {
            latest: latest.clone(),
            prev_roster: prev_roster.clone(),
            proposal,
            done,
            _chain: chain.clone(),
        };
        if self.shared.prepare_queue.push(key, item) {
            self.shared.ctx.tasks.spawn(run_line(Runner::<PrepareItem>::new(self, key)));
        }
        result.await.unwrap_or_else(|_| stopped())
    }

    /// The forward links of an append, signed in a round shared with the appends of other chains
    /// whose sources have the same roster (see the module doc), or alone.
    pub(super) async fn sign_links_batched(
        &self,
        chain: &ChainGuard,
        sources: &[SkipBlock],
        block: &SkipBlock,
        agreed: &Proposal,
    ) -> Result<Vec<ForwardLink>, SkipchainError> {
        let s = &self.shared;
        let roster = sources.first().and_then(|b| b.roster.as_ref()).map(|r| r.id());
        let shared_roster = roster.filter(|id| sources.iter().all(|b| b.roster.as_ref().map(|r| r.id()) == Some(*id)));
        let Some(key) = shared_roster
            .filter(|id| self.batching(id) && s.links() >= SkipchainLinks::V3 && !s.legacy_links.marked(id))
        else {
            return self.sign_links(sources, block, agreed).await;
        };
        let (done, result) = oneshot::channel();
        let item = LinksItem {
            sources: sources.to_vec(),
            block: block.clone(),
            agreed: agreed.clone(),
            done,
            _chain: chain.clone(),
        };
        if s.links_queue.push(key, item) {
            s.ctx.tasks.spawn(run_line(Runner::<LinksItem>::new(self, key)));
        }
        result.await.unwrap_or_else(|_| stopped())
    }

    /// Waits for an append running alone for at most [`HOLD_LINE`]: the appends that arrive
    /// meanwhile gather for the next round, and one slow append (a contended slot trying later
    /// views) holds the other chains of the roster no longer than that.
    async fn hold(&self, alone: tokio::task::JoinHandle<Option<()>>) {
        let _ = tokio::time::timeout(HOLD_LINE, alone).await;
    }

    /// The single-append prepare phase of `it`, in a task of its own.
    fn prepare_alone(&self, it: PrepareItem) -> tokio::task::JoinHandle<Option<()>> {
        let svc = self.clone();
        self.shared.ctx.tasks.spawn(async move {
            let _ = it.done.send(svc.prepare(&it.latest, &it.prev_roster, it.proposal).await);
        })
    }

    /// The single-append forward-link rounds of `it`, in a task of its own.
    fn links_alone(&self, it: LinksItem) -> tokio::task::JoinHandle<Option<()>> {
        let svc = self.clone();
        self.shared.ctx.tasks.spawn(async move {
            let _ = it.done.send(svc.sign_links(&it.sources, &it.block, &it.agreed).await);
        })
    }

    /// One prepare round for the blocks of `items` (all over one roster, one per chain), each in
    /// the view after the last one this node prepared in for its slot. When the round fails or
    /// members refuse batched rounds, each append runs its own prepare phase.
    async fn prepare_together(&self, items: Vec<PrepareItem>) {
        let s = &self.shared;
        // A slot this node locked on meanwhile finishes its locked block on its own; one it
        // prepared in already goes on in this proposer's own views (`votes::VIEW_WINDOW`), on its
        // own too: a batch is every slot's first view.
        let (items, locked): (Vec<PrepareItem>, Vec<PrepareItem>) = items.into_iter().partition(|it| {
            s.votes
                .state(it.latest.chain_id(), it.latest.index + 1)
                .is_ok_and(|st| st.locked.is_none() && st.prepared_view == 0)
        });
        locked.into_iter().for_each(|it| drop(self.prepare_alone(it)));
        if items.len() < 2 {
            items.into_iter().for_each(|it| drop(self.prepare_alone(it)));
            return;
        }
        let attempt = || -> Result<_, SkipchainError> {
            let mut proposals = Vec::with_capacity(items.len());
            let mut messages = Vec::with_capacity(items.len());
            for it in &items {
                let (genesis, index) = (it.latest.chain_id(), it.latest.index + 1);
                let hash = it.proposal.block.as_ref().map(|b| b.hash.clone()).unwrap_or_default();
                let view = 1;
                messages.push(prepare_message(genesis, index, view, &hash));
                proposals.push(Proposal { view, prepared: None, justification: None, ..it.proposal.clone() });
            }
            let (statement, paths) = batch_tree(PREPARE_BATCH_DOMAIN, &messages).map_err(SkipchainError::Invalid)?;
            Ok((proposals, paths, statement, s.rosters.get(&items[0].prev_roster)?))
        };
        let key = items[0].prev_roster.id();
        if let Ok((proposals, paths, statement, signers)) = attempt() {
            let extra = ProposalBatch { proposals: proposals.clone() }.encode_to_vec();
            match s.cosi.sign(&signers, &statement, PREPARE_BATCH_PURPOSE, &extra, Policy::Default).await {
                // A certificate is one whoever refused, unless members lack the batch hooks
                // (they could not check it): those get rounds of one append.
                Ok(outcome) if !refuses_batches(&outcome.report) => {
                    s.observed.batched_round(items.len());
                    let signature =
                        CollectiveSignature { signature: outcome.signature.to_bytes().to_vec(), mask: outcome.mask };
                    let tag = roster_tag(&items[0].prev_roster);
                    let size = items.len() as u32;
                    for (position, ((it, mut proposal), path)) in
                        items.into_iter().zip(proposals).zip(paths).enumerate()
                    {
                        let cert = PrepareCertificate {
                            view: proposal.view,
                            block_hash: proposal.block.as_ref().map(|b| b.hash.clone()).unwrap_or_default(),
                            signature: Some(signature.clone()),
                            batch_path: path.iter().map(|h| h.to_vec()).collect(),
                            batch_index: position as u32,
                            batch_size: size,
                            fast: false,
                        };
                        // Verified by the round (as in `prepare`): this node's hooks need not again.
                        s.verified.remember(certificate_key(&tag, &statement, &cert));
                        proposal.prepared = Some(cert);
                        let _ = it.done.send(Ok(proposal));
                    }
                    return;
                }
                Ok(outcome) => self.note_refusals(&key, &outcome.report),
                Err(cosi::CosiError::ThresholdNotReached { report, .. }) => self.note_refusals(&key, &report),
                Err(e) => debug!(error = %e, "batched prepare round failed"),
            }
        }
        debug!(appends = items.len(), "batched prepare round not used: each append prepares on its own");
        items.into_iter().for_each(|it| drop(self.prepare_alone(it)));
    }

    /// One forward-link round over the v3 statement of the blocks of `items` (whose sources all
    /// have the roster `roster`). When it fails or members refuse batched rounds, each append
    /// signs its links on its own.
    async fn sign_links_together(&self, roster: &[u8; 32], items: Vec<LinksItem>) {
        let s = &self.shared;
        let entries: Vec<[u8; 32]> = items.iter().map(|it| ForwardLink::commit_message(&it.block.hash)).collect();
        let src_roster = items[0].sources.first().and_then(|b| b.roster.clone());
        if let (Some(src_roster), Ok((statement, paths))) = (src_roster, batch_tree(COMMIT_BATCH_DOMAIN, &entries)) {
            let proposals = items.iter().map(|it| Proposal { level: 0, ..it.agreed.clone() }).collect();
            let extra = ProposalBatch { proposals }.encode_to_vec();
            let signed = match s.rosters.get(&src_roster) {
                Ok(signers) => s.cosi.sign(&signers, &statement, COMMIT_BATCH_PURPOSE, &extra, Policy::Default).await,
                Err(e) => Err(cosi::CosiError::Refused(e.to_string())),
            };
            match signed {
                // Links are valid whoever refused, unless members lack the batch hooks (they
                // could not verify v3 links): those get rounds of one append.
                Ok(outcome) if !refuses_batches(&outcome.report) => {
                    s.observed.batched_round(items.len());
                    let signature =
                        CollectiveSignature { signature: outcome.signature.to_bytes().to_vec(), mask: outcome.mask };
                    let size = items.len() as u32;
                    for (position, (it, path)) in items.into_iter().zip(paths).enumerate() {
                        let block_roster = it.block.roster.as_ref().map(|r| r.id()).unwrap_or_default();
                        let new_roster = (src_roster.id() != block_roster).then(|| block_roster.to_vec());
                        let links = it
                            .sources
                            .iter()
                            .map(|src| ForwardLink {
                                from: src.hash.clone(),
                                to: it.block.hash.clone(),
                                new_roster: new_roster.clone(),
                                signature: Some(signature.clone()),
                                format: LINK_FORMAT_V3,
                                batch_path: path.iter().map(|h| h.to_vec()).collect(),
                                batch_index: position as u32,
                                batch_size: size,
                            })
                            .collect();
                        let _ = it.done.send(Ok(links));
                    }
                    return;
                }
                Ok(outcome) => self.note_refusals(roster, &outcome.report),
                Err(cosi::CosiError::ThresholdNotReached { report, .. }) => self.note_refusals(roster, &report),
                Err(e) => debug!(error = %e, "batched forward-link round failed"),
            }
        }
        debug!(appends = items.len(), "batched forward-link round not used: each append signs its own");
        items.into_iter().for_each(|it| drop(self.links_alone(it)));
    }

    /// The proposals of a batched round's extra data: 2 to [`MAX_BATCH`], one per chain.
    fn batch_of(&self, purpose: &str, extra: &[u8]) -> Result<Vec<Proposal>, String> {
        if self.shared.refuses_batches.load(std::sync::atomic::Ordering::SeqCst) {
            // What code from before batched rounds answers (fault injection, tests).
            return Err(format!("{NO_HOOK} `{purpose}` on this node"));
        }
        // A proposer sends at most MAX_BATCH_BYTES of proposals (with a few bytes of framing
        // each): nothing larger is decoded.
        if extra.len() > MAX_BATCH_BYTES + 16 * MAX_BATCH {
            return Err(format!("a proposal batch of {} bytes is above the bound", extra.len()));
        }
        let batch = ProposalBatch::decode(extra).map_err(|e| format!("proposal batch: {e}"))?;
        if !(2..=MAX_BATCH).contains(&batch.proposals.len()) {
            return Err(format!("a batch holds 2 to {MAX_BATCH} proposals, not {}", batch.proposals.len()));
        }
        let mut chains = std::collections::HashSet::new();
        for p in &batch.proposals {
            let block = p.block.as_ref().ok_or("proposal without block")?;
            if !chains.insert(block.genesis_id.clone()) {
                return Err("two proposals of one chain in a batch".into());
            }
        }
        Ok(batch.proposals)
    }

    /// The hook of a batched prepare round: every proposal passes the single prepare hook's
    /// checks, the statement is the batch statement over their prepare messages, and then each
    /// vote is recorded durably (before this node's signature leaves it).
    pub(super) fn check_prepare_batch(&self, statement: &[u8], extra: &[u8]) -> Result<(), String> {
        let proposals = self.batch_of(PREPARE_BATCH_PURPOSE, extra)?;
        if self.byzantine() {
            return Ok(());
        }
        if proposals.iter().any(|p| p.fast) {
            return Err("a batched prepare is never fast".into());
        }
        let votes = proposals.iter().map(|p| self.prepare_vote(p)).collect::<Result<Vec<_>, _>>()?;
        let messages: Vec<[u8; 32]> = votes.iter().map(|v| v.message).collect();
        if statement != batch_tree(PREPARE_BATCH_DOMAIN, &messages)?.0 {
            return Err("statement is not the batch statement of the proposed blocks".into());
        }
        let slots: Vec<_> = votes.iter().map(|v| v.slot()).collect();
        self.shared.votes.prepare_all(&slots).map_err(|e| e.to_string())
    }

    /// The hook of a batched forward-link round: every proposal passes the single commit hook's
    /// checks (a valid next block with a valid prepare certificate), the statement is the v3
    /// statement over their blocks, and then each lock is recorded durably.
    pub(super) fn check_commit_batch(&self, statement: &[u8], extra: &[u8]) -> Result<(), String> {
        let proposals = self.batch_of(COMMIT_BATCH_PURPOSE, extra)?;
        if self.byzantine() {
            return Ok(());
        }
        if self.shared.refuses_link_v2.load(std::sync::atomic::Ordering::SeqCst) {
            // Code from before v2 links predates batched rounds too.
            return Err(format!("{NO_HOOK} `{COMMIT_BATCH_PURPOSE}` on this node"));
        }
        if self.shared.links() < SkipchainLinks::V3 {
            // Its light clients check older links only: it neither stores nor serves v3 ones.
            return Err(NO_V3.into());
        }
        let mut entries = Vec::with_capacity(proposals.len());
        for p in &proposals {
            let block = self.certified_block(p)?;
            entries.push(ForwardLink::commit_message(&block.hash));
        }
        if statement != batch_tree(COMMIT_BATCH_DOMAIN, &entries)?.0 {
            return Err("statement is not the batch statement of the proposed blocks".into());
        }
        self.shared.votes.commit_all(&proposals.iter().collect::<Vec<_>>()).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Item(String, usize);
    impl Waiting for Item {
        fn chain(&self) -> &[u8] {
            self.0.as_bytes()
        }
        fn bytes(&self) -> usize {
            self.1
        }
    }
    fn item(chain: &str, bytes: usize) -> Item {
        Item(chain.to_string(), bytes)
    }
    fn chains(batch: Vec<Item>) -> Vec<String> {
        batch.into_iter().map(|i| i.0).collect()
    }

    #[test]
    fn a_line_starts_one_runner_and_batches_one_block_per_chain_within_its_bounds() {
        let q: Queue<Item> = Queue::default();
        let roster = [7; 32];
        assert!(q.push(roster, item("a", 10)), "the first append of an idle roster starts the runner");
        assert!(!q.push(roster, item("b", 10)), "a busy line has its runner");
        assert!(q.push([8; 32], item("a", 10)), "another roster has its own line");
        q.push(roster, item("a", 10));
        q.push(roster, item("c", 10));
        assert_eq!(chains(q.next(&roster)), ["a", "b"], "a second block of chain a waits for the next batch");
        assert_eq!(chains(q.next(&roster)), ["a", "c"]);
        assert!(q.next(&roster).is_empty());
        assert!(q.push(roster, item("d", 10)), "an emptied line is idle: the next append starts a runner");
        for i in 0..MAX_BATCH + 5 {
            q.push(roster, item(&format!("chain {i}"), 1));
        }
        assert_eq!(q.next(&roster).len(), MAX_BATCH, "at most MAX_BATCH appends per round");
        assert_eq!(q.next(&roster).len(), 6);
        assert!(q.next(&roster).is_empty());
        let big: Queue<Item> = Queue::default();
        big.push(roster, item("a", MAX_BATCH_BYTES));
        big.push(roster, item("b", 1));
        assert_eq!(chains(big.next(&roster)), ["a"], "the bytes bound holds, yet the first always goes");
        assert_eq!(chains(big.next(&roster)), ["b"]);
    }

    #[test]
    fn an_abandoned_line_lets_the_next_append_start_a_runner() {
        let q: Queue<Item> = Queue::default();
        let roster = [1; 32];
        assert!(q.push(roster, item("a", 1)));
        q.abandon(&roster);
        assert!(q.push(roster, item("b", 1)), "an ended runner's line must not look served");
    }
}
