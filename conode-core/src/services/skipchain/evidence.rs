//! Equivocation evidence, kept against the members that provably signed two conflicting things:
//! - two valid forward links from one block at one level to different blocks (with at most f faulty
//!   members this cannot happen, see the module doc; if it does, every member in both collective
//!   signatures' masks signed both);
//! - two prepare signatures for one (chain, index, view) of different blocks: an honest member
//!   prepares one block per view, so a single Byzantine member is caught even when only one of the
//!   blocks got a certificate. The proposer collects the signatures it sees (its failed views'
//!   sub-threshold aggregates, the certificates and the members' own signatures in slot replies).
//!
//! Proofs of possession make an aggregate attributable: a valid aggregate for a mask means every
//! member of the mask signed. Each record is logged, announced as an event, and counted per member
//! for `/status` and `/metrics`.

use super::messages::{certified_statement, Equivocation, PrepareCertificate, PrepareEquivocation};
use crate::config::Roster;
use crate::crypto::{BlsPublicKey, IdentityPublicKey};
use crate::storage::{ServiceTree, Storage, StorageError};
use crate::verify::cosi::Mask;
use crate::verify::cosi::Policy;
use crate::verify::skipchain::{verify_link, ForwardLink, SkipBlock};
use prost::Message;
use std::collections::BTreeMap;
use tracing::warn;

/// The evidence a node holds (cheap to clone).
#[derive(Clone)]
pub struct EvidenceLog {
    tree: ServiceTree,
    /// Where `Equivocation` events go, when set.
    events: Option<crate::events::EventBus>,
}

impl EvidenceLog {
    pub fn open(storage: &Storage) -> Result<Self, StorageError> {
        Ok(Self { tree: storage.tree("skipchain.evidence")?, events: None })
    }

    /// Announces every member accused from now on as a `NodeEvent::Equivocation` on `bus`.
    pub fn with_events(mut self, bus: crate::events::EventBus) -> Self {
        self.events = Some(bus);
        self
    }

    /// `src` (at `level`, index `src.index` of chain `genesis`) has two forward links to different
    /// blocks of one index: `ours` to the block this node holds, `theirs` to another. When both
    /// verify (in either link format: a v2 link's signature covers its target alone, so two
    /// valid ones from one roster to two blocks of one index are an equivocation just the same),
    /// records them against the members in both masks (`roster`: `src`'s, checked) and returns
    /// those; otherwise records nothing.
    pub fn record_conflict(
        &self,
        genesis: &[u8],
        src: &SkipBlock,
        level: u32,
        roster: &Roster,
        ours: (&SkipBlock, &ForwardLink),
        theirs: (&SkipBlock, &ForwardLink),
    ) -> Vec<IdentityPublicKey> {
        if ours.0.hash == theirs.0.hash
            || ours.0.index != theirs.0.index
            || verify_link(src, theirs.0, theirs.1, Policy::Default).is_err()
            || verify_link(src, ours.0, ours.1, Policy::Default).is_err()
        {
            return Vec::new();
        }
        self.record(genesis, src.index, level, roster, ours.1, theirs.1)
    }

