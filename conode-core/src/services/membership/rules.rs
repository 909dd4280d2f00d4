//! The governance rules, pure (no I/O): who may propose and vote, when a proposal passes or can no
//! longer pass, what each action does to the network config and roster, and the check every
//! member of the outgoing roster runs before it cosigns a network-chain block.

use super::messages::*;
use crate::config::{Roster, COSI_SERVICE};
use crate::crypto::IdentityPublicKey;
use crate::services::skipchain::block_roster;
use crate::verify::skipchain::{BlockRoster, SkipBlock};
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;

/// Largest `node_data` JSON accepted.
pub const MAX_NODE_DATA: usize = 4096;
/// Most separate governance members a network may have (bounds every config and tally).
pub const MAX_MEMBERS: usize = 256;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RuleError {
    #[error("{0} is not a governance member of this network")]
    NotMember(String),
    #[error("the signature of {0} does not verify")]
    BadSignature(String),
    #[error("proposal {0} is for another network")]
    OtherNetwork(String),
    #[error("member {member} already voted on proposal {proposal}")]
    DuplicateBallot { member: String, proposal: String },
    #[error("invalid proposal: {0}")]
    Invalid(String),
    #[error("block {index} of the network chain is not valid: {reason}")]
    BadBlock { index: u64, reason: String },
}

fn short(k: &[u8]) -> String {
    hex::encode(&k[..k.len().min(8)])
}

/// Decodes the network config of a network-chain block (`None`: not a network chain).
pub fn config_of(block: &SkipBlock) -> Option<NetworkConfig> {
    NetworkConfig::decode(block.data.as_slice()).ok().filter(|c| c.kind == NETWORK_KIND)
}

/// Yes votes a proposal needs under `cfg`: its threshold (capped at the members), by default more
/// than two thirds of the members.
pub fn needed(cfg: &NetworkConfig) -> u32 {
    let m = cfg.members.len() as u32;
    if cfg.threshold == 0 {
        (2 * m) / 3 + 1
    } else {
        cfg.threshold.min(m)
    }
}

/// The genesis config of a network of `roster`. `members` empty: the governance members are the
/// roster's identity keys and follow the roster; otherwise they are these separate Ed25519 keys
/// (as CCF's consortium), which roster changes never change.
pub fn genesis_config(roster: &Roster, threshold: u32, members: &[Vec<u8>]) -> Result<NetworkConfig, RuleError> {
    if roster.is_empty() {
        return Err(RuleError::Invalid("the roster is empty".into()));
    }
    let follow = members.is_empty();
    let members: Vec<Vec<u8>> = if follow {
        roster.servers.iter().map(|s| s.public.as_bytes().to_vec()).collect()
    } else {
        if members.len() > MAX_MEMBERS {
            return Err(RuleError::Invalid(format!("{} members, at most {MAX_MEMBERS}", members.len())));
        }
        for (i, m) in members.iter().enumerate() {
            check_member_key(m).map_err(|e| RuleError::Invalid(format!("members[{i}]: {e}")))?;
            if members[..i].contains(m) {
                return Err(RuleError::Invalid(format!("members[{i}]: member {} is listed twice", short(m))));
            }
        }
        members.to_vec()
    };
    if threshold as usize > members.len() {
        return Err(RuleError::Invalid(format!("threshold {threshold} is above the {} members", members.len())));
    }
    Ok(NetworkConfig {
        kind: NETWORK_KIND.into(),
        members,
        members_follow_roster: follow,
        threshold,
        node_data: vec![],
        passed: None,
    })
}

/// Checks that `key` is an Ed25519 public key usable as a governance member.
pub fn check_member_key(key: &[u8]) -> Result<(), String> {
    IdentityPublicKey::from_bytes(key).map(|_| ()).map_err(|e| format!("not an Ed25519 public key: {e}"))
}

/// Checks a proposal's signature and proposer against `cfg`; returns its id.
pub fn check_proposal(network: &[u8], cfg: &NetworkConfig, p: &Proposal) -> Result<[u8; 32], RuleError> {
    let id = proposal_id(p);
    if p.network != network {
        return Err(RuleError::OtherNetwork(short(&id)));
    }
    if !cfg.members.iter().any(|m| m == &p.proposer) {
        return Err(RuleError::NotMember(short(&p.proposer)));
    }
    let key = IdentityPublicKey::from_bytes(&p.proposer).map_err(|_| RuleError::NotMember(short(&p.proposer)))?;
    key.verify(&id, &p.signature).map_err(|_| RuleError::BadSignature(short(&p.proposer)))?;
    if p.action.as_ref().and_then(|a| a.kind.as_ref()).is_none() {
        return Err(RuleError::Invalid("no action".into()));
    }
    Ok(id)
}

