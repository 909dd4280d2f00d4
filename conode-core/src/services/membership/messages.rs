//! Wire messages of the membership service (generated from `proto/membership.proto`, see
//! [`crate::wire`]) and the byte strings members sign: proposal ids and ballots.

use crate::crypto::sha256;
use prost::Message;

pub use crate::wire::membership::{
    action, Action, AddMember, AddNode, Ballot, CreateNetwork, GetNetwork, GetProposals, JoinAnswer, JoinRequest,
    NetworkConfig, NetworkReply, NodeData, OpenProposal, OpenProposals, PassedProposal, Proposal, ProposalStatus,
    Proposals, RemoveMember, RemoveNode, SetThreshold, SyncRequest,
};

/// `NetworkConfig.kind` of every network-chain block.
pub const NETWORK_KIND: &str = "conode-network-v1";

/// The id of a proposal (what its proposer signs).
pub fn proposal_id(p: &Proposal) -> [u8; 32] {
    let action = p.action.as_ref().map(Message::encode_to_vec).unwrap_or_default();
    sha256(&[b"conode-membership-proposal-v1", &p.network, &p.proposer, &p.created.to_be_bytes(), &action])
}

/// What a member signs to vote on proposal `id` of `network`.
pub fn ballot_message(network: &[u8], id: &[u8], approve: bool) -> [u8; 32] {
    sha256(&[b"conode-membership-ballot-v1", network, id, &[u8::from(approve)]])
}

impl Proposal {
    /// A proposal of `action` on `network`, signed by `member`.
    pub fn signed(member: &crate::crypto::IdentityKeyPair, network: &[u8], action: action::Kind, created: u64) -> Self {
        let mut p = Proposal {
            network: network.to_vec(),
            action: Some(Action { kind: Some(action) }),
            proposer: member.public().as_bytes().to_vec(),
            created,
            signature: vec![],
        };
        p.signature = member.sign(&proposal_id(&p)).to_vec();
        p
    }
}

impl Ballot {
    /// `member`'s vote on proposal `id` of `network`.
    pub fn signed(member: &crate::crypto::IdentityKeyPair, network: &[u8], id: &[u8], approve: bool) -> Self {
        Ballot {
            proposal_id: id.to_vec(),
            approve,
            member: member.public().as_bytes().to_vec(),
            signature: member.sign(&ballot_message(network, id, approve)).to_vec(),
        }
    }
}

/// Short text of an action, for lists and logs.
pub fn describe(action: Option<&Action>) -> String {
    match action.and_then(|a| a.kind.as_ref()) {
        Some(action::Kind::AddNode(a)) => {
            let first = a.public_toml.lines().find(|l| l.trim_start().starts_with("Address")).unwrap_or("?");
            format!("add_node {}", first.trim())
        }
        Some(action::Kind::RemoveNode(r)) => format!("remove_node {}", hex::encode(&r.identity)),
        Some(action::Kind::SetThreshold(t)) => format!("set_threshold {}", t.threshold),
        Some(action::Kind::AddMember(m)) => format!("add_member {}", hex::encode(&m.member)),
        Some(action::Kind::RemoveMember(m)) => format!("remove_member {}", hex::encode(&m.member)),
        None => "none".into(),
    }
}