    /// Records `first` and `second` (both verified against `roster`, the source block's roster)
    /// against every member in both masks. Returns the accused members.
    pub fn record(
        &self,
        genesis: &[u8],
        index: u64,
        level: u32,
        roster: &Roster,
        first: &ForwardLink,
        second: &ForwardLink,
    ) -> Vec<IdentityPublicKey> {
        let signers = |l: &ForwardLink| {
            l.signature
                .as_ref()
                .and_then(|s| Mask::from_bytes(roster.len(), &s.mask).ok())
                .map(|m| m.indices())
                .unwrap_or_default()
        };
        let (a, b) = (signers(first), signers(second));
        let accused: Vec<IdentityPublicKey> =
            a.iter().filter(|i| b.contains(i)).filter_map(|&i| roster.servers.get(i)).map(|m| m.public).collect();
        for member in &accused {
            let record = Equivocation {
                genesis: genesis.to_vec(),
                index,
                level,
                first: Some(first.clone()),
                second: Some(second.clone()),
                member: member.as_bytes().to_vec(),
            };
            let mut key = member.as_bytes().to_vec();
            key.extend_from_slice(&crate::crypto::sha256(&[&record.encode_to_vec()]));
            if let Err(e) = self.tree.put(&key, &record.encode_to_vec()) {
                warn!(error = %e, "cannot store equivocation evidence");
            }
            warn!(
                member = %member,
                chain = %hex::encode(&genesis[..genesis.len().min(8)]),
                index,
                level,
                "EQUIVOCATION: this member signed two forward links from one block at one level"
            );
            if let Some(bus) = &self.events {
                bus.emit(crate::events::NodeEvent::Equivocation {
                    chain: genesis.to_vec(),
                    index,
                    level,
                    member: *member,
                });
            }
        }
        accused
    }

    /// Compares the prepare signatures seen for one slot (`index` of chain `genesis`), each a
    /// certificate-shaped record of (view, block hash, aggregate, mask) that may be below the
    /// threshold or signed by one member. Every pair of the same view and different blocks whose
    /// signatures both verify (against `keys`, the cosi keys of `roster`, the previous block's
    /// roster) is kept against each member in both masks. Returns the members newly accused.
    pub fn record_prepares(
        &self,
        (genesis, index, roster_id): (&[u8], u64, &[u8; 32]),
        roster: &Roster,
        keys: &[BlsPublicKey],
        seen: &[PrepareCertificate],
    ) -> Vec<IdentityPublicKey> {
        let signers = |c: &PrepareCertificate| -> Option<Vec<usize>> {
            let sig = c.signature.as_ref()?;
            let msg = certified_statement(genesis, index, roster_id, c).ok()?;
            crate::verify::cosi::verify(
                &msg,
                &sig.signature,
                &sig.mask,
                keys,
                crate::verify::cosi::Policy::Threshold(1),
            )
            .ok()?;
            Some(Mask::from_bytes(roster.len(), &sig.mask).ok()?.indices())
        };
        let checked: Vec<(&PrepareCertificate, Vec<usize>)> =
            seen.iter().filter_map(|c| Some((c, signers(c)?))).collect();
        let mut accused = Vec::new();
        for (i, (a, a_signers)) in checked.iter().enumerate() {
            for (b, b_signers) in &checked[i + 1..] {
                if a.view != b.view || a.block_hash == b.block_hash {
                    continue;
                }
                for &m in a_signers.iter().filter(|m| b_signers.contains(m)) {
                    let Some(member) = roster.servers.get(m).map(|s| s.public) else { continue };
                    if self.keep_prepare(genesis, index, a, b, &member) {
                        accused.push(member);
                    }
                }
            }
        }
        accused
    }

    /// Stores one prepare record against `member` (one per member and slot view); false when it
    /// was already held.
    fn keep_prepare(
        &self,
        genesis: &[u8],
        index: u64,
        first: &PrepareCertificate,
        second: &PrepareCertificate,
        member: &IdentityPublicKey,
    ) -> bool {
        let mut key = member.as_bytes().to_vec();
        key.extend_from_slice(&crate::crypto::sha256(&[
            b"prepare",
            genesis,
            &index.to_be_bytes(),
            &first.view.to_be_bytes(),
        ]));
        if matches!(self.tree.get(&key), Ok(Some(_))) {
            return false;
        }
        let record = PrepareEquivocation {
            genesis: genesis.to_vec(),
            index,
            view: first.view,
            first: Some(first.clone()),
            second: Some(second.clone()),
            member: member.as_bytes().to_vec(),
        };
        if let Err(e) = self.tree.put(&key, &record.encode_to_vec()) {
            warn!(error = %e, "cannot store equivocation evidence");
        }
        warn!(
            member = %member,
            chain = %hex::encode(&genesis[..genesis.len().min(8)]),
            index,
            view = first.view,
            "EQUIVOCATION: this member prepared two different blocks for one index in one view"
        );
        if let Some(bus) = &self.events {
            bus.emit(crate::events::NodeEvent::PrepareEquivocation {
                chain: genesis.to_vec(),
                index,
                view: first.view,
                member: *member,
            });
        }
        true
    }

