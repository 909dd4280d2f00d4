//! Rolling upgrades: members that run code from before v2 forward links. Such a member refuses
//! the v2 statement (its hook expects a v1 one) and reads a v2 or v3 link as a v1 link (the
//! format is a field it does not know), so it cannot verify one and refuses a block that carries
//! one. When its refusal reaches the round in time, `sign_group` signs that roster's links level
//! by level in v1 instead. When it comes after the round has ended (a slow or distant member), or
//! the member missed such blocks, they are committed with v2 links it cannot store: when a push
//! to it is refused so, the proposer signs again in v1 the links of the block it names, hands it
//! over, and goes on with the next blocks it lacks (at most `RELINK_STEPS` per task), then with
//! the pushed block. The members that hold a block and run this code sign a v1 link to it again
//! (`relink_of_a_held_block`), so a threshold of them is needed. The member's own catch-up (at
//! start, for a client's read) still fails on v2 links until a proposer pushes it a block. Either
//! way the proposer signs that roster's links in v1 for a while (`LEGACY_LINKS_FOR`).

use super::*;

/// What a member answers when a block's forward link does not verify for it (the text of
/// [`ProofError::BadLink`], the same in the code from before v2 links): for a member given v2 or
/// v3 links that this proposer's round verified, the mark of code that reads them as v1.
const LINK_REFUSAL: &str = "forward link from block";
/// Blocks one relink task hands over before it leaves the rest to the offering loop (paced).
const RELINK_STEPS: usize = 64;

/// The index of the block whose incoming link a member refused, from its refusal ("forward link
/// from block A to block B: …"): the pushed block, or an earlier one it fetched to catch up.
fn refused_link_target(refusal: &NetError) -> Option<u64> {
    let NetError::Remote { message, .. } = refusal else { return None };
    let named = &message[message.find(LINK_REFUSAL)?..];
    let after = &named[named.find(" to block ")? + " to block ".len()..];
    after.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// Block `index` of `chain` when a link to it that this node holds is v2 or v3 (code from before
/// v2 cannot verify it), at any level.
fn held_with_newer_links(shared: &Shared, chain: &[u8], index: u64) -> Option<SkipBlock> {
    let st = &shared.store;
    let block = st.block_at(chain, index).filter(|b| b.index > 0)?;
    let newer = (0..block.height as usize).any(|level| {
        let src = block.index.checked_sub(level_distance(block.base_height, level)).and_then(|i| st.block_at(chain, i));
        src.and_then(|src| src.forward_links.get(level).cloned())
            .is_some_and(|link| link.to == block.hash && link.format != LINK_FORMAT_V1)
    });
    newer.then_some(block)
}

/// A member of a roster, with a chain: what the relinks are kept by.
type MemberChain = (IdentityPublicKey, Vec<u8>);

/// What a proposer keeps of the links it signed again in v1 for members running older code.
pub(super) struct Relinks {
    /// The last block whose links were signed again, and those links; held while they are
    /// signed, one block at a time.
    last: tokio::sync::Mutex<Option<(Vec<u8>, Vec<LevelLink>)>>,
    /// The (member, chain) pairs with a relink task running: one each.
    running: std::sync::Mutex<std::collections::HashSet<MemberChain>>,
    /// Per (member, chain): the highest block handed to that member with links signed again.
    handed_over: std::sync::Mutex<crate::kept::KeptMap<MemberChain, HandedOver>>,
}

/// (member, chain) pairs whose marks are kept: those marked least lately are forgotten first.
const MARKS_KEPT: usize = 1024;

impl Default for Relinks {
    fn default() -> Self {
        Self {
            last: Default::default(),
            running: Default::default(),
            handed_over: std::sync::Mutex::new(crate::kept::KeptMap::new(MARKS_KEPT)),
        }
    }
}

/// Per (member, chain): the highest block handed to that member with links signed again in v1,
/// and until when a refusal naming a block at or below it is not relinked again.
#[derive(Clone, Copy)]
struct HandedOver {
    index: u64,
    below_again_after: std::time::Instant,
}

/// Whether a refusal of `key`'s member naming block `target` may be relinked. An honest member
/// never names a block it holds, so one at or below what it was handed is relinked only when it
/// lost blocks (restored from an older backup) or lies: once per `LEGACY_LINKS_FOR`, starting
/// the mark again below `target`. A lying member gets a chain re-signed that often at most.
fn may_relink(relinks: &Relinks, key: &MemberChain, target: u64) -> bool {
    let mut marks = crate::sync::lock(&relinks.handed_over);
    marks.get_mut(key).is_none_or(|mark| mark.allows(target, std::time::Instant::now()))
}

/// Whether a refusal of `key`'s member naming block `target`, when block `pushed` was offered,
/// may start a relink task: not for a block above the pushed one, nor while a task relinks for
/// that member and chain (the offering loop brings the block again later, so such a refusal must
/// not use up the allowance of a block at or below the mark either), nor beyond
/// [`may_relink`]'s allowance.
fn may_start_relink(relinks: &Relinks, key: &MemberChain, target: u64, pushed: u64) -> bool {
    target <= pushed && !crate::sync::lock(&relinks.running).contains(key) && may_relink(relinks, key, target)
}

impl HandedOver {
    /// [`may_relink`] for this mark at `now`.
    fn allows(&mut self, target: u64, now: std::time::Instant) -> bool {
        if target > self.index {
            return true;
        }
        if now < self.below_again_after {
            return false;
        }
        *self = HandedOver { index: target.saturating_sub(1), below_again_after: now + LEGACY_LINKS_FOR };
        true
    }
}

/// Records that `key`'s member stored block `index` of its chain with links signed again in v1.
fn record_handed_over(relinks: &Relinks, key: MemberChain, index: u64) {
    let mut marks = crate::sync::lock(&relinks.handed_over);
    let mark = match marks.get(&key) {
        Some(mark) => HandedOver { index: mark.index.max(index), ..*mark },
        None => HandedOver { index, below_again_after: std::time::Instant::now() },
    };
    marks.renew(key, mark);
}

/// Who asks for a relink: the first push of a block (what is left to offer may start the
/// offering loop), or that loop (which must not start again once it gave up).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum AskedBy {
    Push,
    OfferLoop,
}

