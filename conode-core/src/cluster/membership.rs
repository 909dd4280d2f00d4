//! Membership by vote on a [`LocalCluster`]: the calls the Python and C faces share (make the
//! network chain, start a node that asks to join, propose a removal, vote, read a node's state), so
//! the faces only translate arguments and errors.

use super::{ClusterError, LocalCluster};
use crate::services::membership::messages::{action, Ballot, Proposal, RemoveNode};
use crate::services::membership::{now_ms, MembershipError, MembershipService, NodeState};
use std::time::{Duration, Instant};

impl LocalCluster {
    /// Node `i`'s membership service (an error when it is stopped).
    pub fn membership(&self, i: usize) -> Result<MembershipService, ClusterError> {
        self.node(i).membership().map_err(|error| ClusterError::Node { index: i, error })
    }

    /// Founds the network of the cluster's roster: node `node` makes the network chain, then every
    /// other running node of the roster founds it too (a node follows a network only with its
    /// operator's consent, and this process is every node's operator). `threshold`: yes votes a
    /// proposal needs (0: more than two thirds). Returns the network id.
    pub fn create_network(&self, node: usize, threshold: u32) -> Result<Vec<u8>, ClusterError> {
        self.create_network_with_members(node, threshold, &[])
    }

    /// [`Self::create_network`] governed by the separate member keys `members` (empty: the
    /// roster's identity keys).
    pub fn create_network_with_members(
        &self,
        node: usize,
        threshold: u32,
        members: &[Vec<u8>],
    ) -> Result<Vec<u8>, ClusterError> {
        let first = self.membership(node)?;
        let genesis = self.runtime().block_on(first.create_network_with_members(self.roster(), threshold, members))?;
        let others: Vec<MembershipService> = (0..self.roster().len())
            .filter(|&i| i != node && self.node(i).is_running())
            .map(|i| self.membership(i))
            .collect::<Result<_, _>>()?;
        let founded = self.runtime().block_on(futures_util::future::join_all(
            others.iter().map(|m| m.create_network_with_members(self.roster(), threshold, members)),
        ));
        for block in founded {
            block?;
        }
        Ok(genesis.hash)
    }

    /// Starts one more node and has it ask to join the network through node 0, with `node_data`
    /// (JSON or empty). Returns its index in the cluster and the `add_node` proposal's id, once the
    /// member answered (within `timeout`).
    pub fn add_node(&mut self, node_data: &str, timeout: Duration) -> Result<(usize, Vec<u8>), ClusterError> {
        let net = self.membership(0)?.network().ok_or(MembershipError::NoNetwork)?;
        let url = self.client_url(0).ok_or(ClusterError::Membership(MembershipError::NoNetwork))?;
        let j = self.spawn_node().map_err(|error| ClusterError::Node { index: self.len(), error })?;
        let joiner = self.membership(j)?;
        joiner.join(&url, &net, node_data, Duration::from_millis(100))?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = joiner.record().join.and_then(|r| r.proposal) {
                let id =
                    hex::decode(&p).map_err(|_| ClusterError::Timeout(format!("node {j}: bad proposal id {p}")))?;
                return Ok((j, id));
            }
            if Instant::now() > deadline {
                return Err(ClusterError::Timeout(format!("node {j}: no answer to its join request in {timeout:?}")));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Proposes removing node `i` from the network, signed by node `proposer`; returns the
    /// proposal id.
    pub fn remove_node(&self, i: usize, proposer: usize) -> Result<Vec<u8>, ClusterError> {
        let m = self.membership(proposer)?;
        let net = m.network().ok_or(MembershipError::NoNetwork)?;
        let identity = self.node(i).server_identity().public.as_bytes().to_vec();
        let kind = action::Kind::RemoveNode(RemoveNode { identity });
        let p = Proposal::signed(&self.node(proposer).config().identity, &net, kind, now_ms());
        Ok(self.runtime().block_on(m.propose(p, true))?.id)
    }

    /// Node `voter` votes on `proposal` with its identity key, once the proposal reached it (within
    /// `timeout`); returns the proposal's state after the ballot: `open`, `accepted` (its roster
    /// block is appended) or `rejected`. A second ballot by one member is refused.
    pub fn vote(
        &self,
        proposal: &[u8],
        voter: usize,
        approve: bool,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        let m = self.membership(voter)?;
        let net = m.network().ok_or(MembershipError::NoNetwork)?;
        let deadline = Instant::now() + timeout;
        while m.status_of(proposal).proposal.is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let b = Ballot::signed(&self.node(voter).config().identity, &net, proposal, approve);
        Ok(self.runtime().block_on(m.vote(b, true))?.state)
    }

    /// Node `i`'s membership state.
    pub fn node_state(&self, i: usize) -> Result<NodeState, ClusterError> {
        Ok(self.membership(i)?.state())
    }
}