    /// Evidence records per member (hex key).
    pub fn counts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for (k, _) in self.tree.scan_prefix(&[]) {
            if let Ok(key) = IdentityPublicKey::from_bytes(&k[..k.len().min(32)]) {
                *out.entry(key.to_hex()).or_insert(0) += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NodeAddress, NodeConfig};
    use crate::crypto::BlsSignature;
    use crate::wire::skipchain::CollectiveSignature;

    struct Setup {
        _dir: tempfile::TempDir,
        log: EvidenceLog,
        configs: Vec<NodeConfig>,
        roster: Roster,
        keys: Vec<BlsPublicKey>,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path(), "evidence-test").unwrap();
        let configs: Vec<NodeConfig> = (0..4)
            .map(|i| {
                let addr = NodeAddress::parse(&format!("tls://127.0.0.1:{}", 7000 + 2 * i)).unwrap();
                NodeConfig::generate(addr, "t")
            })
            .collect();
        let roster = Roster::new(configs.iter().map(|c| c.server_identity()).collect());
        let keys = configs.iter().map(|c| c.cosi_key().unwrap().public()).collect();
        Setup { _dir: dir, log: EvidenceLog::open(&storage).unwrap(), configs, roster, keys }
    }

    /// What `signers` signed for `hash` in `view` of slot 1, aggregated, as a certificate-shaped record.
    fn signed(s: &Setup, view: u64, hash: &[u8], signers: &[usize]) -> PrepareCertificate {
        let msg = crate::services::skipchain::messages::prepare_message(b"chain", 1, view, hash);
        let sigs: Vec<BlsSignature> = signers.iter().map(|&i| s.configs[i].cosi_key().unwrap().sign(&msg)).collect();
        let sig = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
        let mut mask = Mask::new(4);
        signers.iter().for_each(|&i| mask.set(i));
        PrepareCertificate {
            view,
            block_hash: hash.to_vec(),
            signature: Some(CollectiveSignature { signature: sig.to_bytes().to_vec(), mask: mask.into_bytes() }),
            ..Default::default()
        }
    }

    #[test]
    fn a_member_in_two_prepares_of_one_view_is_accused_once_and_no_one_else() {
        let s = setup();
        let certificate = signed(&s, 1, b"A", &[0, 1, 3]);
        let failed_view = signed(&s, 1, b"B", &[2, 3]);
        let accused = s.log.record_prepares(
            (b"chain", 1, &[0; 32]),
            &s.roster,
            &s.keys,
            &[certificate.clone(), failed_view.clone()],
        );
        assert_eq!(accused, vec![s.roster.servers[3].public]);
        // The same slot view again (e.g. the next failed view's comparison): no second record.
        let own = signed(&s, 1, b"B", &[3]);
        assert!(s
            .log
            .record_prepares((b"chain", 1, &[0; 32]), &s.roster, &s.keys, &[certificate, failed_view, own])
            .is_empty());
        assert_eq!(s.log.counts().into_iter().collect::<Vec<_>>(), vec![(s.roster.servers[3].public.to_hex(), 1)]);
    }