/// Checks a ballot's member and signature against `cfg`.
pub fn check_ballot(network: &[u8], cfg: &NetworkConfig, b: &Ballot) -> Result<(), RuleError> {
    if !cfg.members.iter().any(|m| m == &b.member) {
        return Err(RuleError::NotMember(short(&b.member)));
    }
    let key = IdentityPublicKey::from_bytes(&b.member).map_err(|_| RuleError::NotMember(short(&b.member)))?;
    key.verify(&ballot_message(network, &b.proposal_id, b.approve), &b.signature)
        .map_err(|_| RuleError::BadSignature(short(&b.member)))
}

/// Where a proposal stands under `cfg` with `ballots` (checked, one per member).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    Open {
        yes: u32,
        no: u32,
    },
    Passed {
        yes: u32,
        no: u32,
    },
    /// So many members voted no that the threshold cannot be reached any more.
    Rejected {
        yes: u32,
        no: u32,
    },
}

pub fn tally<'a>(cfg: &NetworkConfig, ballots: impl IntoIterator<Item = &'a Ballot>) -> Tally {
    let mut votes: BTreeMap<&[u8], bool> = BTreeMap::new();
    for b in ballots {
        if cfg.members.iter().any(|m| m == &b.member) {
            votes.entry(b.member.as_slice()).or_insert(b.approve);
        }
    }
    let yes = votes.values().filter(|v| **v).count() as u32;
    let no = votes.len() as u32 - yes;
    let need = needed(cfg);
    let m = cfg.members.len() as u32;
    if yes >= need {
        Tally::Passed { yes, no }
    } else if m - no < need {
        Tally::Rejected { yes, no }
    } else {
        Tally::Open { yes, no }
    }
}

/// The yes ballots that pass a proposal, as a block carries them: one per member, sorted by
/// member key, exactly as many as needed (so every member that appends builds the same block).
pub fn passing_ballots(cfg: &NetworkConfig, ballots: &[Ballot]) -> Vec<Ballot> {
    let mut yes: BTreeMap<Vec<u8>, Ballot> = BTreeMap::new();
    for b in ballots.iter().filter(|b| b.approve && cfg.members.iter().any(|m| m == &b.member)) {
        yes.entry(b.member.clone()).or_insert_with(|| b.clone());
    }
    yes.into_values().take(needed(cfg) as usize).collect()
}

/// The joining node of an `add_node`: its roster entry (keys and PoP checked).
pub fn joining_server(a: &AddNode) -> Result<crate::config::ServerIdentity, RuleError> {
    let r = Roster::from_toml_str(Path::new("add_node.public_toml"), &a.public_toml)
        .map_err(|e| RuleError::Invalid(e.to_string()))?;
    if r.len() != 1 {
        return Err(RuleError::Invalid(format!("add_node names {} servers, not one", r.len())));
    }
    let s = r.servers.into_iter().next().ok_or_else(|| RuleError::Invalid("no server".into()))?;
    if !s.services.contains_key(COSI_SERVICE) {
        return Err(RuleError::Invalid(format!("the joining node has no {COSI_SERVICE} key")));
    }
    if a.node_data.len() > MAX_NODE_DATA {
        return Err(RuleError::Invalid(format!("node_data is {} bytes, at most {MAX_NODE_DATA}", a.node_data.len())));
    }
    if !a.node_data.is_empty() {
        serde_json::from_str::<serde_json::Value>(&a.node_data)
            .map_err(|e| RuleError::Invalid(format!("node_data is not JSON: {e}")))?;
    }
    Ok(s)
}