/// Removes a (member, chain) from the relinks in flight when its task ends, however it ends.
struct InFlight {
    shared: std::sync::Weak<Shared>,
    key: MemberChain,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            crate::sync::lock(&shared.relinks.running).remove(&self.key);
        }
    }
}

/// When `member` refused `payload` (a pushed block, `Store`) because the link to a block did not
/// verify for it (that block, or an earlier one it fetched to catch up), and a link to that block
/// held here is v2 or v3: in the background, hands it that block and the next ones it cannot
/// verify with their links signed again in v1, then `payload` again (see
/// [`SkipchainService::hand_over_relinked`]); what is left is offered later (`offer_later`). Not
/// for a block above the pushed one, nor, but rarely, one it was handed already (`may_relink`).
/// One such task per (member, chain). Whether it starts one (then the caller need not offer
/// `payload` again).
pub(super) fn relink_if_older(
    shared: &Arc<Shared>,
    member: &ServerIdentity,
    refusal: &NetError,
    payload: &[u8],
    asked_by: AskedBy,
) -> bool {
    let Some(target) = refused_link_target(refusal) else { return false };
    let Some(pushed) = LinkedBlock::decode(payload).ok().and_then(|item| item.block) else { return false };
    let chain = pushed.chain_id().to_vec();
    let key = (member.public, chain.clone());
    if !may_start_relink(&shared.relinks, &key, target, pushed.index) {
        return false;
    }
    let Some(block) = held_with_newer_links(shared, &chain, target) else { return false };
    if !crate::sync::lock(&shared.relinks.running).insert(key.clone()) {
        return false;
    }
    let (weak, member, payload) = (Arc::downgrade(shared), member.clone(), payload.to_vec());
    let in_flight = InFlight { shared: weak.clone(), key };
    shared.ctx.tasks.spawn(async move {
        let _in_flight = in_flight;
        let Some(shared) = weak.upgrade() else { return };
        let svc = SkipchainService { shared };
        if let Some((later, same_block)) = svc.hand_over_relinked(&member, block, pushed.index, payload).await {
            offer_later(&svc.shared, member, chain, pushed.index, later, same_block, asked_by == AskedBy::Push);
        }
    });
    true
}

