//! Membership by vote, as CCF runs a service, on this project's own primitives.
//!
//! - **The network chain** is a skipchain whose blocks hold the roster (the block's roster), the
//!   governance members and the vote threshold (`NetworkConfig` in the block data). Each roster
//!   change is a block cosigned by the outgoing roster, so a light client follows membership from
//!   the genesis with the ordinary skipchain proof verifier.
//! - **Governance**: members sign proposals (`add_node`, `remove_node`, `set_threshold`, and with
//!   separate member keys `add_member`, `remove_member`) and ballots with their Ed25519 keys (by
//!   default the roster's identity keys; or separate keys, as CCF's consortium, which roster
//!   changes never change). Members that missed proposals or ballots (down, cut off) fetch the
//!   open ones from the other members (`Sync`) and re-check every signature. A proposal passes at
//!   the threshold (default more than two thirds); the block that applies it carries the proposal
//!   and the passing ballots, and every member of the outgoing roster re-checks them (the
//!   skipchain governor hook) before cosigning. A proposal that cannot pass any more is rejected;
//!   one still open a day (add_node) or a week (the others) after it was made expires.
//! - **Node states** (persisted): founders `Initialized → PartOfNetwork`; joiners `Initialized →
//!   Pending → Trusted → PartOfNetwork`; `Retired` once removed.
//! - **Consent**: a node follows a network only when its operator founded it on this node (the
//!   local handle or the admin channel; the client port refuses `CreateNetwork`) or asked to join
//!   it. A genesis a peer or a stranger pushes is held, not followed.
//! - **Join**: a stranger may send the node port only `Membership/Join` and `Membership/JoinStatus`
//!   (small frames); the member that receives a join proposes `add_node` for it.
//!
//! `messages`: wire types and signed byte strings; `rules`: the pure governance rules; `store`:
//! sled; `applied`: which proposals the network chain applied; `service`: the service; `http`: the
//! operator's JSON routes.

mod applied;
#[cfg(feature = "cluster")]
pub mod bench;
mod http;
pub mod messages;
pub mod rules;
mod service;
pub mod store;

pub use service::{
    expires_ms, now_ms, MembershipError, MembershipService, ADD_NODE_LIFETIME, DEFAULT_RETRY, FOUNDING_IS_LOCAL,
    MAX_CREATED_AHEAD, MAX_JOINS, MAX_OPEN_ADD_NODES_PER_PROPOSER, MAX_OPEN_JOINS_PER_NETWORK,
    MAX_OPEN_JOINS_PER_SOURCE, MAX_OPEN_PROPOSALS_PER_PROPOSER, MEMBERSHIP_SERVICE, PROPOSAL_LIFETIME,
};
pub use store::{NodeRecord, NodeState};