/// The config and roster after `action`, or why it cannot apply to this state.
pub fn apply(
    cfg: &NetworkConfig,
    roster: &BlockRoster,
    action: &Action,
) -> Result<(NetworkConfig, BlockRoster), RuleError> {
    let mut cfg = NetworkConfig { passed: None, ..cfg.clone() };
    let mut roster = roster.clone();
    match action.kind.as_ref().ok_or_else(|| RuleError::Invalid("no action".into()))? {
        action::Kind::AddNode(a) => {
            let s = joining_server(a)?;
            let key = s.public.as_bytes().to_vec();
            if roster.members.iter().any(|m| m.identity == key) {
                return Err(RuleError::Invalid(format!("node {} is already in the roster", short(&key))));
            }
            let entry = block_roster(&Roster::new(vec![s]))
                .map_err(|e| RuleError::Invalid(e.to_string()))?
                .members
                .into_iter()
                .next()
                .ok_or_else(|| RuleError::Invalid("no roster entry".into()))?;
            roster.members.push(entry);
            if !a.node_data.is_empty() {
                cfg.node_data.push(NodeData { identity: key, json: a.node_data.clone() });
            }
        }
        action::Kind::RemoveNode(r) => {
            let before = roster.members.len();
            roster.members.retain(|m| m.identity != r.identity);
            if roster.members.len() == before {
                return Err(RuleError::Invalid(format!("node {} is not in the roster", short(&r.identity))));
            }
            if roster.members.is_empty() {
                return Err(RuleError::Invalid("cannot remove the last node".into()));
            }
            cfg.node_data.retain(|d| d.identity != r.identity);
        }
        action::Kind::SetThreshold(t) => {
            if t.threshold as usize > cfg.members.len() {
                return Err(RuleError::Invalid(format!(
                    "threshold {} is above the {} members",
                    t.threshold,
                    cfg.members.len()
                )));
            }
            cfg.threshold = t.threshold;
        }
        action::Kind::AddMember(a) => {
            if cfg.members_follow_roster {
                return Err(RuleError::Invalid("the members are the roster's nodes: add a node instead".into()));
            }
            check_member_key(&a.member).map_err(|e| RuleError::Invalid(format!("add_member: {e}")))?;
            if cfg.members.contains(&a.member) {
                return Err(RuleError::Invalid(format!("{} is a member already", short(&a.member))));
            }
            if cfg.members.len() >= MAX_MEMBERS {
                return Err(RuleError::Invalid(format!("the network has {MAX_MEMBERS} members, the most allowed")));
            }
            cfg.members.push(a.member.clone());
        }
        action::Kind::RemoveMember(r) => {
            if cfg.members_follow_roster {
                return Err(RuleError::Invalid("the members are the roster's nodes: remove a node instead".into()));
            }
            if !cfg.members.contains(&r.member) {
                return Err(RuleError::Invalid(format!("{} is not a member", short(&r.member))));
            }
            cfg.members.retain(|m| m != &r.member);
            // An explicit threshold above the members left is lowered to all of them.
            if cfg.threshold as usize > cfg.members.len() {
                cfg.threshold = cfg.members.len() as u32;
            }
        }
    }
    if cfg.members_follow_roster {
        cfg.members = roster.members.iter().map(|m| m.identity.clone()).collect();
    }
    if cfg.members.is_empty() {
        return Err(RuleError::Invalid("no governance member would be left".into()));
    }
    Ok((cfg, roster))
}