/// `link` as code from before v2 links reads it: the fields that mark its format and batch are
/// unknown to that code, so it takes every link for a v1 one (fault injection: see
/// [`SkipchainService::set_refuses_link_v2`]).
pub(super) fn as_read_before_v2(link: ForwardLink) -> ForwardLink {
    ForwardLink { format: LINK_FORMAT_V1, batch_path: Vec::new(), batch_index: 0, batch_size: 0, ..link }
}

impl SkipchainService {
    /// From now on, for `LEGACY_LINKS_FOR`, this proposer signs the links from blocks of the
    /// roster `roster_id` level by level in v1: some of its members run code from before v2.
    pub(super) fn sign_v1_for_a_while(&self, roster_id: [u8; 32]) {
        self.shared.legacy_links.mark(roster_id);
    }

    /// Hands `target` to `member` with its links signed again in v1, then, while the member
    /// advances, the blocks after it whose links it cannot verify either (at most
    /// `RELINK_STEPS`), then `payload` (block `pushed_index`) again, relinking the next block the
    /// member names. Each step brings the member further along the chain, up to `pushed_index`,
    /// so it ends. Returns what is left to offer later, if anything: the payload and whether it is
    /// block `pushed_index` with links signed again (it then replaces a pending offer of that
    /// block).
    async fn hand_over_relinked(
        &self,
        member: &ServerIdentity,
        mut target: SkipBlock,
        pushed_index: u64,
        payload: Vec<u8>,
    ) -> Option<(Vec<u8>, bool)> {
        let s = &self.shared;
        let key = (member.public, target.genesis_id.clone());
        let store = |bytes: Vec<u8>| s.network.request(member, SKIPCHAIN_SERVICE, "Store", &[], bytes, PEER_TIMEOUT);
        for _ in 0..RELINK_STEPS {
            let relinked = match self.relink_for_older_member(member, &target).await {
                Ok(relinked) => relinked,
                Err(e) => {
                    warn!(
                        chain = %hex8(&target.genesis_id),
                        index = target.index,
                        peer = %member.address,
                        error = %e,
                        "could not sign a block's links again in v1 for a member running older code"
                    );
                    return Some((payload, false));
                }
            };
            match store(relinked.clone()).await {
                Ok(_) => record_handed_over(&s.relinks, key.clone(), target.index),
                Err(e) => {
                    debug!(peer = %member.address, error = %e, "older member did not store the block with v1 links yet");
                    let same_block = target.index == pushed_index;
                    return Some(if same_block { (relinked, true) } else { (payload, false) });
                }
            }
            if target.index >= pushed_index {
                return None;
            }
            // It holds `target` now. The next block, when it cannot verify its links either,
            // goes to it the same way (no catch-up of its own, which would fail on it).
            if let Some(next) = held_with_newer_links(s, &target.genesis_id, target.index + 1) {
                target = next;
                continue;
            }
            let next = match store(payload.clone()).await {
                Ok(_) => return None,
                Err(e) => refused_link_target(&e)
                    .filter(|&t| t > target.index && t <= pushed_index)
                    .and_then(|t| held_with_newer_links(s, &target.genesis_id, t)),
            };
            match next {
                Some(next) => target = next,
                None => return Some((payload, false)),
            }
        }
        Some((payload, false))
    }