    #[test]
    fn two_valid_v2_links_to_two_blocks_of_one_index_are_an_equivocation() {
        use crate::verify::skipchain::{LINK_FORMAT_V1, LINK_FORMAT_V2};
        let s = setup();
        let roster = crate::services::skipchain::block_roster(&s.roster).unwrap();
        let mut genesis = SkipBlock { base_height: 2, roster: Some(roster.clone()), ..Default::default() };
        genesis.hash = genesis.compute_hash().to_vec();
        let block = |data: &[u8]| {
            let mut b = SkipBlock {
                index: 1,
                height: 1,
                base_height: 2,
                back_link_ids: vec![genesis.hash.clone()],
                genesis_id: genesis.hash.clone(),
                data: data.to_vec(),
                roster: Some(roster.clone()),
                ..Default::default()
            };
            b.hash = b.compute_hash().to_vec();
            b
        };
        let (a, b) = (block(b"A"), block(b"B"));
        let link = |to: &SkipBlock, signers: &[usize], format: u32| {
            let msg = match format {
                LINK_FORMAT_V1 => ForwardLink::message(&genesis.hash, &to.hash, None),
                _ => ForwardLink::commit_message(&to.hash),
            };
            let sigs: Vec<BlsSignature> =
                signers.iter().map(|&i| s.configs[i].cosi_key().unwrap().sign(&msg)).collect();
            let sig = BlsSignature::aggregate(&sigs.iter().collect::<Vec<_>>()).unwrap();
            ForwardLink {
                from: genesis.hash.clone(),
                to: to.hash.clone(),
                new_roster: None,
                signature: Some(CollectiveSignature {
                    signature: sig.to_bytes().to_vec(),
                    mask: Mask::from_indices(4, signers.iter().copied()).into_bytes(),
                }),
                format,
                ..Default::default()
            }
        };
        let g = genesis.hash.clone();
        // An invalid one (a v1 signature labelled v2) accuses no one.
        let (ours, mut forged) = (link(&a, &[0, 1, 3], LINK_FORMAT_V2), link(&b, &[1, 2, 3], LINK_FORMAT_V1));
        forged.format = LINK_FORMAT_V2;
        assert!(s.log.record_conflict(&g, &genesis, 0, &s.roster, (&a, &ours), (&b, &forged)).is_empty());
        // Nor does the same block twice.
        assert!(s.log.record_conflict(&g, &genesis, 0, &s.roster, (&a, &ours), (&a, &ours)).is_empty());
        // Two valid v2 links to two blocks at index 1: members 1 and 3 signed both.
        let theirs = link(&b, &[1, 2, 3], LINK_FORMAT_V2);
        let accused = s.log.record_conflict(&g, &genesis, 0, &s.roster, (&a, &ours), (&b, &theirs));
        assert_eq!(accused, vec![s.roster.servers[1].public, s.roster.servers[3].public]);
        // A v1 and a v2 link to different blocks: an equivocation as well.
        let old = link(&b, &[0, 2, 3], LINK_FORMAT_V1);
        let accused = s.log.record_conflict(&g, &genesis, 0, &s.roster, (&a, &ours), (&b, &old));
        assert_eq!(accused, vec![s.roster.servers[0].public, s.roster.servers[3].public]);
        assert_eq!(s.log.counts().len(), 3);
    }

    #[test]
    fn other_views_and_unverifiable_signatures_accuse_no_one() {
        let s = setup();
        // Moving to another block in a later view is what honest members do.
        let view1 = signed(&s, 1, b"A", &[0, 1, 2]);
        let view2 = signed(&s, 2, b"B", &[0, 1, 2]);
        assert!(s.log.record_prepares((b"chain", 1, &[0; 32]), &s.roster, &s.keys, &[view1.clone(), view2]).is_empty());
        // A mask that claims member 0 signed B, with a signature that is not its: ignored.
        let mut forged = signed(&s, 1, b"B", &[2]);
        forged.signature.as_mut().unwrap().mask = signed(&s, 1, b"B", &[0, 2]).signature.unwrap().mask;
        assert!(s
            .log
            .record_prepares((b"chain", 1, &[0; 32]), &s.roster, &s.keys, &[view1.clone(), forged])
            .is_empty());
        // Garbage bytes as a signature: ignored.
        let mut garbage = signed(&s, 1, b"B", &[0]);
        garbage.signature.as_mut().unwrap().signature = vec![7; 96];
        assert!(s.log.record_prepares((b"chain", 1, &[0; 32]), &s.roster, &s.keys, &[view1, garbage]).is_empty());
        assert!(s.log.counts().is_empty());
    }
}