/// What a member of the outgoing roster checks before it cosigns block `next` of the network
/// chain after `prev`: it applies a proposal signed by a member of `prev`, passed by enough valid
/// yes ballots of `prev`'s members, not applied before (`applied`), and its config and roster are
/// exactly `prev`'s with the action applied.
pub fn check_block(prev: &SkipBlock, next: &SkipBlock, applied: &dyn Fn(&[u8; 32]) -> bool) -> Result<(), RuleError> {
    let bad = |reason: String| RuleError::BadBlock { index: next.index, reason };
    let prev_cfg = config_of(prev).ok_or_else(|| bad("the previous block holds no network config".into()))?;
    let cfg = config_of(next).ok_or_else(|| bad("the block holds no network config".into()))?;
    let network = next.chain_id().to_vec();
    let passed = cfg.passed.as_ref().ok_or_else(|| bad("no passed proposal".into()))?;
    let p = passed.proposal.as_ref().ok_or_else(|| bad("no proposal".into()))?;
    let id = check_proposal(&network, &prev_cfg, p).map_err(|e| bad(e.to_string()))?;
    if applied(&id) {
        return Err(bad(format!("proposal {} was applied before", short(&id))));
    }
    for b in &passed.ballots {
        if b.proposal_id != id {
            return Err(bad("a ballot is for another proposal".into()));
        }
        check_ballot(&network, &prev_cfg, b).map_err(|e| bad(e.to_string()))?;
    }
    match tally(&prev_cfg, &passed.ballots) {
        Tally::Passed { .. } => {}
        t => return Err(bad(format!("the ballots do not pass it ({t:?})"))),
    }
    let prev_roster = prev.roster.as_ref().ok_or_else(|| bad("previous block without roster".into()))?;
    let action = p.action.as_ref().ok_or_else(|| bad("no action".into()))?;
    let (want_cfg, want_roster) = apply(&prev_cfg, prev_roster, action).map_err(|e| bad(e.to_string()))?;
    let got = NetworkConfig { passed: None, ..cfg.clone() };
    if got != want_cfg {
        return Err(bad("its config is not the previous one with the proposal applied".into()));
    }
    if next.roster.as_ref().map(|r| r.id()) != Some(want_roster.id()) {
        return Err(bad("its roster is not the previous one with the proposal applied".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::IdentityKeyPair;

    fn cfg(members: usize, threshold: u32) -> (NetworkConfig, Vec<IdentityKeyPair>) {
        let keys: Vec<IdentityKeyPair> = (0..members).map(|_| IdentityKeyPair::generate()).collect();
        let cfg = NetworkConfig {
            kind: NETWORK_KIND.into(),
            members: keys.iter().map(|k| k.public().as_bytes().to_vec()).collect(),
            members_follow_roster: true,
            threshold,
            ..Default::default()
        };
        (cfg, keys)
    }

    #[test]
    fn default_threshold_is_more_than_two_thirds() {
        for (m, need) in [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (9, 7), (10, 7)] {
            assert_eq!(needed(&cfg(m, 0).0), need, "{m} members");
        }
        assert_eq!(needed(&cfg(4, 2).0), 2);
        assert_eq!(needed(&cfg(4, 9).0), 4, "an explicit threshold is capped at the members");
    }

    #[test]
    fn tally_counts_one_ballot_per_member_and_rejects_when_unreachable() {
        let (cfg, keys) = cfg(5, 0); // 4 yes needed
        let net = b"net".to_vec();
        let id = [7u8; 32];
        let vote = |i: usize, yes: bool| Ballot::signed(&keys[i], &net, &id, yes);
        assert_eq!(tally(&cfg, &[vote(0, true), vote(0, true), vote(1, true)]), Tally::Open { yes: 2, no: 0 });
        assert_eq!(tally(&cfg, &[vote(0, false)]), Tally::Open { yes: 0, no: 1 });
        assert_eq!(tally(&cfg, &[vote(0, false), vote(1, false)]), Tally::Rejected { yes: 0, no: 2 });
        let four: Vec<Ballot> = (0..4).map(|i| vote(i, true)).collect();
        assert_eq!(tally(&cfg, &four), Tally::Passed { yes: 4, no: 0 });
        // A stranger's ballot does not count.
        let stranger = Ballot::signed(&IdentityKeyPair::generate(), &net, &id, true);
        assert_eq!(tally(&cfg, &[vote(0, true), stranger.clone()]), Tally::Open { yes: 1, no: 0 });
        assert!(matches!(check_ballot(&net, &cfg, &stranger), Err(RuleError::NotMember(_))));
        let mut forged = vote(1, true);
        forged.approve = false;
        assert!(matches!(check_ballot(&net, &cfg, &forged), Err(RuleError::BadSignature(_))));
        assert!(check_ballot(&net, &cfg, &vote(1, true)).is_ok());
        // The block carries exactly the needed yes ballots, sorted by member.
        let mut all: Vec<Ballot> = (0..5).rev().map(|i| vote(i, true)).collect();
        all.push(vote(2, false));
        let passing = passing_ballots(&cfg, &all);
        assert_eq!(passing.len(), 4);
        assert!(passing.windows(2).all(|w| w[0].member < w[1].member));
    }

    #[test]
    fn actions_apply_or_say_why_not() {
        let (cfg, _) = cfg(2, 0);
        let roster = BlockRoster {
            members: cfg
                .members
                .iter()
                .map(|k| crate::verify::skipchain::RosterEntry { identity: k.clone(), ..Default::default() })
                .collect(),
        };
        let remove = |k: &[u8]| Action { kind: Some(action::Kind::RemoveNode(RemoveNode { identity: k.to_vec() })) };
        let (after, r) = apply(&cfg, &roster, &remove(&cfg.members[0])).unwrap();
        assert_eq!(r.members.len(), 1);
        assert_eq!(after.members, vec![cfg.members[1].clone()], "members follow the roster");
        let err = apply(&after, &r, &remove(&cfg.members[1])).unwrap_err();
        assert!(err.to_string().contains("last node"), "{err}");
        let err = apply(&after, &r, &remove(&cfg.members[0])).unwrap_err();
        assert!(err.to_string().contains("not in the roster"), "{err}");
        let set = |t| Action { kind: Some(action::Kind::SetThreshold(SetThreshold { threshold: t })) };
        assert_eq!(apply(&cfg, &roster, &set(2)).unwrap().0.threshold, 2);
        assert!(apply(&cfg, &roster, &set(3)).is_err());
        let add = Action {
            kind: Some(action::Kind::AddNode(AddNode { public_toml: "[[servers]]".into(), node_data: String::new() })),
        };
        assert!(apply(&cfg, &roster, &add).is_err());
        assert!(apply(&cfg, &roster, &Action::default()).is_err());
    }

    #[test]
    fn separate_members_do_not_follow_the_roster() {
        let (mut cfg, _) = cfg(3, 2);
        cfg.members_follow_roster = false;
        let node = IdentityKeyPair::generate().public().as_bytes().to_vec();
        let roster = BlockRoster {
            members: vec![
                crate::verify::skipchain::RosterEntry { identity: node.clone(), ..Default::default() },
                crate::verify::skipchain::RosterEntry { identity: vec![9; 32], ..Default::default() },
            ],
        };
        let remove = Action { kind: Some(action::Kind::RemoveNode(RemoveNode { identity: node })) };
        let (after, r) = apply(&cfg, &roster, &remove).unwrap();
        assert_eq!(r.members.len(), 1);
        assert_eq!(after.members, cfg.members, "a roster change changed the separate members");

        let add = |k: &[u8]| Action { kind: Some(action::Kind::AddMember(AddMember { member: k.to_vec() })) };
        let rm = |k: &[u8]| Action { kind: Some(action::Kind::RemoveMember(RemoveMember { member: k.to_vec() })) };
        let new = IdentityKeyPair::generate().public().as_bytes().to_vec();
        let (added, r2) = apply(&cfg, &roster, &add(&new)).unwrap();
        assert_eq!(added.members.len(), 4);
        assert_eq!(r2.id(), roster.id(), "a member change changed the roster");
        let err = apply(&added, &roster, &add(&new)).unwrap_err().to_string();
        assert!(err.contains("a member already"), "{err}");
        let err = apply(&cfg, &roster, &add(&[1, 2, 3])).unwrap_err().to_string();
        assert!(err.contains("add_member") && err.contains("Ed25519"), "{err}");
        // Removing members lowers an explicit threshold above those left; the last one stays.
        let (one, _) = apply(&cfg, &roster, &rm(&cfg.members[0])).unwrap();
        let (one, _) = apply(&one, &roster, &rm(&cfg.members[1])).unwrap();
        assert_eq!((one.members.len(), one.threshold), (1, 1));
        let err = apply(&one, &roster, &rm(&cfg.members[2])).unwrap_err().to_string();
        assert!(err.contains("no governance member"), "{err}");
        let err = apply(&one, &roster, &rm(&cfg.members[0])).unwrap_err().to_string();
        assert!(err.contains("not a member"), "{err}");
        // With members following the roster, member actions are refused.
        let follow = NetworkConfig { members_follow_roster: true, ..cfg.clone() };
        let err = apply(&follow, &roster, &add(&new)).unwrap_err().to_string();
        assert!(err.contains("add a node instead"), "{err}");
    }

    #[test]
    fn genesis_with_separate_members_checks_the_keys() {
        let roster = Roster::new(vec![]);
        assert!(genesis_config(&roster, 0, &[]).is_err());
        let server = crate::config::NodeConfig::generate(
            crate::config::NodeAddress::parse("tls://127.0.0.1:7770").unwrap(),
            "n",
        );
        let roster = Roster::new(vec![server.server_identity()]);
        let follow = genesis_config(&roster, 0, &[]).unwrap();
        assert!(follow.members_follow_roster);
        assert_eq!(follow.members, vec![server.identity.public().as_bytes().to_vec()]);
        let a = IdentityKeyPair::generate().public().as_bytes().to_vec();
        let b = IdentityKeyPair::generate().public().as_bytes().to_vec();
        let sep = genesis_config(&roster, 2, &[a.clone(), b.clone()]).unwrap();
        assert!(!sep.members_follow_roster);
        assert_eq!(sep.members, vec![a.clone(), b.clone()]);
        let err = genesis_config(&roster, 0, &[a.clone(), a.clone()]).unwrap_err().to_string();
        assert!(err.contains("members[1]") && err.contains("twice"), "{err}");
        let err = genesis_config(&roster, 0, &[a.clone(), vec![0; 5]]).unwrap_err().to_string();
        assert!(err.contains("members[1]") && err.contains("Ed25519"), "{err}");
        let err = genesis_config(&roster, 3, &[a, b]).unwrap_err().to_string();
        assert!(err.contains("threshold 3 is above the 2 members"), "{err}");
    }
}