    /// `member` refused `block` (committed, stored here) because it cannot verify the block's
    /// v2 or v3 links: from now on this proposer signs the links from blocks of the block's source
    /// rosters in v1 for a while, and here it signs the block's links again in v1, one round per
    /// level. The rounds carry the proposal this node locked on when it signed the block's links,
    /// if it did: an older member that lacks the block checks its prepare certificate (not the
    /// batch certificate of a v3 block, which its code cannot check). Without them, the members
    /// that hold the block (`relink_of_a_held_block`) make the threshold alone. Returns the block
    /// with those links, as a `Store` payload. One block at a time: the last block's links serve
    /// every older member.
    pub(super) async fn relink_for_older_member(
        &self,
        member: &ServerIdentity,
        block: &SkipBlock,
    ) -> Result<Vec<u8>, SkipchainError> {
        let s = &self.shared;
        let mut sources = Vec::with_capacity(block.height as usize);
        for level in 0..block.height as usize {
            let src_index = block.index - level_distance(block.base_height, level);
            let src = s
                .store
                .block_at(&block.genesis_id, src_index)
                .ok_or_else(|| SkipchainError::Invalid(format!("missing block {src_index}")))?;
            if let Some(r) = src.roster.as_ref() {
                self.sign_v1_for_a_while(r.id());
            }
            sources.push(src);
        }
        let mut last = s.relinks.last.lock().await;
        let incoming = match last.as_ref().filter(|(hash, _)| *hash == block.hash) {
            Some((_, incoming)) => incoming.clone(),
            None => {
                // This node locked on the block if it signed its links (its own hook, as their
                // proposer); one that got the block otherwise (pushed, or late in the round)
                // proposes the block alone, which only the members holding it sign.
                let locked = s.votes.state(&block.genesis_id, block.index).ok().and_then(|st| st.locked);
                let agreed = locked
                    .filter(|p| p.block.as_ref().is_some_and(|b| b.hash == block.hash))
                    .unwrap_or_else(|| Proposal { block: Some(block.clone()), ..Default::default() });
                info!(
                    chain = %hex8(&block.genesis_id),
                    index = block.index,
                    peer = %member.address,
                    "a member cannot verify the block's links (older code): signing them again in v1 for it"
                );
                let rounds = sources.iter().enumerate().map(|(level, src)| {
                    let proposal = Proposal { level: level as u32, ..agreed.clone() };
                    self.sign_link(src, block, proposal)
                });
                let links = futures_util::future::join_all(rounds).await.into_iter().collect::<Result<Vec<_>, _>>()?;
                let incoming: Vec<LevelLink> = links
                    .into_iter()
                    .enumerate()
                    .map(|(level, link)| LevelLink { level: level as u32, link: Some(link) })
                    .collect();
                s.observed.signed_links_again();
                *last = Some((block.hash.clone(), incoming.clone()));
                incoming
            }
        };
        Ok(LinkedBlock { block: Some(block.clone()), incoming }.encode_to_vec())
    }

    /// The v1 statement of the link at `level` to `block` (the next block here, or one this node
    /// holds), from the block this node holds at that level's source index.
    pub(super) fn v1_link_statement(&self, block: &SkipBlock, level: usize) -> Result<[u8; 32], String> {
        if level >= block.height as usize {
            return Err("level above the block's height".into());
        }
        let src = self
            .shared
            .store
            .block_at(&block.genesis_id, block.index - level_distance(block.base_height, level))
            .ok_or("missing source block")?;
        if block.back_link_ids.get(level) != Some(&src.hash) {
            return Err(format!("back link {level} is wrong"));
        }
        let new_roster = block.roster.as_ref().ok_or("no roster")?;
        let src_roster = src.roster.as_ref().ok_or("source without roster")?;
        let new_id = (src_roster.id() != new_roster.id()).then(|| new_roster.id());
        Ok(ForwardLink::message(&src.hash, &block.hash, new_id.as_ref().map(|r| r.as_slice())))
    }

    /// Whether `p` asks this node to sign again a link to a block it already holds, as
    /// `relink_for_older_member` does (any statement but the block's v2 one, which is refused as
    /// before): `Some(verdict)` then, `Ok` for the v1 statement of the link at `p.level`. Such a
    /// signature endorses no new block (the block's index is committed to it here), so no vote
    /// is recorded for it.
    pub(super) fn relink_of_a_held_block(&self, p: &Proposal, statement: &[u8]) -> Option<Result<(), String>> {
        let block = p.block.as_ref().filter(|b| b.index > 0)?;
        // Code from before v2 links (as simulated) has no such rule: it refuses as for any block
        // that is not its next one.
        if statement == ForwardLink::commit_message(&block.hash)
            || self.shared.refuses_link_v2.load(std::sync::atomic::Ordering::SeqCst)
        {
            return None;
        }
        let held = self.shared.store.block_at(&block.genesis_id, block.index).filter(|h| h.hash == block.hash)?;
        Some(self.fence_gate(&block.genesis_id).and_then(|()| {
            if statement == self.v1_link_statement(&held, p.level as usize)? {
                Ok(())
            } else {
                Err(NOT_THE_LINK.into())
            }
        }))
    }

    /// Blocks whose forward links this proposer signed again in v1 for members that could not
    /// verify them (`conode_skipchain_links_signed_again_total`; see `relink_for_older_member`).
    pub fn links_signed_again(&self) -> u64 {
        self.shared.observed.links_signed_again()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_link_names_its_target_block_as_older_members_do() {
        let remote = |message: String| NetError::Remote { peer: "tls://a:1".into(), message };
        let e = ProofError::BadLink { from: 4, to: 5, reason: "the signature does not verify".into() };
        assert_eq!(refused_link_target(&remote(SkipchainError::from(e).to_string())), Some(5));
        // As a member's Store handler passes on the error of a catch-up (an earlier block).
        let caught_up = "invalid: forward link from block 11 to block 12: collective signature does not verify";
        assert_eq!(refused_link_target(&remote(caught_up.into())), Some(12));
        assert_eq!(refused_link_target(&remote("this node is behind: it holds block 3, needs 5".into())), None);
        assert_eq!(refused_link_target(&remote("forward link from block 1 to block x".into())), None);
        let timeout = NetError::Timeout {
            peer: "tls://a:1".into(),
            what: "Store".into(),
            after: std::time::Duration::from_secs(1),
        };
        assert_eq!(refused_link_target(&timeout), None);
    }

    #[test]
    fn a_block_already_handed_over_is_relinked_again_once_per_period() {
        let now = std::time::Instant::now();
        let mut mark = HandedOver { index: 5, below_again_after: now };
        assert!(mark.allows(6, now), "a block above the mark");
        assert!(mark.allows(3, now), "the first one at or below it (the member lost blocks)");
        assert_eq!(mark.index, 2);
        assert!(!mark.allows(2, now), "again within the period");
        assert!(mark.allows(3, now), "above the mark started again");
        assert!(mark.allows(1, now + LEGACY_LINKS_FOR), "after the period");
    }

    #[test]
    fn a_refusal_while_a_relink_runs_starts_none_and_keeps_the_allowance() {
        let relinks = Relinks::default();
        let key: MemberChain = (crate::crypto::IdentityKeyPair::generate().public(), vec![7; 32]);
        assert!(may_start_relink(&relinks, &key, 3, 5), "no mark, no task");
        assert!(!may_start_relink(&relinks, &key, 6, 5), "never a block above the pushed one");
        // Blocks up to 4 were handed over (a fresh mark allows one relink at or below it at once).
        record_handed_over(&relinks, key.clone(), 4);
        crate::sync::lock(&relinks.running).insert(key.clone());
        for _ in 0..3 {
            assert!(!may_start_relink(&relinks, &key, 2, 5), "a task runs for this member and chain");
        }
        let other: MemberChain = (key.0, vec![8; 32]);
        assert!(may_start_relink(&relinks, &other, 2, 5), "another chain of the member is its own");
        // The task ended: the refusals while it ran left the once-per-period allowance unused.
        crate::sync::lock(&relinks.running).remove(&key);
        assert!(may_start_relink(&relinks, &key, 2, 5), "the allowance of a block at or below the mark");
        assert!(!may_start_relink(&relinks, &key, 1, 5), "used up for this period");
        assert!(may_start_relink(&relinks, &key, 5, 5), "a block above the mark needs none");
    }

    /// A running node's skipchain service and another member of its roster. Nothing is sent to
    /// the member: offers to a pending entry, and offers that may not start a loop, only touch
    /// `Shared::redelivering`.
    #[cfg(feature = "cluster")]
    fn service_and_member() -> (crate::cluster::LocalCluster, SkipchainService, ServerIdentity) {
        let c = crate::cluster::LocalCluster::new(2).expect("a 2-node cluster");
        let svc = c.node(0).skipchain().expect("skipchain service");
        let member = c.roster().servers[1].clone();
        (c, svc, member)
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn a_pending_offer_is_replaced_by_a_newer_block_or_by_the_same_block_relinked_only() {
        let (_c, svc, member) = service_and_member();
        let chain = vec![7; 32];
        let key = (member.public, chain.clone());
        let pending = || crate::sync::lock(&svc.shared.redelivering).get(&key).cloned();
        // A loop offers block 5 as committed (v2 links); none runs here, the entry stands for it.
        crate::sync::lock(&svc.shared.redelivering).insert(key.clone(), (5, b"v2 block 5".to_vec()));
        let offer = |index: u64, payload: &[u8], same_block: bool| {
            offer_later(&svc.shared, member.clone(), chain.clone(), index, payload.to_vec(), same_block, true)
        };
        offer(4, b"v2 block 4", false);
        offer(4, b"v1 block 4", true);
        assert_eq!(pending(), Some((5, b"v2 block 5".to_vec())), "an older block never replaces a newer one");
        offer(5, b"v2 block 5 again", false);
        assert_eq!(pending(), Some((5, b"v2 block 5".to_vec())), "the same block as it was: kept");
        offer(5, b"v1 block 5", true);
        assert_eq!(pending(), Some((5, b"v1 block 5".to_vec())), "the same block relinked replaces it");
        offer(5, b"v2 block 5", false);
        assert_eq!(pending(), Some((5, b"v1 block 5".to_vec())), "a relinked block is not undone");
        offer(6, b"v2 block 6", false);
        assert_eq!(pending(), Some((6, b"v2 block 6".to_vec())), "the chain moved on");
    }

    #[cfg(feature = "cluster")]
    #[test]
    fn what_a_relink_leaves_never_restarts_an_offering_loop_that_ended() {
        let (c, svc, member) = service_and_member();
        let _rt = c.runtime().enter();
        let chain = vec![7; 32];
        let key = (member.public, chain.clone());
        let pending = || crate::sync::lock(&svc.shared.redelivering).get(&key).cloned();
        // The loop that asked for the relink ended (the member stored the block, or the loop gave
        // up after REDELIVER_FOR): what the relink task leaves starts no new loop.
        offer_later(&svc.shared, member.clone(), chain.clone(), 5, b"v2 block 5".to_vec(), false, false);
        offer_later(&svc.shared, member.clone(), chain.clone(), 5, b"v1 block 5".to_vec(), true, false);
        assert_eq!(pending(), None, "a loop that ended stays stopped");
        // While the loop still runs, the same leftover goes on in it.
        crate::sync::lock(&svc.shared.redelivering).insert(key.clone(), (5, b"v2 block 5".to_vec()));
        offer_later(&svc.shared, member.clone(), chain.clone(), 5, b"v1 block 5".to_vec(), true, false);
        assert_eq!(pending(), Some((5, b"v1 block 5".to_vec())));
    }

    #[test]
    fn older_code_reads_every_link_as_v1() {
        let link = ForwardLink { format: LINK_FORMAT_V2, from: vec![1], to: vec![2], ..Default::default() };
        let read = as_read_before_v2(link.clone());
        assert_eq!(read.format, LINK_FORMAT_V1);
        assert_eq!((read.from, read.to), (link.from, link.to));
    }
}
